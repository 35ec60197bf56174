// Runtime stream-ordered allocation and memory pools, each forwarded to its driver entry point
// (the _ptsz runtime variants to the driver's _ptsz ones).
#include "driver.h"

using namespace simcuda::rt;

namespace {

template <typename Alloc>
cudaError_t alloc_async(void** ptr, size_t size, Alloc alloc) {
  const Driver* d = nullptr;
  if (ptr == nullptr) return finish(cudaErrorInvalidValue);
  if (cudaError_t e = ready(&d)) return finish(e);
  if (size == 0) {
    *ptr = nullptr;
    return cudaSuccess;
  }
  CUdeviceptr p = 0;
  CUresult r = alloc(*d, &p);
  if (r == CUDA_SUCCESS) *ptr = reinterpret_cast<void*>(p);
  return finish(r);
}

}  // namespace

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocAsync(void** ptr, size_t size, cudaStream_t s) {
  return alloc_async(
      ptr, size, [&](const Driver& d, CUdeviceptr* p) { return d.cuMemAllocAsync(p, size, s); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocAsync_ptsz(void** ptr, size_t size, cudaStream_t s) {
  return alloc_async(ptr, size, [&](const Driver& d, CUdeviceptr* p) {
    return d.cuMemAllocAsync_ptsz(p, size, s);
  });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocFromPoolAsync(void** ptr, size_t size,
                                                             cudaMemPool_t pool, cudaStream_t s) {
  return alloc_async(ptr, size, [&](const Driver& d, CUdeviceptr* p) {
    return d.cuMemAllocFromPoolAsync(p, size, pool, s);
  });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocFromPoolAsync_ptsz(void** ptr, size_t size,
                                                                  cudaMemPool_t pool,
                                                                  cudaStream_t s) {
  return alloc_async(ptr, size, [&](const Driver& d, CUdeviceptr* p) {
    return d.cuMemAllocFromPoolAsync_ptsz(p, size, pool, s);
  });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaFreeAsync(void* ptr, cudaStream_t s) {
  const Driver* d = nullptr;
  if (cudaError_t e = ready(&d)) return finish(e);
  if (ptr == nullptr) return cudaSuccess;
  return finish(d->cuMemFreeAsync(reinterpret_cast<CUdeviceptr>(ptr), s));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaFreeAsync_ptsz(void* ptr, cudaStream_t s) {
  const Driver* d = nullptr;
  if (cudaError_t e = ready(&d)) return finish(e);
  if (ptr == nullptr) return cudaSuccess;
  return finish(d->cuMemFreeAsync_ptsz(reinterpret_cast<CUdeviceptr>(ptr), s));
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
