// The simulated runtime's link to the driver. Like the real libcudart, it dlopen()s
// "libcuda.so.1", looks up cuGetProcAddress_v2 with dlsym, and resolves every driver entry point
// it uses through it: an interposer sees exactly the calls it would see on a GPU.
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>

namespace simcuda::rt {

// Requested driver API version: this runtime's own, as real cudart does.
inline constexpr int kDriverApiVersion = CUDART_VERSION;

struct Driver {
  PFN_cuGetProcAddress_v12000 cuGetProcAddress_v2;
  PFN_cuInit_v2000 cuInit;
  PFN_cuDriverGetVersion_v2020 cuDriverGetVersion;
  PFN_cuDeviceGetCount_v2000 cuDeviceGetCount;
  PFN_cuDeviceGetName_v2000 cuDeviceGetName;
  PFN_cuDeviceTotalMem_v3020 cuDeviceTotalMem;
  PFN_cuDevicePrimaryCtxRetain_v7000 cuDevicePrimaryCtxRetain;
  PFN_cuCtxGetCurrent_v4000 cuCtxGetCurrent;
  PFN_cuCtxSetCurrent_v4000 cuCtxSetCurrent;
  PFN_cuCtxGetDevice_v13000 cuCtxGetDevice;
  PFN_cuCtxSynchronize_v13000 cuCtxSynchronize;
  PFN_cuMemAlloc_v3020 cuMemAlloc;
  PFN_cuMemFree_v3020 cuMemFree;
  PFN_cuMemAllocPitch_v3020 cuMemAllocPitch;
  PFN_cuMemAllocManaged_v6000 cuMemAllocManaged;
  PFN_cuMemAllocHost_v3020 cuMemAllocHost;
  PFN_cuMemHostAlloc_v2020 cuMemHostAlloc;
  PFN_cuMemFreeHost_v2000 cuMemFreeHost;
  PFN_cuMemGetInfo_v3020 cuMemGetInfo;
  PFN_cuPointerGetAttribute_v4000 cuPointerGetAttribute;
  PFN_cuMemAllocAsync_v11020 cuMemAllocAsync;
  PFN_cuMemAllocAsync_v11020_ptsz cuMemAllocAsync_ptsz;
  PFN_cuMemFreeAsync_v11020 cuMemFreeAsync;
  PFN_cuMemFreeAsync_v11020_ptsz cuMemFreeAsync_ptsz;
  PFN_cuMemAllocFromPoolAsync_v11020 cuMemAllocFromPoolAsync;
  PFN_cuMemAllocFromPoolAsync_v11020_ptsz cuMemAllocFromPoolAsync_ptsz;
  PFN_cuDeviceGetDefaultMemPool_v11020 cuDeviceGetDefaultMemPool;
  PFN_cuMemPoolGetAttribute_v11020 cuMemPoolGetAttribute;
  PFN_cuMemPoolSetAttribute_v11020 cuMemPoolSetAttribute;
  PFN_cuMemPoolTrimTo_v11020 cuMemPoolTrimTo;
  PFN_cuMemPoolGetAccess_v11020 cuMemPoolGetAccess;
  PFN_cuMemPoolSetAccess_v11020 cuMemPoolSetAccess;
  PFN_cuMemPoolCreate_v11020 cuMemPoolCreate;
  PFN_cuMemPoolDestroy_v11020 cuMemPoolDestroy;
  PFN_cuStreamCreate_v2000 cuStreamCreate;
  PFN_cuStreamDestroy_v4000 cuStreamDestroy;
  PFN_cuStreamSynchronize_v2000 cuStreamSynchronize;
  PFN_cuStreamSynchronize_v7000_ptsz cuStreamSynchronize_ptsz;
  PFN_cuStreamQuery_v2000 cuStreamQuery;
  PFN_cuStreamGetDevice_v12080 cuStreamGetDevice;
  PFN_cuStreamGetDevice_v12080_ptsz cuStreamGetDevice_ptsz;
  PFN_cuEventCreate_v2000 cuEventCreate;
  PFN_cuEventRecord_v2000 cuEventRecord;
  PFN_cuEventRecord_v7000_ptsz cuEventRecord_ptsz;
  PFN_cuEventSynchronize_v2000 cuEventSynchronize;
  PFN_cuEventQuery_v2000 cuEventQuery;
  PFN_cuEventDestroy_v4000 cuEventDestroy;
  PFN_cuEventElapsedTime_v12080 cuEventElapsedTime;
  PFN_cuDeviceCanAccessPeer_v4000 cuDeviceCanAccessPeer;
  PFN_cuCtxEnablePeerAccess_v4000 cuCtxEnablePeerAccess;
  PFN_cuCtxDisablePeerAccess_v4000 cuCtxDisablePeerAccess;
};

// Loads and resolves the driver once and runs cuInit. On failure *d is null and the runtime
// error is returned (cudaErrorInsufficientDriver when no libcuda.so.1 can be loaded).
cudaError_t driver(const Driver** d);

// driver() plus a current context: the thread's current driver context if it has one, else the
// primary context of the thread's runtime device (retained once per process, as cudart does).
cudaError_t ready(const Driver** d);

// The thread's runtime device (cudaSetDevice), and setting it (binds its primary context).
int& thread_device();
// The primary context of `device`, retained once per process (as bind_device does).
cudaError_t primary_context(const Driver& d, int device, CUcontext* ctx);
cudaError_t bind_device(const Driver& d, int device);

cudaError_t to_runtime(CUresult r);

// Every runtime entry point returns through this: records failures for cudaGetLastError.
cudaError_t finish(cudaError_t e);
inline cudaError_t finish(CUresult r) {
  return finish(to_runtime(r));
}
cudaError_t& last_error();

// The shape of most entry points: the driver with a current context (ready()), then call(driver),
// its result returned through finish(). Argument checks that come before ready() stay with the
// caller.
template <class Call>
cudaError_t with_driver(Call call) {
  const Driver* d = nullptr;
  if (cudaError_t e = ready(&d)) return finish(e);
  return finish(call(*d));
}

// A device allocation whose driver call, alloc(driver, &p), returns a CUdeviceptr: a NULL ptr is
// refused, and size 0 succeeds with a null pointer (as in CUDA) without calling the driver.
template <class Alloc>
cudaError_t allocate(void** ptr, size_t size, Alloc alloc) {
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

}  // namespace simcuda::rt

#define SIMCUDA_EXPORT extern "C" __attribute__((visibility("default")))
