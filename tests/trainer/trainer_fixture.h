// A trainer on host buffers: the same code as gpumem-train, with malloc standing in for cudaMalloc.
#pragma once

#include <memory>

#include "backend.h"
#include "dataset.h"
#include "device_memory.h"
#include "options.h"
#include "trainer.h"

namespace gpumem::train {

struct HostTrainer {
  explicit HostTrainer(const TrainOptions& o, uint64_t capacity = 0)
      : options(o),
        data(make_teacher_dataset(o.samples, o.inputs, o.classes, o.seed)),
        memory(make_host_memory(capacity)),
        backend(make_host_backend()),
        trainer(options, data, *memory, *backend) {}
  TrainOptions options;
  Dataset data;
  std::unique_ptr<DeviceMemory> memory;
  std::unique_ptr<Backend> backend;
  Trainer trainer;
};

}  // namespace gpumem::train
