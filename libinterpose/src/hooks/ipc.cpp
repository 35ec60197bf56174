// IPC imports: cudaIpcOpenMemHandle / cudaIpcCloseMemHandle and cuIpcOpenMemHandle_v2 /
// cuIpcCloseMemHandle map memory that another process allocated (and is charged for). Each open
// is an Op::alloc of MemKind::imported and each close its Op::free: shown in reports as imported
// memory, never charged to this process's cap (policy::route_for sends the kind straight to
// CUDA) and never added to its allocated or peak figures (dispatch.cpp), so a multi-process
// report counts the exporter's allocation once.
//
// The import runs first: its size is known only once it is mapped, from
// cuMemGetAddressRange_v2 on the new pointer; the path then records the call's answer.
//
// cuMemImportFromShareableHandle (a VMM handle another process exported, e.g. as a POSIX file
// descriptor) returns a handle whose size no driver call tells: the handle is counted here
// (hooks/vmm_lifetime.h), and its alloc of kind imported is recorded at its first cuMemMap, with
// the mapping's address and bytes, its free at the cuMemRelease or cuMemUnmap that ends it
// (driver.cpp). A failed import is an alloc_failed of kind imported with CUDA's code.
#include <cuda.h>
#include <cuda_runtime_api.h>

#include "hooks/families.h"
#include "hooks/hook_family.h"
#include "hooks/vmm_lifetime.h"
#include "hooks/wrapped.h"
#include "real.h"

namespace gpumem::hooks {
namespace {

using trace::Api;
using trace::Lookup;
using trace::MemKind;

using families::Driver;
using families::Runtime;

// Bytes of the mapping an import returned (0 when the driver cannot say).
uint64_t imported_bytes(uint64_t address) {
  auto range = GPUMEM_REAL_DRIVER(cuMemGetAddressRange_v2);
  CUdeviceptr base = 0;
  size_t size = 0;
  if (range == nullptr || range(&base, &size, static_cast<CUdeviceptr>(address)) != CUDA_SUCCESS)
    return 0;
  return size;
}

// Records an import that already ran (answer `e`, the pointer in *out) through the device's path.
// A NULL out is CUDA's to refuse: the refusal is recorded as any failed open.
template <class F, Lookup L, class Out>
typename F::Result record_import(Api api, typename F::Result e, Out* out) {
  Out none{};
  if (out == nullptr) out = &none;
  const uint64_t bytes = e == F::kSuccess ? imported_bytes(to_address(*out)) : 0;
  Request req = request<F, L>(api, bytes, MemKind::imported);
  return allocate<F>(req, out, [&] { return e; });
}

template <class F, Lookup L, class Handle, class Call>
typename F::Result close_import(Api api, Handle handle, Call call) {
  Request req = free_request<F, L>(api);
  req.flags = make_flags(MemKind::imported, L);
  return release<F>(req, handle, call);
}

template <Lookup L>
cudaError_t hook_cudaIpcOpenMemHandle(void** ptr, cudaIpcMemHandle_t handle, unsigned int flags) {
  GPUMEM_RUNTIME_PROLOGUE(cudaIpcOpenMemHandle, ptr, handle, flags);
  const cudaError_t e = real(ptr, handle, flags);
  return record_import<Runtime, L>(Api::cudaIpcOpenMemHandle, e, ptr);
}

template <Lookup L>
cudaError_t hook_cudaIpcCloseMemHandle(void* ptr) {
  GPUMEM_RUNTIME_PROLOGUE(cudaIpcCloseMemHandle, ptr);
  if (ptr == nullptr) return real(ptr);
  return close_import<Runtime, L>(Api::cudaIpcCloseMemHandle, ptr, [&] { return real(ptr); });
}

template <Lookup L>
CUresult hook_cuIpcOpenMemHandle_v2(CUdeviceptr* dptr, CUipcMemHandle handle, unsigned int flags) {
  GPUMEM_DRIVER_PROLOGUE(cuIpcOpenMemHandle_v2, dptr, handle, flags);
  const CUresult e = real(dptr, handle, flags);
  return record_import<Driver, L>(Api::cuIpcOpenMemHandle, e, dptr);
}

template <Lookup L>
CUresult hook_cuIpcCloseMemHandle(CUdeviceptr dptr) {
  GPUMEM_DRIVER_PROLOGUE(cuIpcCloseMemHandle, dptr);
  if (dptr == 0) return real(dptr);
  return close_import<Driver, L>(Api::cuIpcCloseMemHandle, dptr, [&] { return real(dptr); });
}

template <Lookup L>
CUresult hook_cuMemImportFromShareableHandle(CUmemGenericAllocationHandle* handle, void* os_handle,
                                             CUmemAllocationHandleType type) {
  GPUMEM_DRIVER_PROLOGUE(cuMemImportFromShareableHandle, handle, os_handle, type);
  const CUresult e = real(handle, os_handle, type);
  if (e == CUDA_SUCCESS && handle != nullptr) {
    vmm::imported(*handle, static_cast<uint8_t>(L));
  } else if (handle != nullptr) {
    Request req = request<Driver, L>(Api::cuMemImportFromShareableHandle, 0, MemKind::imported);
    return allocate<Driver>(req, handle, [&] { return e; });
  }
  return e;
}

}  // namespace

const Wrapped kIpcWrapped[] = {
    GPUMEM_WRAPPED(cudaIpcOpenMemHandle),           GPUMEM_WRAPPED(cudaIpcCloseMemHandle),
    GPUMEM_WRAPPED(cuIpcOpenMemHandle_v2),          GPUMEM_WRAPPED(cuIpcCloseMemHandle),
    GPUMEM_WRAPPED(cuMemImportFromShareableHandle),
};
const size_t kIpcWrappedCount = sizeof kIpcWrapped / sizeof kIpcWrapped[0];

}  // namespace gpumem::hooks

using gpumem::trace::Lookup;

GPUMEM_EXPORT cudaError_t cudaIpcOpenMemHandle(void** p, cudaIpcMemHandle_t h, unsigned int f) {
  return gpumem::hooks::hook_cudaIpcOpenMemHandle<Lookup::direct>(p, h, f);
}
GPUMEM_EXPORT cudaError_t cudaIpcCloseMemHandle(void* p) {
  return gpumem::hooks::hook_cudaIpcCloseMemHandle<Lookup::direct>(p);
}
GPUMEM_EXPORT CUresult cuIpcOpenMemHandle_v2(CUdeviceptr* p, CUipcMemHandle h, unsigned int f) {
  return gpumem::hooks::hook_cuIpcOpenMemHandle_v2<Lookup::direct>(p, h, f);
}
GPUMEM_EXPORT CUresult cuIpcCloseMemHandle(CUdeviceptr p) {
  return gpumem::hooks::hook_cuIpcCloseMemHandle<Lookup::direct>(p);
}
GPUMEM_EXPORT CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle* h, void* os,
                                                      CUmemAllocationHandleType t) {
  return gpumem::hooks::hook_cuMemImportFromShareableHandle<Lookup::direct>(h, os, t);
}
