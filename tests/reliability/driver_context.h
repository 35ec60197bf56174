// The child programs of the reliability tests: initialise the driver and make device 0's primary
// context current on the calling thread, as a driver-API program does.
#pragma once

#include <cuda.h>

namespace reliability {

inline bool init_driver() {
  CUdevice dev;
  CUcontext ctx;
  return cuInit(0) == CUDA_SUCCESS && cuDeviceGet(&dev, 0) == CUDA_SUCCESS &&
         cuDevicePrimaryCtxRetain(&ctx, dev) == CUDA_SUCCESS &&
         cuCtxSetCurrent(ctx) == CUDA_SUCCESS;
}

}  // namespace reliability
