// Host registration: cudaHostRegister / cudaHostUnregister and cuMemHostRegister_v2 /
// cuMemHostUnregister page-lock memory the program already owns (data loaders, NCCL). Recorded
// as pinned host memory, like cudaMallocHost: an Op::alloc of MemKind::pinned_host on device -1
// (address = the registered pointer, bytes = its size) and an Op::free at unregistration. Never
// charged to a device cap: policy::route_for sends pinned host memory straight to CUDA.
#include "hooks/families.h"
#include "hooks/wrapped.h"

namespace gpumem::hooks {
namespace {

using families::Driver;
using families::Runtime;
using trace::Api;
using trace::Lookup;
using trace::MemKind;

// The registration runs as the real call of an allocation whose "pointer" is the caller's own.
template <class F, Lookup L, class Call>
typename F::Result register_range(Api api, void* ptr, size_t size, Call call) {
  Request req = request<F, L>(api, size, MemKind::pinned_host);
  void* registered = nullptr;
  return allocate<F>(req, &registered, [&] {
    const typename F::Result e = call();
    registered = e == F::kSuccess ? ptr : nullptr;
    return e;
  });
}

template <class F, Lookup L, class Call>
typename F::Result unregister_range(Api api, void* ptr, Call call) {
  Request req = request<F, L>(api, 0, MemKind::pinned_host);
  return release<F>(req, ptr, call);
}

template <Lookup L>
cudaError_t hook_cudaHostRegister(void* ptr, size_t size, unsigned int flags) {
  GPUMEM_RUNTIME_PROLOGUE(cudaHostRegister, ptr, size, flags);
  return register_range<Runtime, L>(Api::cudaHostRegister, ptr, size,
                                    [&] { return real(ptr, size, flags); });
}

template <Lookup L>
cudaError_t hook_cudaHostUnregister(void* ptr) {
  GPUMEM_RUNTIME_PROLOGUE(cudaHostUnregister, ptr);
  if (ptr == nullptr) return real(ptr);  // CUDA's own answer; nothing was registered there
  return unregister_range<Runtime, L>(Api::cudaHostUnregister, ptr, [&] { return real(ptr); });
}

template <Lookup L>
CUresult hook_cuMemHostRegister_v2(void* ptr, size_t size, unsigned int flags) {
  GPUMEM_DRIVER_PROLOGUE(cuMemHostRegister_v2, ptr, size, flags);
  return register_range<Driver, L>(Api::cuMemHostRegister, ptr, size,
                                   [&] { return real(ptr, size, flags); });
}

template <Lookup L>
CUresult hook_cuMemHostUnregister(void* ptr) {
  GPUMEM_DRIVER_PROLOGUE(cuMemHostUnregister, ptr);
  if (ptr == nullptr) return real(ptr);
  return unregister_range<Driver, L>(Api::cuMemHostUnregister, ptr, [&] { return real(ptr); });
}

}  // namespace

const Wrapped kHostRegisterWrapped[] = {
    GPUMEM_WRAPPED(cudaHostRegister),
    GPUMEM_WRAPPED(cudaHostUnregister),
    GPUMEM_WRAPPED(cuMemHostRegister_v2),
    GPUMEM_WRAPPED(cuMemHostUnregister),
};
const size_t kHostRegisterWrappedCount =
    sizeof kHostRegisterWrapped / sizeof kHostRegisterWrapped[0];

}  // namespace gpumem::hooks

using gpumem::hooks::Lookup;

GPUMEM_EXPORT cudaError_t cudaHostRegister(void* p, size_t n, unsigned int f) {
  return gpumem::hooks::hook_cudaHostRegister<Lookup::direct>(p, n, f);
}
GPUMEM_EXPORT cudaError_t cudaHostUnregister(void* p) {
  return gpumem::hooks::hook_cudaHostUnregister<Lookup::direct>(p);
}
GPUMEM_EXPORT CUresult cuMemHostRegister_v2(void* p, size_t n, unsigned int f) {
  return gpumem::hooks::hook_cuMemHostRegister_v2<Lookup::direct>(p, n, f);
}
GPUMEM_EXPORT CUresult cuMemHostUnregister(void* p) {
  return gpumem::hooks::hook_cuMemHostUnregister<Lookup::direct>(p);
}
