// Allocation and free: charge under the lock, map host memory outside it, roll back on failure.
#include "allocate.h"

namespace simcuda {

CUresult allocate(int device, uint64_t size, Kind kind, CUmemPoolHandle_st* pool,
                  CUdeviceptr* out) {
  if (!count_allocation()) return CUDA_ERROR_OUT_OF_MEMORY;
  alloc_latency();
  State& s = state();
  Device& dev = *s.devices[device];
  Allocation a{device, size, 0, 0, 0, kind, pool};
  uint64_t pool_reserved_before = 0;
  {
    std::lock_guard lock(s.mu);
    if (pool != nullptr) {
      a.small_charge = round_up(size, kSmallQuantum);  // bytes of the pool this block uses
      pool_reserved_before = pool->reserved;
      if (!pool_grow(dev, *pool, a.small_charge)) return CUDA_ERROR_OUT_OF_MEMORY;
      pool->used += a.small_charge;
      if (pool->used > pool->used_high) pool->used_high = pool->used;
    } else {
      charge_for(size, &a.large_charge, &a.small_charge);
      if (!dev.fits(a.large_charge, a.small_charge)) return CUDA_ERROR_OUT_OF_MEMORY;
      dev.large_bytes += a.large_charge;
      dev.small_bytes += a.small_charge;
    }
  }
  void* p = map_memory(size, &a.mapped);
  std::lock_guard lock(s.mu);
  if (p == nullptr) {  // the host itself is out of address space: undo the charge
    if (pool != nullptr) {
      pool->used -= a.small_charge;
      pool_release_to(dev, *pool, pool_reserved_before);
    } else {
      dev.large_bytes -= a.large_charge;
      dev.small_bytes -= a.small_charge;
    }
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  s.allocations.emplace(reinterpret_cast<uintptr_t>(p), a);
  *out = reinterpret_cast<CUdeviceptr>(p);
  return CUDA_SUCCESS;
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
      dev.large_bytes -= a.large_charge;
      dev.small_bytes -= a.small_charge;
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
