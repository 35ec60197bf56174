#include "report.h"

#include <nlohmann/json.hpp>

#include "memory_plan.h"

namespace gpumem::train {

std::string final_report_json(const TrainOptions& o, const RunSummary& run, const Trainer& trainer,
                              const DeviceMemory& memory) {
  nlohmann::ordered_json j;
  j["settings"] = {{"batch", o.batch},
                   {"accum", o.accum},
                   {"effective_batch", o.batch * o.accum},
                   {"data", to_string(o.data)},
                   {"dtype", to_string(o.dtype)},
                   {"epochs", o.epochs},
                   {"samples", o.samples},
                   {"seed", o.seed},
                   {"inputs", o.inputs},
                   {"layers", o.layers},
                   {"hidden", o.hidden},
                   {"classes", o.classes},
                   {"lr", o.lr},
                   {"async", o.async_alloc},
                   {"alloc", to_string(o.alloc)},
                   {"seq_lengths", seq_lengths_text(o)},
                   {"backend", run.backend}};
  j["device"] = run.device;
  j["first_epoch_loss"] = run.first_epoch_loss;
  j["final_loss"] = run.last_epoch.loss;
  j["final_accuracy"] = run.last_epoch.accuracy;
  j["parameter_count"] = parameter_count(o);
  j["optimizer_steps"] = trainer.optimizer_steps();
  j["skipped_steps_fp16_overflow"] = trainer.skipped_steps();
  j["final_loss_scale"] = trainer.loss_scale();
  nlohmann::ordered_json by_category;
  // At the peak: for static training that is every buffer; for eager, the largest backward.
  const MemoryPlan held = memory.peak_bytes_by_category();
  for (size_t c = 0; c < category_count; ++c)
    by_category[category_key(static_cast<Category>(c))] = held.bytes[c];
  j["bytes_by_category"] = by_category;
  j["trainer_allocated_bytes"] = memory.held_bytes();
  j["trainer_peak_allocated_bytes"] = memory.peak_bytes();
  j["trainer_allocation_count"] = memory.allocation_count();
  j["trainer_free_count"] = memory.free_count();
  nlohmann::ordered_json buffers = nlohmann::ordered_json::array();
  for (const Buffer& b : memory.peak_buffers())
    buffers.push_back(
        {{"name", b.name}, {"category", category_key(b.category)}, {"bytes", b.bytes}});
  j["buffers"] = buffers;
  j["seconds"] = run.seconds;
  j["steps_run"] = trainer.steps_run();
  j["training_seconds"] = run.training_seconds;
  j["seconds_per_step"] =
      trainer.steps_run() == 0 ? 0.0 : run.training_seconds / static_cast<double>(trainer.steps_run());
  return j.dump();
}

}  // namespace gpumem::train
