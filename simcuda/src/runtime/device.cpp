// Runtime device management and versions.
#include <cstring>

#include "driver.h"

using namespace simcuda::rt;

SIMCUDA_EXPORT int simcuda_is_simulated(void) {
  return 1;
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaGetDeviceCount(int* count) {
  const Driver* d = nullptr;
  if (count == nullptr) return finish(cudaErrorInvalidValue);
  if (cudaError_t e = driver(&d)) return finish(e);
  return finish(d->cuDeviceGetCount(count));
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaSetDevice(int device) {
  const Driver* d = nullptr;
  if (cudaError_t e = driver(&d)) return finish(e);
  return finish(bind_device(*d, device));
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaGetDevice(int* device) {
  const Driver* d = nullptr;
  if (device == nullptr) return finish(cudaErrorInvalidValue);
  if (cudaError_t e = driver(&d)) return finish(e);
  CUcontext ctx = nullptr;
  if (d->cuCtxGetCurrent(&ctx) == CUDA_SUCCESS && ctx != nullptr) {
    CUdevice dev = 0;
    if (d->cuCtxGetDevice(&dev, ctx) == CUDA_SUCCESS) {
      *device = dev;
      return cudaSuccess;
    }
  }
  *device = thread_device();
  return cudaSuccess;
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  const Driver* d = nullptr;
  if (prop == nullptr) return finish(cudaErrorInvalidValue);
  if (cudaError_t e = driver(&d)) return finish(e);
  int count = 0;
  if (CUresult r = d->cuDeviceGetCount(&count)) return finish(r);
  if (device < 0 || device >= count) return finish(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof(*prop));
  if (CUresult r = d->cuDeviceGetName(prop->name, sizeof(prop->name), device)) return finish(r);
  if (CUresult r = d->cuDeviceTotalMem(&prop->totalGlobalMem, device)) return finish(r);
  // Plausible values for a current data-centre GPU; simcuda runs no kernels.
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 132;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
  prop->sharedMemPerBlock = 48 << 10;
  prop->regsPerBlock = 65536;
  prop->memPitch = 2147483647;
  prop->totalConstMem = 64 << 10;
  prop->textureAlignment = 512;
  prop->memoryBusWidth = 5120;
  prop->l2CacheSize = 50 << 20;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->unifiedAddressing = 1;
  prop->managedMemory = 1;
  prop->concurrentManagedAccess = 1;
  prop->pciDeviceID = device;
  return cudaSuccess;
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaDeviceSynchronize(void) {
  const Driver* d = nullptr;
  if (cudaError_t e = ready(&d)) return finish(e);
  return finish(d->cuCtxSynchronize(nullptr));
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaDriverGetVersion(int* version) {
  const Driver* d = nullptr;
  if (version == nullptr) return finish(cudaErrorInvalidValue);
  if (driver(&d) != cudaSuccess) {  // as in CUDA: 0 when no driver is installed
    *version = 0;
    return cudaSuccess;
  }
  return finish(d->cuDriverGetVersion(version));
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaRuntimeGetVersion(int* version) {
  if (version == nullptr) return finish(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}
