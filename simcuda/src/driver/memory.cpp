// Driver memory entry points: device, pitched, managed and pinned host memory, capacity queries,
// address ranges and pointer attributes.
#include <cstring>

#include "allocate.h"

using namespace simcuda;

SIMCUDA_EXPORT CUresult CUDAAPI cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytesize) {
  int device = 0;
  if (CUresult r = current_device(&device)) return r;
  if (dptr == nullptr || bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
  return allocate(device, bytesize, Kind::device, nullptr, dptr);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemAllocPitch_v2(CUdeviceptr* dptr, size_t* pitch, size_t width,
                                                   size_t height, unsigned int element_size) {
  int device = 0;
  if (CUresult r = current_device(&device)) return r;
  if (dptr == nullptr || pitch == nullptr || width == 0 || height == 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (element_size != 4 && element_size != 8 && element_size != 16) return CUDA_ERROR_INVALID_VALUE;
  uint64_t row = round_up(width, kSmallQuantum);  // rows start 512-byte aligned, as on a GPU
  if (height > UINT64_MAX / row) return CUDA_ERROR_OUT_OF_MEMORY;
  CUresult r = allocate(device, row * height, Kind::device, nullptr, dptr);
  if (r == CUDA_SUCCESS) *pitch = row;
  return r;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemAllocManaged(CUdeviceptr* dptr, size_t bytesize,
                                                  unsigned int flags) {
  int device = 0;
  if (CUresult r = current_device(&device)) return r;
  if (dptr == nullptr || bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
  if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST) return CUDA_ERROR_INVALID_VALUE;
  return allocate(device, bytesize, Kind::managed, nullptr, dptr);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemFree_v2(CUdeviceptr dptr) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (dptr == 0) return CUDA_SUCCESS;
  return release(dptr);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemGetInfo_v2(size_t* free_bytes, size_t* total_bytes) {
  int device = 0;
  if (CUresult r = current_device(&device)) return r;
  if (free_bytes == nullptr || total_bytes == nullptr) return CUDA_ERROR_INVALID_VALUE;
  State& s = state();
  std::lock_guard lock(s.mu);
  const Device& dev = *s.devices[device];
  *total_bytes = dev.capacity;
  *free_bytes = dev.free_bytes();
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemGetAddressRange_v2(CUdeviceptr* base, size_t* size,
                                                        CUdeviceptr dptr) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  RangeInfo info;
  if (!find_range(dptr, &info) || info.host) return CUDA_ERROR_NOT_FOUND;
  if (base) *base = info.base;
  if (size) *size = info.size;
  return CUDA_SUCCESS;
}

namespace {
CUresult host_alloc(void** pp, size_t bytesize) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (pp == nullptr || bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
  uint64_t mapped = 0;
  void* p = map_memory(bytesize, &mapped);
  if (p == nullptr) return CUDA_ERROR_OUT_OF_MEMORY;
  std::lock_guard lock(state().mu);
  state().host.emplace(reinterpret_cast<uintptr_t>(p), HostBlock{bytesize, mapped});
  *pp = p;
  return CUDA_SUCCESS;
}
}  // namespace

SIMCUDA_EXPORT CUresult CUDAAPI cuMemAllocHost_v2(void** pp, size_t bytesize) {
  return host_alloc(pp, bytesize);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemHostAlloc(void** pp, size_t bytesize, unsigned int flags) {
  constexpr unsigned kKnown =
      CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_WRITECOMBINED;
  if ((flags & ~kKnown) != 0) return CUDA_ERROR_INVALID_VALUE;
  return host_alloc(pp, bytesize);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemFreeHost(void* p) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (p == nullptr) return CUDA_SUCCESS;
  HostBlock block{};
  {
    std::lock_guard lock(state().mu);
    auto it = state().host.find(reinterpret_cast<uintptr_t>(p));
    if (it == state().host.end()) return CUDA_ERROR_INVALID_VALUE;
    block = it->second;
    state().host.erase(it);
  }
  unmap_memory(p, block.mapped);
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuPointerGetAttribute(void* data, CUpointer_attribute attribute,
                                                      CUdeviceptr ptr) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (data == nullptr) return CUDA_ERROR_INVALID_VALUE;
  RangeInfo info;
  if (!find_range(ptr, &info)) return CUDA_ERROR_INVALID_VALUE;
  switch (attribute) {
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
      *static_cast<unsigned*>(data) = info.host ? CU_MEMORYTYPE_HOST : CU_MEMORYTYPE_DEVICE;
      return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
      *static_cast<int*>(data) = info.host ? 0 : info.device;
      return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
      *static_cast<CUdeviceptr*>(data) = ptr;
      return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER:
      // Device memory is host memory here, but like a GPU only managed and host memory have one.
      *static_cast<void**>(data) =
          (info.host || info.managed) ? reinterpret_cast<void*>(ptr) : nullptr;
      return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED:
      *static_cast<unsigned*>(data) = info.managed ? 1 : 0;
      return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
      *static_cast<CUdeviceptr*>(data) = info.base;
      return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
      *static_cast<size_t*>(data) = info.size;
      return CUDA_SUCCESS;
    default:
      return CUDA_ERROR_NOT_SUPPORTED;
  }
}

// Copies and fills: simulated device memory is host memory, so they are plain memcpy/memset.
SIMCUDA_EXPORT CUresult CUDAAPI cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (bytes == 0) return CUDA_SUCCESS;
  if (dst == 0 || src == 0) return CUDA_ERROR_INVALID_VALUE;
  std::memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), bytes);
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemsetD8_v2(CUdeviceptr dst, unsigned char value, size_t n) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (n == 0) return CUDA_SUCCESS;
  if (dst == 0) return CUDA_ERROR_INVALID_VALUE;
  std::memset(reinterpret_cast<void*>(dst), value, n);
  return CUDA_SUCCESS;
}
