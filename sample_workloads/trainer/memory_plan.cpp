#include "memory_plan.h"

#include <algorithm>

namespace gpumem::train {

const char* category_key(Category c) {
  switch (c) {
    case Category::parameters:
      return "parameters_fp32_master";
    case Category::gradients:
      return "gradients";
    case Category::accumulator:
      return "gradient_accumulator";
    case Category::optimizer_state:
      return "optimizer_state_adam_m_v";
    case Category::activations:
      return "activations_and_their_gradients";
    case Category::data:
      return "data_inputs_and_labels";
    case Category::metrics:
      return "loss_metrics";
  }
  return "unknown";
}

uint64_t MemoryPlan::total() const {
  uint64_t sum = 0;
  for (uint64_t b : bytes) sum += b;
  return sum;
}

uint64_t parameter_count(const TrainOptions& o) {
  const auto widths = layer_widths(o);
  uint64_t p = 0;
  for (size_t l = 0; l + 1 < widths.size(); ++l) p += widths[l] * widths[l + 1] + widths[l + 1];
  return p;
}

uint64_t activation_peak_units(const TrainOptions& o) {
  const auto widths = layer_widths(o);
  uint64_t units = 0;
  if (o.alloc == AllocMode::static_once) {
    // Every layer's output and output gradient, allocated once.
    for (size_t l = 1; l < widths.size(); ++l) units += 2 * widths[l];
    return units;
  }
  // Eager: during layer l's backward the outputs of layers 1..l are live (the later ones were
  // freed by their own backward), with the gradient it reads (w_l) and the one it writes (w_{l-1},
  // none for the first layer). The forward's and the loss's states are never larger: the last
  // layer's backward state contains both.
  uint64_t outputs = 0;
  for (size_t l = 1; l < widths.size(); ++l) {
    outputs += widths[l];
    const uint64_t live = outputs + widths[l] + (l > 1 ? widths[l - 1] : 0);
    units = std::max(units, live);
  }
  return units;
}

MemoryPlan plan_memory(const TrainOptions& o) {
  const uint64_t p = parameter_count(o);
  const uint64_t act = dtype_bytes(o.dtype);
  const uint64_t rows = o.batch * max_seq_length(o);  // the largest micro-batch, in rows
  const uint64_t data_rows = o.data == DataMode::resident ? o.samples : rows;

  MemoryPlan plan;
  plan[Category::parameters] = 4 * p;
  plan[Category::gradients] = act * p;
  plan[Category::accumulator] = o.accum > 1 ? 4 * p : 0;
  plan[Category::optimizer_state] = 2 * 4 * p;
  plan[Category::activations] = act * rows * activation_peak_units(o);
  plan[Category::data] = data_rows * (4 * o.inputs + 4);
  plan[Category::metrics] = metrics_bytes;
  return plan;
}

}  // namespace gpumem::train
