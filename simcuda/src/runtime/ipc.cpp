// Runtime IPC calls over the driver's, as cudart does: cudaIpcGetMemHandle -> cuIpcGetMemHandle,
// cudaIpcOpenMemHandle -> cuIpcOpenMemHandle_v2, cudaIpcCloseMemHandle -> cuIpcCloseMemHandle.
// The entry points are resolved through the driver's cuGetProcAddress_v2 at first use, like the
// others (driver.cpp), and kept here so that the rest of the runtime does not carry them.
#include <cudaTypedefs.h>

#include <atomic>
#include <cstring>

#include "driver.h"

using namespace simcuda::rt;

namespace {

struct Ipc {
  PFN_cuIpcGetMemHandle_v4010 get = nullptr;
  PFN_cuIpcOpenMemHandle_v11000 open = nullptr;
  PFN_cuIpcCloseMemHandle_v4010 close = nullptr;
};

// Null when the driver cannot give all three.
const Ipc* ipc(const Driver& d) {
  static const Ipc* resolved = [&]() -> const Ipc* {
    static Ipc i;
    CUdriverProcAddressQueryResult status{};
    auto find = [&](const char* name, int version, void** out) {
      return d.cuGetProcAddress_v2(name, out, version, CU_GET_PROC_ADDRESS_LEGACY_STREAM,
                                   &status) == CUDA_SUCCESS &&
             *out != nullptr;
    };
    const bool ok = find("cuIpcGetMemHandle", 13000, reinterpret_cast<void**>(&i.get)) &&
                    find("cuIpcOpenMemHandle", 13000, reinterpret_cast<void**>(&i.open)) &&
                    find("cuIpcCloseMemHandle", 13000, reinterpret_cast<void**>(&i.close));
    return ok ? &i : nullptr;
  }();
  return resolved;
}

template <class Call>
cudaError_t with_ipc(Call call) {
  return with_driver([&](const Driver& d) -> CUresult {
    const Ipc* i = ipc(d);
    return i == nullptr ? CUDA_ERROR_NOT_SUPPORTED : call(*i);
  });
}

}  // namespace

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaIpcGetMemHandle(cudaIpcMemHandle_t* handle, void* ptr) {
  if (handle == nullptr) return finish(cudaErrorInvalidValue);
  return with_ipc([&](const Ipc& i) {
    CUipcMemHandle h{};
    const CUresult r = i.get(&h, reinterpret_cast<CUdeviceptr>(ptr));
    static_assert(sizeof h == sizeof *handle);
    if (r == CUDA_SUCCESS) std::memcpy(handle, &h, sizeof h);
    return r;
  });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaIpcOpenMemHandle(void** ptr, cudaIpcMemHandle_t handle,
                                                          unsigned int flags) {
  if (ptr == nullptr) return finish(cudaErrorInvalidValue);
  return with_ipc([&](const Ipc& i) {
    CUipcMemHandle h{};
    std::memcpy(&h, &handle, sizeof h);
    CUdeviceptr p = 0;
    const CUresult r = i.open(&p, h, flags);
    if (r == CUDA_SUCCESS) *ptr = reinterpret_cast<void*>(p);
    return r;
  });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaIpcCloseMemHandle(void* ptr) {
  return with_ipc([&](const Ipc& i) { return i.close(reinterpret_cast<CUdeviceptr>(ptr)); });
}
