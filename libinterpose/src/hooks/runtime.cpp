// Runtime family (libcudart): cudaMalloc and friends. Each hook: pass through when nested in
// another hook, reject NULL out-parameters, build a Request carrying the real call, hand it to the
// device's AllocationPath, translate the answer's Status back into a cudaError_t. Those steps are
// shared with the driver family (hook_family.h); this file holds the runtime's entry points.
#include <cuda_runtime_api.h>

#include "hooks/families.h"
#include "hooks/hook_family.h"
#include "hooks/request_bytes.h"
#include "hooks/wrapped.h"
#include "log.h"
#include "policy.h"
#include "real.h"

// Per-thread-default-stream variants, exported by libcudart but declared by its header only
// under CUDA_API_PER_THREAD_DEFAULT_STREAM.
extern "C" {
cudaError_t cudaMallocAsync_ptsz(void** ptr, size_t size, cudaStream_t stream);
cudaError_t cudaFreeAsync_ptsz(void* ptr, cudaStream_t stream);
cudaError_t cudaMallocFromPoolAsync_ptsz(void** ptr, size_t size, cudaMemPool_t pool,
                                         cudaStream_t stream);
}

namespace gpumem::hooks {
namespace {

using trace::Api;
using trace::Lookup;
using trace::MemKind;

using Runtime = families::Runtime;

template <Lookup L>
cudaError_t hook_cudaMalloc(void** ptr, size_t size) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMalloc, ptr, size);
  Request req = request<Runtime, L>(Api::cudaMalloc, size, MemKind::device);
  if (ptr == nullptr) return null_out_param<Runtime>(req);
  return allocate<Runtime>(req, ptr, [&] { return real(ptr, size); });
}

template <Lookup L>
cudaError_t hook_cudaFree(void* ptr) {
  GPUMEM_RUNTIME_PROLOGUE(cudaFree, ptr);
  if (ptr == nullptr) return real(ptr);  // cudaFree(0): CUDA initialisation, not an event
  Request req = free_request<Runtime, L>(Api::cudaFree);
  return release<Runtime>(req, ptr, [&] { return real(ptr); });
}

template <Lookup L>
cudaError_t hook_cudaMallocAsync(void** ptr, size_t size, cudaStream_t stream) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMallocAsync, ptr, size, stream);
  Request req = async_request<Runtime, L>(Api::cudaMallocAsync, size, stream);
  if (ptr == nullptr) return null_out_param<Runtime>(req);
  return allocate<Runtime>(req, ptr, [&] { return real(ptr, size, stream); });
}

template <Lookup L>
cudaError_t hook_cudaMallocAsync_ptsz(void** ptr, size_t size, cudaStream_t stream) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMallocAsync_ptsz, ptr, size, stream);
  Request req = async_request<Runtime, L>(Api::cudaMallocAsync, size, stream);
  if (ptr == nullptr) return null_out_param<Runtime>(req);
  return allocate<Runtime>(req, ptr, [&] { return real(ptr, size, stream); });
}

template <Lookup L>
cudaError_t hook_cudaFreeAsync(void* ptr, cudaStream_t stream) {
  GPUMEM_RUNTIME_PROLOGUE(cudaFreeAsync, ptr, stream);
  if (ptr == nullptr) return real(ptr, stream);
  Request req = free_request<Runtime, L>(Api::cudaFreeAsync, stream, true);
  return release<Runtime>(req, ptr, [&] { return real(ptr, stream); });
}

template <Lookup L>
cudaError_t hook_cudaFreeAsync_ptsz(void* ptr, cudaStream_t stream) {
  GPUMEM_RUNTIME_PROLOGUE(cudaFreeAsync_ptsz, ptr, stream);
  if (ptr == nullptr) return real(ptr, stream);
  Request req = free_request<Runtime, L>(Api::cudaFreeAsync, stream, true);
  return release<Runtime>(req, ptr, [&] { return real(ptr, stream); });
}

template <Lookup L>
cudaError_t hook_cudaMallocFromPoolAsync(void** ptr, size_t size, cudaMemPool_t pool,
                                         cudaStream_t stream) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMallocFromPoolAsync, ptr, size, pool, stream);
  Request req = request<Runtime, L>(Api::cudaMallocFromPoolAsync, size, MemKind::device, stream,
                                    true, pool_device<Runtime>(pool, stream));
  if (ptr == nullptr) return null_out_param<Runtime>(req);
  return allocate<Runtime>(req, ptr, [&] { return real(ptr, size, pool, stream); });
}

template <Lookup L>
cudaError_t hook_cudaMallocFromPoolAsync_ptsz(void** ptr, size_t size, cudaMemPool_t pool,
                                              cudaStream_t stream) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMallocFromPoolAsync_ptsz, ptr, size, pool, stream);
  Request req = request<Runtime, L>(Api::cudaMallocFromPoolAsync, size, MemKind::device, stream,
                                    true, pool_device<Runtime>(pool, stream));
  if (ptr == nullptr) return null_out_param<Runtime>(req);
  return allocate<Runtime>(req, ptr, [&] { return real(ptr, size, pool, stream); });
}

template <Lookup L>
cudaError_t hook_cudaMallocManaged(void** ptr, size_t size, unsigned int flags) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMallocManaged, ptr, size, flags);
  Request req = request<Runtime, L>(Api::cudaMallocManaged, size, MemKind::managed);
  if (ptr == nullptr) return null_out_param<Runtime>(req);
  return allocate<Runtime>(req, ptr, [&] { return real(ptr, size, flags); });
}

// Pitched allocations record the bytes asked for (width * height); the padding the driver adds
// is visible in the returned pitch only.
template <Lookup L>
cudaError_t hook_cudaMallocPitch(void** ptr, size_t* pitch, size_t width, size_t height) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMallocPitch, ptr, pitch, width, height);
  Request req =
      request<Runtime, L>(Api::cudaMallocPitch, saturating_product(width, height), MemKind::device);
  if (ptr == nullptr || pitch == nullptr) return null_out_param<Runtime>(req);
  return allocate<Runtime>(req, ptr, [&] { return real(ptr, pitch, width, height); });
}

template <Lookup L>
cudaError_t hook_cudaMalloc3D(cudaPitchedPtr* pitched, cudaExtent extent) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMalloc3D, pitched, extent);
  Request req = request<Runtime, L>(Api::cudaMalloc3D,
                                    saturating_product(extent.width, extent.height, extent.depth),
                                    MemKind::device);
  if (pitched == nullptr) return null_out_param<Runtime>(req);
  void* out = nullptr;
  return allocate<Runtime>(req, &out, [&] {
    cudaError_t e = real(pitched, extent);
    out = e == cudaSuccess ? pitched->ptr : nullptr;
    return e;
  });
}

template <Lookup L>
cudaError_t hook_cudaMallocHost(void** ptr, size_t size) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMallocHost, ptr, size);
  Request req = request<Runtime, L>(Api::cudaMallocHost, size, MemKind::pinned_host);
  if (ptr == nullptr) return null_out_param<Runtime>(req);
  return allocate<Runtime>(req, ptr, [&] { return real(ptr, size); });
}

template <Lookup L>
cudaError_t hook_cudaHostAlloc(void** ptr, size_t size, unsigned int flags) {
  GPUMEM_RUNTIME_PROLOGUE(cudaHostAlloc, ptr, size, flags);
  Request req = request<Runtime, L>(Api::cudaHostAlloc, size, MemKind::pinned_host);
  if (ptr == nullptr) return null_out_param<Runtime>(req);
  return allocate<Runtime>(req, ptr, [&] { return real(ptr, size, flags); });
}

template <Lookup L>
cudaError_t hook_cudaFreeHost(void* ptr) {
  GPUMEM_RUNTIME_PROLOGUE(cudaFreeHost, ptr);
  if (ptr == nullptr) return real(ptr);
  Request req = request<Runtime, L>(Api::cudaFreeHost, 0, MemKind::pinned_host);
  return release<Runtime>(req, ptr, [&] { return real(ptr); });
}

template <Lookup L>
cudaError_t hook_cudaMemGetInfo(size_t* free_bytes, size_t* total) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMemGetInfo, free_bytes, total);
  Request req = request<Runtime, L>(Api::cudaMemGetInfo, 0, MemKind::device);
  if (free_bytes == nullptr || total == nullptr) return null_out_param<Runtime>(req);
  return capacity<Runtime>(req, free_bytes, total,
                           [&](size_t* f, size_t* t) { return real(f, t); });
}

// Not recorded; drop the pools' devices cached by pool_device(), as the driver's hooks do.
template <Lookup L>
cudaError_t hook_cudaMemPoolSetAccess(cudaMemPool_t pool, const cudaMemAccessDesc* map,
                                      size_t count) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMemPoolSetAccess, pool, map, count);
  return then_pool_access_changed(real, pool, map, count);
}

template <Lookup L>
cudaError_t hook_cudaMemPoolDestroy(cudaMemPool_t pool) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMemPoolDestroy, pool);
  return then_pool_access_changed(real, pool);
}

template <Lookup L>
cudaError_t hook_cudaMemPoolTrimTo(cudaMemPool_t pool, size_t min_bytes_to_keep) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMemPoolTrimTo, pool, min_bytes_to_keep);
  Request req = request<Runtime, L>(Api::cudaMemPoolTrimTo, min_bytes_to_keep, MemKind::device);
  const cudaError_t e = real(pool, min_bytes_to_keep);
  record_event(trace::Op::trim, req, reinterpret_cast<uint64_t>(pool), 0, e);
  return e;
}

// Pooled memory is a block inside a larger device allocation (a pool segment): report the block
// as device memory of its pool's device, as a plain cudaMalloc'ed pointer would be. An address in
// a segment but in no live block is memory the program freed (or never got): the raw device no
// longer knows it, so it is unregistered memory, as the real call answers for such an address.
template <Lookup L>
cudaError_t hook_cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* ptr) {
  GPUMEM_RUNTIME_PROLOGUE(cudaPointerGetAttributes, attributes, ptr);
  resources::BlockInfo block;
  if (attributes == nullptr || ptr == nullptr) return real(attributes, ptr);
  if (!policy::lookup(ptr, &block)) {
    if (!policy::pool_owns(reinterpret_cast<uint64_t>(ptr))) return real(attributes, ptr);
    *attributes = cudaPointerAttributes{};
    attributes->type = cudaMemoryTypeUnregistered;
    attributes->device = -2;  // what CUDA reports for memory no device knows
    attributes->hostPointer = const_cast<void*>(ptr);
    return cudaSuccess;
  }
  *attributes = cudaPointerAttributes{};
  attributes->type = cudaMemoryTypeDevice;
  attributes->device = block.device;
  attributes->devicePointer = const_cast<void*>(ptr);
  attributes->hostPointer = nullptr;
  return cudaSuccess;
}

// Another process would map the whole segment, and its own free would release it under the
// pool's feet: exporting a pooled block is refused.
template <Lookup L>
cudaError_t hook_cudaIpcGetMemHandle(cudaIpcMemHandle_t* handle, void* ptr) {
  GPUMEM_RUNTIME_PROLOGUE(cudaIpcGetMemHandle, handle, ptr);
  if (!policy::lookup(ptr, nullptr)) return real(handle, ptr);
  log_message(LogLevel::error,
              "cudaIpcGetMemHandle(%p): pooled memory cannot be exported to another process; "
              "returning cudaErrorInvalidValue. Run with GPUMEM_POOL=none to share it.",
              ptr);
  return cudaErrorInvalidValue;
}

}  // namespace

const Wrapped kRuntimeWrapped[] = {
    GPUMEM_WRAPPED(cudaMalloc),
    GPUMEM_WRAPPED(cudaFree),
    GPUMEM_WRAPPED(cudaMallocAsync),
    GPUMEM_WRAPPED(cudaMallocAsync_ptsz),
    GPUMEM_WRAPPED(cudaFreeAsync),
    GPUMEM_WRAPPED(cudaFreeAsync_ptsz),
    GPUMEM_WRAPPED(cudaMallocFromPoolAsync),
    GPUMEM_WRAPPED(cudaMallocFromPoolAsync_ptsz),
    GPUMEM_WRAPPED(cudaMallocManaged),
    GPUMEM_WRAPPED(cudaMallocPitch),
    GPUMEM_WRAPPED(cudaMalloc3D),
    GPUMEM_WRAPPED(cudaMallocHost),
    GPUMEM_WRAPPED(cudaHostAlloc),
    GPUMEM_WRAPPED(cudaFreeHost),
    GPUMEM_WRAPPED(cudaMemGetInfo),
    GPUMEM_WRAPPED(cudaMemPoolTrimTo),
    GPUMEM_WRAPPED(cudaMemPoolSetAccess),
    GPUMEM_WRAPPED(cudaMemPoolDestroy),
    GPUMEM_WRAPPED(cudaPointerGetAttributes),
    GPUMEM_WRAPPED(cudaIpcGetMemHandle),
};
const size_t kRuntimeWrappedCount = sizeof kRuntimeWrapped / sizeof kRuntimeWrapped[0];

}  // namespace gpumem::hooks

// Direct binding: the program's (or a framework's) references to these names resolve here,
// because the preloaded library comes first in the global scope.
using gpumem::hooks::Lookup;
#define GPUMEM_EXPORT_RUNTIME(ret, name, params, args)      \
  GPUMEM_EXPORT ret name params {                           \
    return gpumem::hooks::hook_##name<Lookup::direct> args; \
  }

GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMalloc, (void** p, size_t n), (p, n))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaFree, (void* p), (p))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMallocAsync, (void** p, size_t n, cudaStream_t s), (p, n, s))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMallocAsync_ptsz, (void** p, size_t n, cudaStream_t s),
                      (p, n, s))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaFreeAsync, (void* p, cudaStream_t s), (p, s))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaFreeAsync_ptsz, (void* p, cudaStream_t s), (p, s))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMallocFromPoolAsync,
                      (void** p, size_t n, cudaMemPool_t m, cudaStream_t s), (p, n, m, s))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMallocFromPoolAsync_ptsz,
                      (void** p, size_t n, cudaMemPool_t m, cudaStream_t s), (p, n, m, s))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMallocManaged, (void** p, size_t n, unsigned int f),
                      (p, n, f))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMallocPitch, (void** p, size_t* pitch, size_t w, size_t h),
                      (p, pitch, w, h))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMalloc3D, (cudaPitchedPtr * p, cudaExtent e), (p, e))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMallocHost, (void** p, size_t n), (p, n))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaHostAlloc, (void** p, size_t n, unsigned int f), (p, n, f))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaFreeHost, (void* p), (p))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMemGetInfo, (size_t * f, size_t* t), (f, t))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMemPoolTrimTo, (cudaMemPool_t m, size_t n), (m, n))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMemPoolSetAccess,
                      (cudaMemPool_t m, const cudaMemAccessDesc* a, size_t n), (m, a, n))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaMemPoolDestroy, (cudaMemPool_t m), (m))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaPointerGetAttributes,
                      (cudaPointerAttributes * a, const void* p), (a, p))
GPUMEM_EXPORT_RUNTIME(cudaError_t, cudaIpcGetMemHandle, (cudaIpcMemHandle_t * h, void* p), (h, p))
