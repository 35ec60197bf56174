// The two CUDA hook families' traits (hook_family.h describes what a family provides), shared by
// every hook file: the runtime (cudaError_t) and the driver (CUresult).
#pragma once

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "hooks/hook_family.h"
#include "real.h"

namespace gpumem::hooks::families {

struct Runtime {
  using Result = cudaError_t;
  using Stream = cudaStream_t;
  using Pool = cudaMemPool_t;
  static constexpr Result kSuccess = cudaSuccess;
  static constexpr resources::Family kFamily = resources::Family::runtime;
  static constexpr Result kNotInitialised = cudaErrorInitializationError;
  static constexpr const char* kMissingWhy = "no CUDA runtime (libcudart.so.13) is loaded";
  static constexpr const char* kNotInitialisedName = "cudaErrorInitializationError";
  static int current_device() {
    auto get = GPUMEM_REAL_RUNTIME(cudaGetDevice);
    int d = -1;
    if (get == nullptr || get(&d) != cudaSuccess) return -1;
    return d;
  }
  static int stream_device(cudaStream_t stream) {
    auto get = GPUMEM_REAL_RUNTIME_OPTIONAL(cudaStreamGetDevice);
    int d = -1;
    if (get == nullptr || get(stream, &d) != cudaSuccess) return current_device();
    return d;
  }
  static int device_count() {
    auto get = GPUMEM_REAL_RUNTIME(cudaGetDeviceCount);
    int n = 0;
    if (get == nullptr || get(&n) != cudaSuccess) return 0;
    return n;
  }
  static bool pool_writable_from(cudaMemPool_t pool, int device) {
    auto get = GPUMEM_REAL_RUNTIME_OPTIONAL(cudaMemPoolGetAccess);
    cudaMemLocation where{};
    where.type = cudaMemLocationTypeDevice;
    where.id = device;
    cudaMemAccessFlags flags = cudaMemAccessFlagsProtNone;
    return get != nullptr && get(&flags, pool, &where) == cudaSuccess &&
           flags == cudaMemAccessFlagsProtReadWrite;
  }
};

struct Driver {
  using Result = CUresult;
  using Stream = CUstream;
  using Pool = CUmemoryPool;
  static constexpr Result kSuccess = CUDA_SUCCESS;
  static constexpr resources::Family kFamily = resources::Family::driver;
  static constexpr Result kNotInitialised = CUDA_ERROR_NOT_INITIALIZED;
  static constexpr const char* kMissingWhy = "libcuda.so.1 cannot be loaded";
  static constexpr const char* kNotInitialisedName = "CUDA_ERROR_NOT_INITIALIZED";
  static int current_device() {
    auto get = GPUMEM_REAL_DRIVER(cuCtxGetDevice);
    CUdevice d = -1;
    if (get == nullptr || get(&d) != CUDA_SUCCESS) return -1;
    return static_cast<int>(d);
  }
  static int stream_device(CUstream stream) {
    auto get = GPUMEM_REAL_DRIVER_OPTIONAL(cuStreamGetDevice);
    CUdevice d = -1;
    if (get == nullptr || get(stream, &d) != CUDA_SUCCESS) return current_device();
    return static_cast<int>(d);
  }
  static int device_count() {
    auto get = GPUMEM_REAL_DRIVER(cuDeviceGetCount);
    int n = 0;
    if (get == nullptr || get(&n) != CUDA_SUCCESS) return 0;
    return n;
  }
  static bool pool_writable_from(CUmemoryPool pool, int device) {
    auto get = GPUMEM_REAL_DRIVER_OPTIONAL(cuMemPoolGetAccess);
    CUmemLocation where{};
    where.type = CU_MEM_LOCATION_TYPE_DEVICE;
    where.id = device;
    CUmemAccess_flags flags = CU_MEM_ACCESS_FLAGS_PROT_NONE;
    return get != nullptr && get(&flags, pool, &where) == CUDA_SUCCESS &&
           flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  }
};

}  // namespace gpumem::hooks::families

// A hook's opening (GPUMEM_HOOK_PROLOGUE) for the real function `name` of each family.
#define GPUMEM_RUNTIME_PROLOGUE(name, ...)                                                   \
  GPUMEM_HOOK_PROLOGUE(::gpumem::hooks::families::Runtime, GPUMEM_REAL_RUNTIME(name), #name, \
                       __VA_ARGS__)
#define GPUMEM_DRIVER_PROLOGUE(name, ...)                                                  \
  GPUMEM_HOOK_PROLOGUE(::gpumem::hooks::families::Driver, GPUMEM_REAL_DRIVER(name), #name, \
                       __VA_ARGS__)
