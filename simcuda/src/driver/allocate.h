// The one allocation path behind cuMemAlloc_v2, cuMemAllocPitch_v2, cuMemAllocManaged,
// cuMemAllocAsync and cuMemAllocFromPoolAsync, and the one free path behind cuMemFree_v2 and
// cuMemFreeAsync. Both keep the device accounting exact and change nothing on failure.
#pragma once

#include "state.h"

namespace simcuda {

// `pool` is non-null for stream-ordered allocations. Counts the allocation for fault injection.
CUresult allocate(int device, uint64_t size, Kind kind, CUmemPoolHandle_st* pool, CUdeviceptr* out);
// Frees any device, managed or pool allocation by its base address.
CUresult release(CUdeviceptr ptr);

// What simcuda knows about an address (for pointer attributes and address ranges).
struct RangeInfo {
  uintptr_t base = 0;
  uint64_t size = 0;
  int device = -1;
  bool host = false;
  bool managed = false;
};
bool find_range(uintptr_t p, RangeInfo* out);

}  // namespace simcuda
