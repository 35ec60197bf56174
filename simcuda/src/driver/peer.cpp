// Peer access between devices, and the one place simcuda observes an access from a device.
// cuCtxEnablePeerAccess lets the current context's device reach every ordinary allocation
// (cuMemAlloc, stream-ordered pools) of the peer context's device, as in CUDA; it does not reach
// VMM mappings, which only the devices cuMemSetAccess named may touch. Peer access is modelled
// per device pair (CUDA keeps it per context pair; programs use primary contexts). SIMCUDA_PEER=0
// models devices that cannot reach each other: cuDeviceCanAccessPeer says 0 and enabling fails.
// simcuda runs no kernels, so simcuda_device_access stands in for a kernel on a device touching
// a range: it answers what that kernel would meet (docs/simcuda.md "Peer access").
#include "state.h"

using namespace simcuda;

namespace {

bool can_access_peer(int dev, int peer) {
  return config().peer && dev != peer;
}

// The devices of the current context and of peerContext, or the error CUDA gives.
CUresult peer_pair(CUcontext peer_context, int* dev, int* peer) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  CUctx_st* current = current_context();
  CUctx_st* peer_ctx = context_of(peer_context);
  if (current == nullptr || peer_ctx == nullptr || peer_ctx == current)
    return CUDA_ERROR_INVALID_CONTEXT;
  *dev = current->device;
  *peer = peer_ctx->device;
  return CUDA_SUCCESS;
}

// Whether device `dev` may touch [p, p + bytes) when it starts in VMM memory: 1 when every byte
// is mapped and the device was given the access, 0 when not, -1 when p is in no mapping (the
// caller then looks at ordinary allocations). Caller holds the lock.
int vmm_access(const State& s, int dev, uintptr_t p, uint64_t bytes, bool write) {
  auto it = s.mappings.upper_bound(p);
  if (it == s.mappings.begin()) return -1;
  --it;
  if (p - it->first >= it->second.size) return -1;
  const uint64_t bit = uint64_t{1} << dev;
  for (uintptr_t at = p; at < p + bytes; ++it) {
    if (it == s.mappings.end() || it->first > at) return 0;  // a hole: unmapped address space
    if (((write ? it->second.writers : it->second.readers) & bit) == 0) return 0;
    at = it->first + it->second.size;
  }
  return 1;
}

}  // namespace

SIMCUDA_EXPORT CUresult CUDAAPI cuDeviceCanAccessPeer(int* can_access, CUdevice dev,
                                                      CUdevice peer_dev) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (can_access == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev) || !valid_device(peer_dev)) return CUDA_ERROR_INVALID_DEVICE;
  *can_access = can_access_peer(dev, peer_dev) ? 1 : 0;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuCtxEnablePeerAccess(CUcontext peer_context, unsigned int flags) {
  int dev = 0, peer = 0;
  if (CUresult r = peer_pair(peer_context, &dev, &peer)) return r;
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (!can_access_peer(dev, peer)) return CUDA_ERROR_PEER_ACCESS_UNSUPPORTED;
  std::lock_guard lock(state().mu);
  uint64_t& peers = state().devices[dev]->peers;
  const uint64_t bit = uint64_t{1} << peer;
  if (peers & bit) return CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED;
  peers |= bit;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuCtxDisablePeerAccess(CUcontext peer_context) {
  int dev = 0, peer = 0;
  if (CUresult r = peer_pair(peer_context, &dev, &peer)) return r;
  std::lock_guard lock(state().mu);
  uint64_t& peers = state().devices[dev]->peers;
  const uint64_t bit = uint64_t{1} << peer;
  if ((peers & bit) == 0) return CUDA_ERROR_PEER_ACCESS_NOT_ENABLED;
  peers &= ~bit;
  return CUDA_SUCCESS;
}

// Outside the CUDA ABI: what a kernel on `device` reading (write = 0) or writing (write = 1)
// [ptr, ptr + bytes) would meet. CUDA_SUCCESS when the device may; CUDA_ERROR_ILLEGAL_ADDRESS
// when a GPU would fault: VMM memory the device was not given access to with cuMemSetAccess, an
// allocation of another device without peer access enabled to it, or no memory at all. Managed
// and pinned host memory are reachable from every device.
SIMCUDA_EXPORT int simcuda_device_access(int device, const void* ptr, size_t bytes, int write) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (!valid_device(device)) return CUDA_ERROR_INVALID_DEVICE;
  if (ptr == nullptr || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  const auto p = reinterpret_cast<uintptr_t>(ptr);
  State& s = state();
  std::lock_guard lock(s.mu);
  if (int vmm = vmm_access(s, device, p, bytes, write != 0); vmm >= 0)
    return vmm == 1 ? CUDA_SUCCESS : CUDA_ERROR_ILLEGAL_ADDRESS;
  auto within = [&](const auto& map) {
    auto it = map.upper_bound(p);
    if (it == map.begin()) return map.end();
    --it;
    return p - it->first < it->second.size && bytes <= it->second.size - (p - it->first)
               ? it
               : map.end();
  };
  if (auto a = within(s.allocations); a != s.allocations.end()) {
    const Allocation& alloc = a->second;
    const bool reachable = alloc.kind == Kind::managed || alloc.device == device ||
                           (s.devices[device]->peers & (uint64_t{1} << alloc.device)) != 0;
    return reachable ? CUDA_SUCCESS : CUDA_ERROR_ILLEGAL_ADDRESS;
  }
  if (within(s.host) != s.host.end()) return CUDA_SUCCESS;
  return CUDA_ERROR_ILLEGAL_ADDRESS;
}
