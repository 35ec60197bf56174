// The device's virtual memory management calls, as the expandable pool (expandable_pool.h) needs
// them: reserve an address range, create physical memory, map it into the range, make it
// accessible, and undo each. The pool never calls CUDA itself: the preload implements this over
// the real driver entry points (cuMemAddressReserve, cuMemCreate, cuMemMap, cuMemSetAccess, ...),
// SimulatedVmm (resources/testing) for tests, benchmarks and `gpumem replay`. Return values are
// the driver's raw CUresult codes, 0 = success.
#pragma once

#include <cstdint>

namespace gpumem::resources {

class VmmUpstream {
 public:
  virtual ~VmmUpstream() = default;

  // cuMemGetAllocationGranularity (minimum, pinned device memory of `device`).
  virtual int granularity(int device, uint64_t* bytes) = 0;
  // cuMemAddressReserve: `bytes` of address space aligned to `alignment`, no memory behind it.
  virtual int reserve(int device, uint64_t bytes, uint64_t alignment, uintptr_t* va) = 0;
  // cuMemAddressFree of a whole range from reserve(); every mapping in it is gone first.
  virtual int free_range(uintptr_t va, uint64_t bytes) = 0;
  // cuMemCreate: `bytes` (a multiple of the granularity) of physical memory on `device`.
  virtual int create(int device, uint64_t bytes, uint64_t* handle) = 0;
  // cuMemRelease.
  virtual int release(uint64_t handle) = 0;
  // cuMemMap of the whole handle at va (offset 0, the handle's size).
  virtual int map(uintptr_t va, uint64_t bytes, uint64_t handle) = 0;
  // cuMemUnmap of exactly one earlier map().
  virtual int unmap(uintptr_t va, uint64_t bytes) = 0;
  // cuMemSetAccess for `device` alone: read/write (CU_MEM_ACCESS_FLAGS_PROT_READWRITE), or none
  // (CU_MEM_ACCESS_FLAGS_PROT_NONE) when read_write is false. Other devices keep their access.
  virtual int set_access(int device, uintptr_t va, uint64_t bytes, bool read_write) = 0;
  // True when `code` means out of memory (CUDA_ERROR_OUT_OF_MEMORY).
  virtual bool is_oom(int code) const = 0;
};

}  // namespace gpumem::resources
