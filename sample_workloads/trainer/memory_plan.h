// The trainer's device bytes by category, from the formulas in docs/trainer.md. The trainer
// allocates exactly these buffers (tests compare the two); the out-of-memory advice uses the plan
// to say which setting would make a configuration fit.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "options.h"

namespace gpumem::train {

enum class Category {
  parameters,
  gradients,
  accumulator,
  optimizer_state,
  activations,
  data,
  metrics
};
inline constexpr size_t category_count = 7;

// JSON key for a category: says what the bytes are.
const char* category_key(Category c);

struct MemoryPlan {
  std::array<uint64_t, category_count> bytes{};
  uint64_t& operator[](Category c) { return bytes[static_cast<size_t>(c)]; }
  uint64_t operator[](Category c) const { return bytes[static_cast<size_t>(c)]; }
  uint64_t total() const;
};

// P: weights and biases of every Dense layer.
uint64_t parameter_count(const TrainOptions& o);

// Loss sum, correct count, overflow flag and one spare float.
inline constexpr uint64_t metrics_bytes = 4 * sizeof(float);

// Activation bytes at their peak, in units of (bytes per element) x (rows of the largest
// micro-batch): the sum of widths live at once (docs/trainer.md, "Bytes by category").
uint64_t activation_peak_units(const TrainOptions& o);

// The bytes of each category at the trainer's peak (static: all the time; eager: during the
// backward of the largest micro-batch); total() is the peak.
MemoryPlan plan_memory(const TrainOptions& o);

}  // namespace gpumem::train
