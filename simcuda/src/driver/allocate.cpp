// Allocation and free: map or unmap host memory outside the lock; charge and record (or uncharge
// and forget) in one critical section.
#include "allocate.h"
#include "ipc.h"

namespace simcuda {

CUresult allocate(int device, uint64_t size, Kind kind, CUmemPoolHandle_st* pool,
                  CUdeviceptr* out) {
  if (!count_allocation()) return CUDA_ERROR_OUT_OF_MEMORY;
  alloc_latency();
  State& s = state();
  Device& dev = *s.devices[device];
  Allocation a{device, size, 0, 0, 0, kind, pool};
  // Map first, then charge and record in one critical section: the accounting never holds a
  // charge without its record, even in the child of a fork taken between the two steps.
  void* p = map_memory(size, &a.mapped);
  if (p == nullptr) return CUDA_ERROR_OUT_OF_MEMORY;  // the host is out of address space
  {
    std::lock_guard lock(s.mu);
    bool fits = false;
    if (pool != nullptr) {
      a.small_charge = round_up(size, kSmallQuantum);  // bytes of the pool this block uses
      fits = pool_grow(dev, *pool, a.small_charge);
      if (fits) {
        pool->used += a.small_charge;
        if (pool->used > pool->used_high) pool->used_high = pool->used;
      }
    } else {
      charge_for(size, &a.large_charge, &a.small_charge);
      fits = dev.take(a.large_charge, a.small_charge);
    }
    if (fits) {
      s.allocations.emplace(reinterpret_cast<uintptr_t>(p), a);
      *out = reinterpret_cast<CUdeviceptr>(p);
      return CUDA_SUCCESS;
    }
  }
  unmap_memory(p, a.mapped);
  return CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult release(CUdeviceptr ptr) {
  State& s = state();
  Allocation a{};
  {
    std::lock_guard lock(s.mu);
    auto it = s.allocations.find(static_cast<uintptr_t>(ptr));
    if (it == s.allocations.end()) return CUDA_ERROR_INVALID_VALUE;
    a = it->second;
    s.allocations.erase(it);
    Device& dev = *s.devices[a.device];
    if (a.pool != nullptr) {
      // Freed pool memory stays reserved up to the release threshold (see docs/simcuda.md).
      a.pool->used -= a.small_charge;
      pool_release_to(dev, *a.pool, a.pool->release_threshold);
    } else {
      dev.give(a.large_charge, a.small_charge);
    }
  }
  free_latency();
  unmap_memory(reinterpret_cast<void*>(ptr), a.mapped);
  return CUDA_SUCCESS;
}

bool find_range(uintptr_t p, RangeInfo* out) {
  State& s = state();
  std::lock_guard lock(s.mu);
  auto it = s.allocations.upper_bound(p);
  if (it != s.allocations.begin()) {
    --it;
    uint64_t len = it->second.size == 0 ? 1 : it->second.size;
    if (p - it->first < len) {
      *out = RangeInfo{it->first, it->second.size, it->second.device, false,
                       it->second.kind == Kind::managed};
      return true;
    }
  }
  if (find_import_locked(p, out)) return true;  // IPC memory (ipc.cpp)
  auto m = s.mappings.upper_bound(p);
  if (m != s.mappings.begin()) {
    --m;
    if (p - m->first < m->second.size) {
      *out = RangeInfo{m->first, m->second.size, m->second.handle->device, false, false};
      return true;
    }
  }
  auto h = s.host.upper_bound(p);
  if (h != s.host.begin()) {
    --h;
    if (p - h->first < h->second.mapped) {
      *out = RangeInfo{h->first, h->second.size, -1, true, false};
      return true;
    }
  }
  return false;
}

}  // namespace simcuda
