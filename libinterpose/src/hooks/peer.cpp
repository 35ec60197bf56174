// Peer access: cudaDeviceEnablePeerAccess / cudaDeviceDisablePeerAccess and cuCtxEnablePeerAccess
// / cuCtxDisablePeerAccess. The real call runs; when it succeeds, the policy hears which device
// may now (or no longer) reach which device's memory (policy::peer_access_changed), because
// memory the expandable pool maps with cuMemMap is reachable only from the devices
// cuMemSetAccess names, not through peer access as cudaMalloc memory is (docs/policies.md, "Peer
// access"). Nothing is recorded in the trace: no memory changes hands.
#include <cuda.h>
#include <cuda_runtime_api.h>

#include "hooks/families.h"
#include "hooks/hook_family.h"
#include "hooks/wrapped.h"
#include "policy.h"
#include "real.h"

namespace gpumem::hooks {
namespace {

using families::Driver;
using families::Runtime;

// The device of a context (cuCtxGetDevice_v2 asks any context, not only the current one); -1
// when the driver cannot say.
int device_of_context(CUcontext ctx) {
  auto get = GPUMEM_REAL_DRIVER(cuCtxGetDevice_v2);
  CUdevice d = -1;
  if (get == nullptr || get(&d, ctx) != CUDA_SUCCESS) return -1;
  return static_cast<int>(d);
}

template <trace::Lookup L>
cudaError_t hook_cudaDeviceEnablePeerAccess(int peer_device, unsigned int flags) {
  GPUMEM_RUNTIME_PROLOGUE(cudaDeviceEnablePeerAccess, peer_device, flags);
  const cudaError_t e = real(peer_device, flags);
  if (e == cudaSuccess) policy::peer_access_changed(Runtime::current_device(), peer_device, true);
  return e;
}

template <trace::Lookup L>
cudaError_t hook_cudaDeviceDisablePeerAccess(int peer_device) {
  GPUMEM_RUNTIME_PROLOGUE(cudaDeviceDisablePeerAccess, peer_device);
  const cudaError_t e = real(peer_device);
  if (e == cudaSuccess) policy::peer_access_changed(Runtime::current_device(), peer_device, false);
  return e;
}

template <trace::Lookup L>
CUresult hook_cuCtxEnablePeerAccess(CUcontext peer_context, unsigned int flags) {
  GPUMEM_DRIVER_PROLOGUE(cuCtxEnablePeerAccess, peer_context, flags);
  const CUresult e = real(peer_context, flags);
  if (e == CUDA_SUCCESS)
    policy::peer_access_changed(Driver::current_device(), device_of_context(peer_context), true);
  return e;
}

template <trace::Lookup L>
CUresult hook_cuCtxDisablePeerAccess(CUcontext peer_context) {
  GPUMEM_DRIVER_PROLOGUE(cuCtxDisablePeerAccess, peer_context);
  const CUresult e = real(peer_context);
  if (e == CUDA_SUCCESS)
    policy::peer_access_changed(Driver::current_device(), device_of_context(peer_context), false);
  return e;
}

}  // namespace

const Wrapped kPeerWrapped[] = {
    GPUMEM_WRAPPED(cudaDeviceEnablePeerAccess),
    GPUMEM_WRAPPED(cudaDeviceDisablePeerAccess),
    GPUMEM_WRAPPED(cuCtxEnablePeerAccess),
    GPUMEM_WRAPPED(cuCtxDisablePeerAccess),
};
const size_t kPeerWrappedCount = sizeof kPeerWrapped / sizeof kPeerWrapped[0];

}  // namespace gpumem::hooks

using gpumem::trace::Lookup;

GPUMEM_EXPORT cudaError_t cudaDeviceEnablePeerAccess(int peer, unsigned int flags) {
  return gpumem::hooks::hook_cudaDeviceEnablePeerAccess<Lookup::direct>(peer, flags);
}
GPUMEM_EXPORT cudaError_t cudaDeviceDisablePeerAccess(int peer) {
  return gpumem::hooks::hook_cudaDeviceDisablePeerAccess<Lookup::direct>(peer);
}
GPUMEM_EXPORT CUresult cuCtxEnablePeerAccess(CUcontext peer, unsigned int flags) {
  return gpumem::hooks::hook_cuCtxEnablePeerAccess<Lookup::direct>(peer, flags);
}
GPUMEM_EXPORT CUresult cuCtxDisablePeerAccess(CUcontext peer) {
  return gpumem::hooks::hook_cuCtxDisablePeerAccess<Lookup::direct>(peer);
}
