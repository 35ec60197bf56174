// IPC memory handles (cuIpcGetMemHandle, cuIpcOpenMemHandle_v2, cuIpcCloseMemHandle): what the
// rest of the driver needs to know about imported memory (docs/simcuda.md, "IPC").
#pragma once

#include <cstdint>

#include "allocate.h"

namespace simcuda {

// The imported mapping containing p (pointer attributes, address ranges). Caller holds the lock.
bool find_import_locked(uintptr_t p, RangeInfo* out);

}  // namespace simcuda
