// Runtime memory calls. Allocation and free go to the driver entry point a real cudart uses;
// copies and fills are plain memcpy/memset, since simulated device memory is host memory.
#include <cstring>

#include "driver.h"

using namespace simcuda::rt;

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMalloc(void** ptr, size_t size) {
  return allocate(ptr, size,
                  [&](const Driver& d, CUdeviceptr* p) { return d.cuMemAlloc(p, size); });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaFree(void* ptr) {
  // cudaFree(0) only initialises the runtime.
  return with_driver([&](const Driver& d) {
    return ptr == nullptr ? CUDA_SUCCESS : d.cuMemFree(reinterpret_cast<CUdeviceptr>(ptr));
  });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocManaged(void** ptr, size_t size,
                                                       unsigned int flags) {
  return allocate(ptr, size, [&](const Driver& d, CUdeviceptr* p) {
    return d.cuMemAllocManaged(p, size, flags);
  });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocPitch(void** ptr, size_t* pitch, size_t width,
                                                     size_t height) {
  const Driver* d = nullptr;
  if (ptr == nullptr || pitch == nullptr) return finish(cudaErrorInvalidValue);
  if (cudaError_t e = ready(&d)) return finish(e);
  if (width == 0 || height == 0) {
    *ptr = nullptr;
    *pitch = 0;
    return cudaSuccess;
  }
  CUdeviceptr p = 0;
  CUresult r = d->cuMemAllocPitch(&p, pitch, width, height, 16);
  if (r == CUDA_SUCCESS) *ptr = reinterpret_cast<void*>(p);
  return finish(r);
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMalloc3D(cudaPitchedPtr* out, cudaExtent extent) {
  const Driver* d = nullptr;
  if (out == nullptr) return finish(cudaErrorInvalidValue);
  if (cudaError_t e = ready(&d)) return finish(e);
  *out = cudaPitchedPtr{nullptr, 0, extent.width, extent.height};
  if (extent.width == 0 || extent.height == 0 || extent.depth == 0) return cudaSuccess;
  if (extent.height > SIZE_MAX / extent.depth) return finish(cudaErrorMemoryAllocation);
  CUdeviceptr p = 0;
  size_t pitch = 0;
  CUresult r = d->cuMemAllocPitch(&p, &pitch, extent.width, extent.height * extent.depth, 16);
  if (r == CUDA_SUCCESS)
    *out = cudaPitchedPtr{reinterpret_cast<void*>(p), pitch, extent.width, extent.height};
  return finish(r);
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocHost(void** ptr, size_t size) {
  if (ptr == nullptr) return finish(cudaErrorInvalidValue);
  return with_driver([&](const Driver& d) { return d.cuMemAllocHost(ptr, size); });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaHostAlloc(void** ptr, size_t size, unsigned int flags) {
  if (ptr == nullptr) return finish(cudaErrorInvalidValue);
  return with_driver([&](const Driver& d) { return d.cuMemHostAlloc(ptr, size, flags); });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaFreeHost(void* ptr) {
  return with_driver([&](const Driver& d) { return d.cuMemFreeHost(ptr); });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (free_bytes == nullptr || total_bytes == nullptr) return finish(cudaErrorInvalidValue);
  return with_driver([&](const Driver& d) { return d.cuMemGetInfo(free_bytes, total_bytes); });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaPointerGetAttributes(cudaPointerAttributes* attributes,
                                                              const void* ptr) {
  const Driver* d = nullptr;
  if (attributes == nullptr) return finish(cudaErrorInvalidValue);
  if (cudaError_t e = ready(&d)) return finish(e);
  auto dptr = reinterpret_cast<CUdeviceptr>(ptr);
  unsigned type = 0;
  unsigned managed = 0;
  int device = -1;
  if (ptr == nullptr || d->cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, dptr)) {
    // Memory CUDA does not know: plain host memory.
    *attributes =
        cudaPointerAttributes{cudaMemoryTypeUnregistered, -2, nullptr, const_cast<void*>(ptr), {}};
    return cudaSuccess;
  }
  d->cuPointerGetAttribute(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, dptr);
  d->cuPointerGetAttribute(&device, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, dptr);
  void* p = const_cast<void*>(ptr);
  if (type == CU_MEMORYTYPE_HOST)
    *attributes = cudaPointerAttributes{cudaMemoryTypeHost, device, p, p, {}};
  else if (managed)
    *attributes = cudaPointerAttributes{cudaMemoryTypeManaged, device, p, p, {}};
  else
    *attributes = cudaPointerAttributes{cudaMemoryTypeDevice, device, p, nullptr, {}};
  return cudaSuccess;
}

namespace {

cudaError_t copy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault)
    return cudaErrorInvalidMemcpyDirection;
  if (count == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return cudaErrorInvalidValue;
  std::memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t fill(void* dst, int value, size_t count) {
  if (count == 0) return cudaSuccess;
  if (dst == nullptr) return cudaErrorInvalidValue;
  std::memset(dst, value, count);
  return cudaSuccess;
}

}  // namespace

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemcpy(void* dst, const void* src, size_t count,
                                                cudaMemcpyKind kind) {
  return finish(copy(dst, src, count, kind));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemcpy_ptds(void* dst, const void* src, size_t count,
                                                     cudaMemcpyKind kind) {
  return finish(copy(dst, src, count, kind));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemcpyAsync(void* dst, const void* src, size_t count,
                                                     cudaMemcpyKind kind, cudaStream_t) {
  return finish(copy(dst, src, count, kind));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemcpyAsync_ptsz(void* dst, const void* src, size_t count,
                                                          cudaMemcpyKind kind, cudaStream_t) {
  return finish(copy(dst, src, count, kind));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemset(void* dst, int value, size_t count) {
  return finish(fill(dst, value, count));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemset_ptds(void* dst, int value, size_t count) {
  return finish(fill(dst, value, count));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemsetAsync(void* dst, int value, size_t count,
                                                     cudaStream_t) {
  return finish(fill(dst, value, count));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMemsetAsync_ptsz(void* dst, int value, size_t count,
                                                          cudaStream_t) {
  return finish(fill(dst, value, count));
}
