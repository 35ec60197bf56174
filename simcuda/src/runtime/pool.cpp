// Runtime stream-ordered allocation and memory pools, each forwarded to its driver entry point
// (the _ptsz runtime variants to the driver's _ptsz ones).
#include "driver.h"

using namespace simcuda::rt;

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocAsync(void** ptr, size_t size, cudaStream_t s) {
  return allocate(ptr, size,
                  [&](const Driver& d, CUdeviceptr* p) { return d.cuMemAllocAsync(p, size, s); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocAsync_ptsz(void** ptr, size_t size, cudaStream_t s) {
  return allocate(ptr, size, [&](const Driver& d, CUdeviceptr* p) {
    return d.cuMemAllocAsync_ptsz(p, size, s);
  });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocFromPoolAsync(void** ptr, size_t size,
                                                             cudaMemPool_t pool, cudaStream_t s) {
  return allocate(ptr, size, [&](const Driver& d, CUdeviceptr* p) {
    return d.cuMemAllocFromPoolAsync(p, size, pool, s);
  });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocFromPoolAsync_ptsz(void** ptr, size_t size,
                                                                  cudaMemPool_t pool,
                                                                  cudaStream_t s) {
  return allocate(ptr, size, [&](const Driver& d, CUdeviceptr* p) {
    return d.cuMemAllocFromPoolAsync_ptsz(p, size, pool, s);
  });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaFreeAsync(void* ptr, cudaStream_t s) {
  return with_driver([&](const Driver& d) {
    return ptr == nullptr ? CUDA_SUCCESS : d.cuMemFreeAsync(reinterpret_cast<CUdeviceptr>(ptr), s);
  });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaFreeAsync_ptsz(void* ptr, cudaStream_t s) {
  return with_driver([&](const Driver& d) {
    return ptr == nullptr ? CUDA_SUCCESS
                          : d.cuMemFreeAsync_ptsz(reinterpret_cast<CUdeviceptr>(ptr), s);
  });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
  const Driver* d = nullptr;
  if (pool == nullptr) return finish(cudaErrorInvalidValue);
  if (cudaError_t e = driver(&d)) return finish(e);
  return finish(d->cuDeviceGetDefaultMemPool(pool, device));
}

// cudaMemPoolAttr and CUmemPool_attribute share their values.
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemPoolGetAttribute(cudaMemPool_t pool,
                                                             cudaMemPoolAttr attr, void* value) {
  const Driver* d = nullptr;
  if (cudaError_t e = driver(&d)) return finish(e);
  return finish(d->cuMemPoolGetAttribute(pool, static_cast<CUmemPool_attribute>(attr), value));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemPoolSetAttribute(cudaMemPool_t pool,
                                                             cudaMemPoolAttr attr, void* value) {
  const Driver* d = nullptr;
  if (cudaError_t e = driver(&d)) return finish(e);
  return finish(d->cuMemPoolSetAttribute(pool, static_cast<CUmemPool_attribute>(attr), value));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemPoolTrimTo(cudaMemPool_t pool, size_t keep) {
  const Driver* d = nullptr;
  if (cudaError_t e = driver(&d)) return finish(e);
  return finish(d->cuMemPoolTrimTo(pool, keep));
}

// cudaMemAccessFlags / CUmemAccess_flags and cudaMemLocation / CUmemLocation share their values
// and layout.
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemPoolGetAccess(cudaMemAccessFlags* flags,
                                                          cudaMemPool_t pool,
                                                          cudaMemLocation* location) {
  const Driver* d = nullptr;
  if (cudaError_t e = driver(&d)) return finish(e);
  return finish(d->cuMemPoolGetAccess(reinterpret_cast<CUmemAccess_flags*>(flags), pool,
                                      reinterpret_cast<CUmemLocation*>(location)));
}
// cudaMemAccessDesc and CUmemAccessDesc share their layout.
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemPoolSetAccess(cudaMemPool_t pool,
                                                          const cudaMemAccessDesc* map,
                                                          size_t count) {
  const Driver* d = nullptr;
  if (cudaError_t e = driver(&d)) return finish(e);
  return finish(d->cuMemPoolSetAccess(pool, reinterpret_cast<const CUmemAccessDesc*>(map), count));
}

// cudaMemPoolProps and CUmemPoolProps share their layout and values.
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemPoolCreate(cudaMemPool_t* pool,
                                                       const cudaMemPoolProps* props) {
  static_assert(sizeof(cudaMemPoolProps) == sizeof(CUmemPoolProps));
  const Driver* d = nullptr;
  if (cudaError_t e = driver(&d)) return finish(e);
  return finish(d->cuMemPoolCreate(pool, reinterpret_cast<const CUmemPoolProps*>(props)));
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemPoolDestroy(cudaMemPool_t pool) {
  const Driver* d = nullptr;
  if (cudaError_t e = driver(&d)) return finish(e);
  return finish(d->cuMemPoolDestroy(pool));
}
