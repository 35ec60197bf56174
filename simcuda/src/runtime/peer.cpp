// Runtime peer access: the current device's primary context and the peer device's, through the
// driver's cuCtxEnablePeerAccess / cuCtxDisablePeerAccess (simcuda/src/driver/peer.cpp), with
// the runtime's error codes: a device that cannot access the peer (itself included) is
// cudaErrorInvalidDevice, as the CUDA runtime documentation gives.
#include "driver.h"

using namespace simcuda::rt;

namespace {

// The current device and the peer's primary context, or the runtime's error.
cudaError_t peer_pair(const Driver& d, int peer_device, int* device, CUcontext* peer_ctx) {
  CUcontext ctx = nullptr;
  CUdevice dev = 0;
  if (CUresult r = d.cuCtxGetCurrent(&ctx)) return to_runtime(r);
  if (CUresult r = d.cuCtxGetDevice(&dev, ctx)) return to_runtime(r);
  *device = dev;
  return primary_context(d, peer_device, peer_ctx);
}

}  // namespace

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaDeviceCanAccessPeer(int* can_access, int device,
                                                             int peer_device) {
  const Driver* d = nullptr;
  if (can_access == nullptr) return finish(cudaErrorInvalidValue);
  if (cudaError_t e = driver(&d)) return finish(e);
  return finish(d->cuDeviceCanAccessPeer(can_access, device, peer_device));
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaDeviceEnablePeerAccess(int peer_device,
                                                                unsigned int flags) {
  const Driver* d = nullptr;
  if (cudaError_t e = ready(&d)) return finish(e);
  if (flags != 0) return finish(cudaErrorInvalidValue);
  int device = 0;
  CUcontext peer_ctx = nullptr;
  if (cudaError_t e = peer_pair(*d, peer_device, &device, &peer_ctx)) return finish(e);
  int can = 0;
  if (CUresult r = d->cuDeviceCanAccessPeer(&can, device, peer_device)) return finish(r);
  if (can == 0) return finish(cudaErrorInvalidDevice);
  return finish(d->cuCtxEnablePeerAccess(peer_ctx, 0));
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaDeviceDisablePeerAccess(int peer_device) {
  const Driver* d = nullptr;
  if (cudaError_t e = ready(&d)) return finish(e);
  int device = 0;
  CUcontext peer_ctx = nullptr;
  if (cudaError_t e = peer_pair(*d, peer_device, &device, &peer_ctx)) return finish(e);
  // The device itself is never a peer: access to it was never enabled.
  if (device == peer_device) return finish(cudaErrorPeerAccessNotEnabled);
  return finish(d->cuCtxDisablePeerAccess(peer_ctx));
}
