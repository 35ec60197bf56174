// The final JSON line: settings, results, parameter count, bytes by category, trainer peak.
#pragma once

#include <string>

#include "device_memory.h"
#include "options.h"
#include "trainer.h"

namespace gpumem::train {

struct RunSummary {
  std::string backend;
  std::string device;
  EpochResult last_epoch;
  double first_epoch_loss = 0;
  double seconds = 0;           // the whole run, from before the dataset is made
  double training_seconds = 0;  // the epochs only: what seconds_per_step divides
};

// One line of JSON (no newline).
std::string final_report_json(const TrainOptions& o, const RunSummary& run, const Trainer& trainer,
                              const DeviceMemory& memory);

}  // namespace gpumem::train
