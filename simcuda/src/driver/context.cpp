// cuInit, devices and contexts. The primary context of a device is one object per device;
// created contexts are heap objects tracked in State::contexts. The current context is per thread.
#include <cstring>

#include "state.h"

using namespace simcuda;

namespace {
constexpr const char* kDeviceName = "gpumem simulated device";
}  // namespace

CUctx_st* simcuda::context_of(CUcontext ctx) {
  State& s = state();
  if (ctx == nullptr) return nullptr;
  for (auto& d : s.devices)
    if (ctx == &d->primary) return ctx;
  std::lock_guard lock(s.mu);
  return s.contexts.count(ctx) ? ctx : nullptr;
}

SIMCUDA_EXPORT int simcuda_is_simulated(void) {
  return 1;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuInit(unsigned int flags) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  state();
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuDriverGetVersion(int* version) {
  if (version == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *version = CUDA_VERSION;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuDeviceGetCount(int* count) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (count == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *count = static_cast<int>(state().devices.size());
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuDeviceGet(CUdevice* device, int ordinal) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (device == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(ordinal)) return CUDA_ERROR_INVALID_DEVICE;
  *device = ordinal;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuDeviceGetName(char* name, int len, CUdevice dev) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (name == nullptr || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  std::strncpy(name, kDeviceName, static_cast<size_t>(len) - 1);
  name[len - 1] = '\0';
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuDeviceTotalMem_v2(size_t* bytes, CUdevice dev) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (bytes == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  *bytes = state().devices[dev]->capacity;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice dev) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (ctx == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  State& s = state();
  std::lock_guard lock(s.mu);
  s.devices[dev]->primary.retains++;
  *ctx = &s.devices[dev]->primary;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  State& s = state();
  std::lock_guard lock(s.mu);
  // The primary context's memory stays valid: simcuda never resets a device on last release.
  if (s.devices[dev]->primary.retains == 0) return CUDA_ERROR_INVALID_CONTEXT;
  s.devices[dev]->primary.retains--;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuCtxCreate_v4(CUcontext* ctx, CUctxCreateParams* params,
                                               unsigned int flags, CUdevice dev) {
  (void)params;
  (void)flags;
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (ctx == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  auto* c = new CUctx_st{dev, false, 0};
  {
    std::lock_guard lock(state().mu);
    state().contexts.insert(c);
  }
  current_context() = c;
  *ctx = c;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuCtxDestroy_v2(CUcontext ctx) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    if (ctx == nullptr || s.contexts.erase(ctx) == 0) return CUDA_ERROR_INVALID_CONTEXT;
  }
  if (current_context() == ctx) current_context() = nullptr;
  delete ctx;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuCtxGetCurrent(CUcontext* ctx) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (ctx == nullptr) return CUDA_ERROR_INVALID_VALUE;
  *ctx = current_context();
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuCtxSetCurrent(CUcontext ctx) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (ctx != nullptr && context_of(ctx) == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  current_context() = ctx;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuCtxGetDevice(CUdevice* device) {
  if (device == nullptr) return CUDA_ERROR_INVALID_VALUE;
  int d = 0;
  CUresult r = current_device(&d);
  if (r == CUDA_SUCCESS) *device = d;
  return r;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuCtxGetDevice_v2(CUdevice* device, CUcontext ctx) {
  if (ctx == nullptr) return cuCtxGetDevice(device);
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (device == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (context_of(ctx) == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  *device = ctx->device;
  return CUDA_SUCCESS;
}

// All simulated work completes inside the call that queued it, so synchronising only checks.
SIMCUDA_EXPORT CUresult CUDAAPI cuCtxSynchronize(void) {
  int d = 0;
  return current_device(&d);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuCtxSynchronize_v2(CUcontext ctx) {
  if (ctx == nullptr) return cuCtxSynchronize();
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  return context_of(ctx) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}
