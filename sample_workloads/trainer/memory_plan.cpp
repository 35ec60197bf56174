#include "memory_plan.h"

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

MemoryPlan plan_memory(const TrainOptions& o) {
  const auto widths = layer_widths(o);
  const uint64_t p = parameter_count(o);
  const uint64_t act = dtype_bytes(o.dtype);
  uint64_t layer_outputs = 0;  // sum of every Dense layer's output width
  for (size_t l = 1; l < widths.size(); ++l) layer_outputs += widths[l];
  const uint64_t data_rows = o.data == DataMode::resident ? o.samples : o.batch;

  MemoryPlan plan;
  plan[Category::parameters] = 4 * p;
  plan[Category::gradients] = act * p;
  plan[Category::accumulator] = o.accum > 1 ? 4 * p : 0;
  plan[Category::optimizer_state] = 2 * 4 * p;
  plan[Category::activations] = 2 * act * o.batch * layer_outputs;
  plan[Category::data] = data_rows * (4 * o.inputs + 4);
  plan[Category::metrics] = metrics_bytes;
  return plan;
}

}  // namespace gpumem::train
