// Stream-ordered allocation: each device has one default pool. Work completes synchronously, so
// a free is final at once; the pool keeps freed memory reserved up to its release threshold
// (the real driver trims at the next synchronisation; here that is the free itself).
#include "allocate.h"

using namespace simcuda;

namespace {

CUmemPoolHandle_st* known_pool(CUmemoryPool pool) {
  for (auto& d : state().devices)
    if (pool == &d->default_pool) return pool;
  std::lock_guard lock(state().mu);
  for (auto& p : state().created_pools)
    if (pool == p.get() && !p->destroyed) return pool;
  return nullptr;
}

CUresult alloc_async(CUdeviceptr* dptr, size_t bytesize, CUmemoryPool pool, CUstream stream) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (dptr == nullptr || bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
  int device = 0;
  {
    std::lock_guard lock(state().mu);
    if (CUresult r = stream_device(stream, &device)) return r;
  }
  if (pool == nullptr) {
    pool = &state().devices[device]->default_pool;
  } else if (known_pool(pool) == nullptr) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  return allocate(pool->device, bytesize, Kind::pool, pool, dptr);
}

CUresult free_async(CUdeviceptr dptr, CUstream stream) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (dptr == 0) return CUDA_ERROR_INVALID_VALUE;
  int device = 0;
  {
    std::lock_guard lock(state().mu);
    if (CUresult r = stream_device(stream, &device)) return r;
  }
  return release(dptr);
}

}  // namespace

SIMCUDA_EXPORT CUresult CUDAAPI cuMemAllocAsync(CUdeviceptr* dptr, size_t bytesize,
                                                CUstream stream) {
  return alloc_async(dptr, bytesize, nullptr, stream);
}
SIMCUDA_EXPORT CUresult CUDAAPI cuMemAllocAsync_ptsz(CUdeviceptr* dptr, size_t bytesize,
                                                     CUstream stream) {
  return alloc_async(dptr, bytesize, nullptr, stream);
}
SIMCUDA_EXPORT CUresult CUDAAPI cuMemAllocFromPoolAsync(CUdeviceptr* dptr, size_t bytesize,
                                                        CUmemoryPool pool, CUstream stream) {
  if (pool == nullptr) return CUDA_ERROR_INVALID_VALUE;
  return alloc_async(dptr, bytesize, pool, stream);
}
SIMCUDA_EXPORT CUresult CUDAAPI cuMemAllocFromPoolAsync_ptsz(CUdeviceptr* dptr, size_t bytesize,
                                                             CUmemoryPool pool, CUstream stream) {
  return cuMemAllocFromPoolAsync(dptr, bytesize, pool, stream);
}
SIMCUDA_EXPORT CUresult CUDAAPI cuMemFreeAsync(CUdeviceptr dptr, CUstream stream) {
  return free_async(dptr, stream);
}
SIMCUDA_EXPORT CUresult CUDAAPI cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream) {
  return free_async(dptr, stream);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuDeviceGetDefaultMemPool(CUmemoryPool* pool, CUdevice dev) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (pool == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  *pool = &state().devices[dev]->default_pool;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemPoolGetAttribute(CUmemoryPool pool, CUmemPool_attribute attr,
                                                      void* value) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (value == nullptr || known_pool(pool) == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(state().mu);
  auto* out = static_cast<cuuint64_t*>(value);
  switch (attr) {
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD:
      *out = pool->release_threshold;
      return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT:
      *out = pool->reserved;
      return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
      *out = pool->reserved_high;
      return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_USED_MEM_CURRENT:
      *out = pool->used;
      return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
      *out = pool->used_high;
      return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
      *static_cast<int*>(value) = 1;  // reuse policies have no effect on a synchronous device
      return CUDA_SUCCESS;
    default:
      return CUDA_ERROR_NOT_SUPPORTED;
  }
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute attr,
                                                      void* value) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (value == nullptr || known_pool(pool) == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(state().mu);
  Device& dev = *state().devices[pool->device];
  cuuint64_t v = *static_cast<cuuint64_t*>(value);
  switch (attr) {
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD:
      pool->release_threshold = v;
      pool_release_to(dev, *pool, v);
      return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:  // only 0 is accepted: reset to the current value
      if (v != 0) return CUDA_ERROR_INVALID_VALUE;
      pool->reserved_high = pool->reserved;
      return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
      if (v != 0) return CUDA_ERROR_INVALID_VALUE;
      pool->used_high = pool->used;
      return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
      return CUDA_SUCCESS;
    default:
      return CUDA_ERROR_NOT_SUPPORTED;
  }
}

// Other devices' access to a pool's memory: read-write or none (what peers get; read-only is not
// modelled). The pool's own device always has read-write; asking it for less is refused. Every
// entry is checked before any takes effect.
SIMCUDA_EXPORT CUresult CUDAAPI cuMemPoolSetAccess(CUmemoryPool pool, const CUmemAccessDesc* map,
                                                   size_t count) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (known_pool(pool) == nullptr || (map == nullptr && count != 0))
    return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < count; ++i) {
    const CUmemAccessDesc& a = map[i];
    if (a.location.type != CU_MEM_LOCATION_TYPE_DEVICE || !valid_device(a.location.id) ||
        a.location.id >= 64)
      return CUDA_ERROR_INVALID_VALUE;
    if (a.flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE && a.flags != CU_MEM_ACCESS_FLAGS_PROT_NONE)
      return CUDA_ERROR_NOT_SUPPORTED;
    if (a.location.id == pool->device && a.flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
      return CUDA_ERROR_INVALID_DEVICE;
  }
  std::lock_guard lock(state().mu);
  for (size_t i = 0; i < count; ++i) {
    const uint64_t bit = uint64_t{1} << map[i].location.id;
    if (map[i].location.id == pool->device) continue;
    if (map[i].flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
      pool->peer_read_write |= bit;
    else
      pool->peer_read_write &= ~bit;
  }
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemPoolGetAccess(CUmemAccess_flags* flags, CUmemoryPool pool,
                                                   CUmemLocation* location) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (flags == nullptr || location == nullptr || known_pool(pool) == nullptr)
    return CUDA_ERROR_INVALID_VALUE;
  if (location->type != CU_MEM_LOCATION_TYPE_DEVICE || !valid_device(location->id))
    return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(state().mu);
  const bool peer = location->id < 64 && (pool->peer_read_write >> location->id & 1) != 0;
  *flags = location->id == pool->device || peer ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE
                                                : CU_MEM_ACCESS_FLAGS_PROT_NONE;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemPoolTrimTo(CUmemoryPool pool, size_t min_bytes_to_keep) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (known_pool(pool) == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(state().mu);
  pool_release_to(*state().devices[pool->device], *pool, min_bytes_to_keep);
  return CUDA_SUCCESS;
}

// Explicit pools: pinned device memory on one device; the handle types, IPC export and the other
// properties are not modelled (refused when asked for, so that no caller relies on them).
SIMCUDA_EXPORT CUresult CUDAAPI cuMemPoolCreate(CUmemoryPool* pool, const CUmemPoolProps* props) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (pool == nullptr || props == nullptr || props->allocType != CU_MEM_ALLOCATION_TYPE_PINNED ||
      props->location.type != CU_MEM_LOCATION_TYPE_DEVICE)
    return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(props->location.id)) return CUDA_ERROR_INVALID_DEVICE;
  if (props->handleTypes != CU_MEM_HANDLE_TYPE_NONE) return CUDA_ERROR_NOT_SUPPORTED;
  std::lock_guard lock(state().mu);
  CUmemPoolHandle_st* made = nullptr;
  for (auto& p : state().created_pools)
    if (p->destroyed && p->used == 0 && p->reserved == 0) made = p.get();
  if (made == nullptr)
    made = state().created_pools.emplace_back(std::make_unique<CUmemPoolHandle_st>()).get();
  *made = CUmemPoolHandle_st{};
  made->device = props->location.id;
  *pool = made;
  return CUDA_SUCCESS;
}

// Its reserve goes back to the device; what is still allocated from it stays valid until freed
// (as the real driver defers the release), and the handle is not handed out again until then.
SIMCUDA_EXPORT CUresult CUDAAPI cuMemPoolDestroy(CUmemoryPool pool) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (pool == nullptr) return CUDA_ERROR_INVALID_VALUE;
  for (auto& d : state().devices)
    if (pool == &d->default_pool) return CUDA_ERROR_INVALID_VALUE;  // a device's own pool
  if (known_pool(pool) == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(state().mu);
  pool->destroyed = true;
  pool->release_threshold = 0;
  pool_release_to(*state().devices[pool->device], *pool, 0);
  return CUDA_SUCCESS;
}
