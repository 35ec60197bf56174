// Synthetic classification data labelled by a seeded random teacher network, so the task is
// learnable (random labels are not) and the same seed gives the same data everywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gpumem::train {

struct Dataset {
  size_t samples = 0;
  size_t inputs = 0;
  size_t classes = 0;
  std::vector<float> x;    // samples x inputs, row-major
  std::vector<int32_t> y;  // samples labels in [0, classes)
};

// x ~ N(0, 1); label = argmax of a random teacher inputs -> 32 (tanh) -> classes.
Dataset make_teacher_dataset(size_t samples, size_t inputs, size_t classes, uint64_t seed);

}  // namespace gpumem::train
