// What to tell a user whose configuration does not fit: the buffer that failed, the bytes by
// category, and which of --batch, --accum, --data stream or --dtype fp16 would make it fit,
// computed from the byte formulas (memory_plan.h).
#pragma once

#include <cstdint>
#include <string>

#include "device_memory.h"
#include "options.h"

namespace gpumem::train {

// capacity_bytes 0: unknown (then remedies are ranked by saving only).
std::string out_of_memory_advice(const TrainOptions& o, const OutOfDeviceMemory& e,
                                 uint64_t capacity_bytes);

}  // namespace gpumem::train
