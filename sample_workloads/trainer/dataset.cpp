#include "dataset.h"

#include <cmath>
#include <random>

namespace gpumem::train {

Dataset make_teacher_dataset(size_t samples, size_t inputs, size_t classes, uint64_t seed) {
  constexpr size_t teacher_hidden = 32;
  std::mt19937_64 rng(seed ^ 0x7eac4e5ULL);
  std::normal_distribution<float> normal(0.0f, 1.0f);

  std::vector<float> w1(teacher_hidden * inputs), w2(classes * teacher_hidden);
  const float s1 = 1.0f / std::sqrt(static_cast<float>(inputs));
  const float s2 = 1.0f / std::sqrt(static_cast<float>(teacher_hidden));
  for (float& w : w1) w = normal(rng) * s1;
  for (float& w : w2) w = normal(rng) * s2;

  Dataset d;
  d.samples = samples;
  d.inputs = inputs;
  d.classes = classes;
  d.x.resize(samples * inputs);
  d.y.resize(samples);
  std::vector<float> h(teacher_hidden);
  for (size_t n = 0; n < samples; ++n) {
    float* x = &d.x[n * inputs];
    for (size_t i = 0; i < inputs; ++i) x[i] = normal(rng);
    for (size_t j = 0; j < teacher_hidden; ++j) {
      float z = 0;
      for (size_t i = 0; i < inputs; ++i) z += w1[j * inputs + i] * x[i];
      h[j] = std::tanh(z);
    }
    size_t best = 0;
    float best_score = -INFINITY;
    for (size_t c = 0; c < classes; ++c) {
      float z = 0;
      for (size_t j = 0; j < teacher_hidden; ++j) z += w2[c * teacher_hidden + j] * h[j];
      if (z > best_score) {
        best_score = z;
        best = c;
      }
    }
    d.y[n] = static_cast<int32_t>(best);
  }
  return d;
}

}  // namespace gpumem::train
