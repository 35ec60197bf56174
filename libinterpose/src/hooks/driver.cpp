// Driver family (libcuda): cuMemAlloc_v2 and friends, VMM (cuMemCreate/Release/Map/Unmap) and the
// capacity queries. Same shape as the runtime hooks: nested calls pass through, NULL
// out-parameters are refused, everything else becomes a Request for the device's path
// (hook_family.h).
#include <cuda.h>

#include "hooks/families.h"
#include "hooks/hook_family.h"
#include "hooks/request_bytes.h"
#include "hooks/vmm_lifetime.h"
#include "hooks/wrapped.h"
#include "log.h"
#include "policy.h"
#include "real.h"

// Per-thread-default-stream variants, exported by libcuda but declared by cuda.h only under
// CUDA_API_PER_THREAD_DEFAULT_STREAM.
extern "C" {
CUresult cuMemAllocAsync_ptsz(CUdeviceptr* dptr, size_t bytesize, CUstream hStream);
CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hStream);
CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr* dptr, size_t bytesize, CUmemoryPool pool,
                                      CUstream hStream);
}

namespace gpumem::hooks {
namespace {

using trace::Api;
using trace::Lookup;
using trace::MemKind;

using Driver = families::Driver;

template <Lookup L>
CUresult hook_cuMemAlloc_v2(CUdeviceptr* dptr, size_t bytesize) {
  GPUMEM_DRIVER_PROLOGUE(cuMemAlloc_v2, dptr, bytesize);
  Request req = request<Driver, L>(Api::cuMemAlloc, bytesize, MemKind::device);
  if (dptr == nullptr) return null_out_param<Driver>(req);
  return allocate<Driver>(req, dptr, [&] { return real(dptr, bytesize); });
}

template <Lookup L>
CUresult hook_cuMemFree_v2(CUdeviceptr dptr) {
  GPUMEM_DRIVER_PROLOGUE(cuMemFree_v2, dptr);
  if (dptr == 0) return real(dptr);
  Request req = free_request<Driver, L>(Api::cuMemFree);
  return release<Driver>(req, dptr, [&] { return real(dptr); });
}

// Records the bytes asked for (width * height, saturated), as cudaMallocPitch does.
template <Lookup L>
CUresult hook_cuMemAllocPitch_v2(CUdeviceptr* dptr, size_t* pitch, size_t width, size_t height,
                                 unsigned int element_size) {
  GPUMEM_DRIVER_PROLOGUE(cuMemAllocPitch_v2, dptr, pitch, width, height, element_size);
  Request req = request<Driver, L>(Api::cuMemAllocPitch, saturating_product(width, height),
                                   MemKind::device);
  if (dptr == nullptr || pitch == nullptr) return null_out_param<Driver>(req);
  return allocate<Driver>(req, dptr,
                          [&] { return real(dptr, pitch, width, height, element_size); });
}

template <Lookup L>
CUresult hook_cuMemAllocManaged(CUdeviceptr* dptr, size_t bytesize, unsigned int flags) {
  GPUMEM_DRIVER_PROLOGUE(cuMemAllocManaged, dptr, bytesize, flags);
  Request req = request<Driver, L>(Api::cuMemAllocManaged, bytesize, MemKind::managed);
  if (dptr == nullptr) return null_out_param<Driver>(req);
  return allocate<Driver>(req, dptr, [&] { return real(dptr, bytesize, flags); });
}

template <Lookup L>
CUresult hook_cuMemAllocAsync(CUdeviceptr* dptr, size_t bytesize, CUstream stream) {
  GPUMEM_DRIVER_PROLOGUE(cuMemAllocAsync, dptr, bytesize, stream);
  Request req = async_request<Driver, L>(Api::cuMemAllocAsync, bytesize, stream);
  if (dptr == nullptr) return null_out_param<Driver>(req);
  return allocate<Driver>(req, dptr, [&] { return real(dptr, bytesize, stream); });
}

template <Lookup L>
CUresult hook_cuMemAllocAsync_ptsz(CUdeviceptr* dptr, size_t bytesize, CUstream stream) {
  GPUMEM_DRIVER_PROLOGUE(cuMemAllocAsync_ptsz, dptr, bytesize, stream);
  Request req = async_request<Driver, L>(Api::cuMemAllocAsync, bytesize, stream);
  if (dptr == nullptr) return null_out_param<Driver>(req);
  return allocate<Driver>(req, dptr, [&] { return real(dptr, bytesize, stream); });
}

template <Lookup L>
CUresult hook_cuMemFreeAsync(CUdeviceptr dptr, CUstream stream) {
  GPUMEM_DRIVER_PROLOGUE(cuMemFreeAsync, dptr, stream);
  if (dptr == 0) return real(dptr, stream);
  Request req = free_request<Driver, L>(Api::cuMemFreeAsync, stream, true);
  return release<Driver>(req, dptr, [&] { return real(dptr, stream); });
}

template <Lookup L>
CUresult hook_cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream stream) {
  GPUMEM_DRIVER_PROLOGUE(cuMemFreeAsync_ptsz, dptr, stream);
  if (dptr == 0) return real(dptr, stream);
  Request req = free_request<Driver, L>(Api::cuMemFreeAsync, stream, true);
  return release<Driver>(req, dptr, [&] { return real(dptr, stream); });
}

template <Lookup L>
CUresult hook_cuMemAllocFromPoolAsync(CUdeviceptr* dptr, size_t bytesize, CUmemoryPool pool,
                                      CUstream stream) {
  GPUMEM_DRIVER_PROLOGUE(cuMemAllocFromPoolAsync, dptr, bytesize, pool, stream);
  Request req = request<Driver, L>(Api::cuMemAllocFromPoolAsync, bytesize, MemKind::device, stream,
                                   true, pool_device<Driver>(pool, stream));
  if (dptr == nullptr) return null_out_param<Driver>(req);
  return allocate<Driver>(req, dptr, [&] { return real(dptr, bytesize, pool, stream); });
}

template <Lookup L>
CUresult hook_cuMemAllocFromPoolAsync_ptsz(CUdeviceptr* dptr, size_t bytesize, CUmemoryPool pool,
                                           CUstream stream) {
  GPUMEM_DRIVER_PROLOGUE(cuMemAllocFromPoolAsync_ptsz, dptr, bytesize, pool, stream);
  Request req = request<Driver, L>(Api::cuMemAllocFromPoolAsync, bytesize, MemKind::device, stream,
                                   true, pool_device<Driver>(pool, stream));
  if (dptr == nullptr) return null_out_param<Driver>(req);
  return allocate<Driver>(req, dptr, [&] { return real(dptr, bytesize, pool, stream); });
}

// The driver's pinned host memory, as cudaMallocHost / cudaHostAlloc / cudaFreeHost: kind
// pinned_host, device -1. Programs linked with the static runtime reach these for their pinned
// memory, as do -lcuda programs.
template <Lookup L>
CUresult hook_cuMemAllocHost_v2(void** pp, size_t bytesize) {
  GPUMEM_DRIVER_PROLOGUE(cuMemAllocHost_v2, pp, bytesize);
  Request req = request<Driver, L>(Api::cuMemAllocHost, bytesize, MemKind::pinned_host);
  if (pp == nullptr) return null_out_param<Driver>(req);
  return allocate<Driver>(req, pp, [&] { return real(pp, bytesize); });
}

template <Lookup L>
CUresult hook_cuMemHostAlloc(void** pp, size_t bytesize, unsigned int flags) {
  GPUMEM_DRIVER_PROLOGUE(cuMemHostAlloc, pp, bytesize, flags);
  Request req = request<Driver, L>(Api::cuMemHostAlloc, bytesize, MemKind::pinned_host);
  if (pp == nullptr) return null_out_param<Driver>(req);
  return allocate<Driver>(req, pp, [&] { return real(pp, bytesize, flags); });
}

template <Lookup L>
CUresult hook_cuMemFreeHost(void* p) {
  GPUMEM_DRIVER_PROLOGUE(cuMemFreeHost, p);
  if (p == nullptr) return real(p);
  Request req = request<Driver, L>(Api::cuMemFreeHost, 0, MemKind::pinned_host);
  return release<Driver>(req, p, [&] { return real(p); });
}

// Physical memory is counted where it lives: on the device of prop->location when that is a
// device, as host memory (device -1) for every other location type. A NULL prop is refused here
// with the code CUDA documents for it (the driver is never handed a NULL to read), and recorded as
// any refused allocation: an alloc_failed with that code.
template <Lookup L>
CUresult hook_cuMemCreate(CUmemGenericAllocationHandle* handle, size_t size,
                          const CUmemAllocationProp* prop, unsigned long long flags) {
  GPUMEM_DRIVER_PROLOGUE(cuMemCreate, handle, size, prop, flags);
  const int device = prop != nullptr && prop->location.type == CU_MEM_LOCATION_TYPE_DEVICE
                         ? prop->location.id
                         : -1;
  Request req =
      request<Driver, L>(Api::cuMemCreate, size, MemKind::physical, nullptr, false, device);
  if (handle == nullptr) return null_out_param<Driver>(req);
  if (prop == nullptr)
    return allocate<Driver>(req, handle, [] { return CUDA_ERROR_INVALID_VALUE; });
  const CUresult e = allocate<Driver>(req, handle, [&] { return real(handle, size, prop, flags); });
  if (e == CUDA_SUCCESS) vmm::created(*handle);
  return e;
}

// An imported shareable handle (hooks/ipc.cpp) mapped for the first time: its size is known now,
// so the import is recorded here, at the mapping, with the import's api and lookup path.
void record_import_mapping(CUdeviceptr ptr, uint64_t bytes, Lookup lookup) {
  Request req = request<Driver, Lookup::direct>(Api::cuMemImportFromShareableHandle, bytes,
                                                MemKind::imported);
  req.flags = make_flags(MemKind::imported, lookup);
  allocate<Driver>(req, &ptr, [] { return CUDA_SUCCESS; });
}

// The end of an imported handle's memory in this process, recorded where its import was.
template <Lookup L, class Call>
CUresult free_import(Api api, uint64_t address, Call call) {
  Request req = free_request<Driver, L>(api);
  req.flags = make_flags(MemKind::imported, L);
  return release<Driver>(req, address, call);
}

// The memory goes, and its free is recorded, only when this is the last reference and nothing
// maps it any more (vmm_lifetime.h); otherwise the real release runs unrecorded and the bytes
// stay charged to the cap until the last cuMemUnmap.
template <Lookup L>
CUresult hook_cuMemRelease(CUmemGenericAllocationHandle handle) {
  GPUMEM_DRIVER_PROLOGUE(cuMemRelease, handle);
  if (handle == 0) return real(handle);
  uint64_t import_address = 0;
  const vmm::Release what = vmm::release(handle, &import_address);
  CUresult e;
  if (what == vmm::Release::still_live || what == vmm::Release::unmapped_import ||
      what == vmm::Release::pool_memory) {
    e = real(handle);
  } else if (what == vmm::Release::last_import) {
    e = free_import<L>(Api::cuMemRelease, import_address, [&] { return real(handle); });
  } else {
    Request req = request<Driver, L>(Api::cuMemRelease, 0, MemKind::physical, nullptr, false, -1);
    e = release<Driver>(req, handle, [&] { return real(handle); });
  }
  if (e != CUDA_SUCCESS) vmm::release_failed(handle, what, import_address);
  return e;
}

// One more reference to the handle mapped at addr (NCCL frees with retain, release, unmap,
// release): counted, not recorded as an allocation. An address in gpumem's own pool (the
// expandable pool's mapped segments) gives the pool's handle: counted apart (vmm_lifetime.h).
template <Lookup L>
CUresult hook_cuMemRetainAllocationHandle(CUmemGenericAllocationHandle* handle, void* addr) {
  GPUMEM_DRIVER_PROLOGUE(cuMemRetainAllocationHandle, handle, addr);
  const CUresult e = real(handle, addr);
  if (e != CUDA_SUCCESS || handle == nullptr) return e;
  if (policy::pool_owns(reinterpret_cast<uint64_t>(addr)))
    vmm::retained_pool_memory(*handle);
  else
    vmm::retained(*handle);
  return e;
}

template <Lookup L>
CUresult hook_cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                       CUmemGenericAllocationHandle handle, unsigned long long flags) {
  GPUMEM_DRIVER_PROLOGUE(cuMemMap, ptr, size, offset, handle, flags);
  Request req = request<Driver, L>(Api::cuMemMap, size, MemKind::physical);
  const CUresult e = real(ptr, size, offset, handle, flags);
  uint8_t import_lookup = 0;
  if (e == CUDA_SUCCESS && vmm::mapped(ptr, size, handle, &import_lookup))
    record_import_mapping(ptr, offset + size, static_cast<Lookup>(import_lookup));
  record_event(trace::Op::map, req, ptr, handle, e);
  return e;
}

// Unmapping the last mapping of a released handle frees its memory: the free is recorded (api
// cuMemUnmap) and the cap gets its bytes back; the driver has already let it go.
template <Lookup L>
CUresult hook_cuMemUnmap(CUdeviceptr ptr, size_t size) {
  GPUMEM_DRIVER_PROLOGUE(cuMemUnmap, ptr, size);
  Request req = request<Driver, L>(Api::cuMemUnmap, size, MemKind::physical);
  const CUresult e = real(ptr, size);
  record_event(trace::Op::unmap, req, ptr, 0, e);
  if (e != CUDA_SUCCESS) return e;
  vmm::Gone gone[64];
  size_t n;
  do {
    n = vmm::unmapped(ptr, size, gone, sizeof gone / sizeof gone[0]);
    for (size_t i = 0; i < n; ++i) {
      auto done = [] { return CUDA_SUCCESS; };
      if (gone[i].import_address != 0) {
        free_import<L>(Api::cuMemUnmap, gone[i].import_address, done);
        continue;
      }
      Request freed = request<Driver, L>(Api::cuMemUnmap, 0, MemKind::physical, nullptr, false, -1);
      release<Driver>(freed, gone[i].handle, done);
    }
  } while (n == sizeof gone / sizeof gone[0]);
  return e;
}

template <Lookup L>
CUresult hook_cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
  GPUMEM_DRIVER_PROLOGUE(cuMemGetInfo_v2, free_bytes, total);
  Request req = request<Driver, L>(Api::cuMemGetInfo, 0, MemKind::device);
  if (free_bytes == nullptr || total == nullptr) return null_out_param<Driver>(req);
  return capacity<Driver>(req, free_bytes, total, [&](size_t* f, size_t* t) { return real(f, t); });
}

// A capacity query about one device: recorded as meminfo with free = 0 (not asked).
template <Lookup L>
CUresult hook_cuDeviceTotalMem_v2(size_t* bytes, CUdevice dev) {
  GPUMEM_DRIVER_PROLOGUE(cuDeviceTotalMem_v2, bytes, dev);
  Request req = request<Driver, L>(Api::cuDeviceTotalMem, 0, MemKind::device, nullptr, false,
                                   static_cast<int>(dev));
  if (bytes == nullptr) return null_out_param<Driver>(req);
  return capacity<Driver>(req, nullptr, bytes, [&](size_t*, size_t* t) { return real(t, dev); });
}

// Not recorded: a pool's access or its end may change the device pool_device() found for it
// (hook_family.h), so the answers cached are dropped once the call has changed it.
template <Lookup L>
CUresult hook_cuMemPoolSetAccess(CUmemoryPool pool, const CUmemAccessDesc* map, size_t count) {
  GPUMEM_DRIVER_PROLOGUE(cuMemPoolSetAccess, pool, map, count);
  return then_pool_access_changed(real, pool, map, count);
}

template <Lookup L>
CUresult hook_cuMemPoolDestroy(CUmemoryPool pool) {
  GPUMEM_DRIVER_PROLOGUE(cuMemPoolDestroy, pool);
  return then_pool_access_changed(real, pool);
}

template <Lookup L>
CUresult hook_cuMemPoolTrimTo(CUmemoryPool pool, size_t min_bytes_to_keep) {
  GPUMEM_DRIVER_PROLOGUE(cuMemPoolTrimTo, pool, min_bytes_to_keep);
  Request req = request<Driver, L>(Api::cuMemPoolTrimTo, min_bytes_to_keep, MemKind::device);
  const CUresult e = real(pool, min_bytes_to_keep);
  record_event(trace::Op::trim, req, reinterpret_cast<uint64_t>(pool), 0, e);
  return e;
}

// A pooled block reports its own base and size (the bytes asked for), not its segment's; an
// address in a segment but in no live block (freed memory) is one the raw device would not find.
template <Lookup L>
CUresult hook_cuMemGetAddressRange_v2(CUdeviceptr* base, size_t* size, CUdeviceptr dptr) {
  GPUMEM_DRIVER_PROLOGUE(cuMemGetAddressRange_v2, base, size, dptr);
  resources::BlockInfo block;
  if (!policy::lookup(reinterpret_cast<const void*>(dptr), &block)) {
    if (dptr == 0 || !policy::pool_owns(static_cast<uint64_t>(dptr))) return real(base, size, dptr);
    return CUDA_ERROR_NOT_FOUND;
  }
  if (base != nullptr) *base = reinterpret_cast<CUdeviceptr>(block.base);
  if (size != nullptr) *size = block.bytes;
  return CUDA_SUCCESS;
}

// The same for the range attributes of cuPointerGetAttribute: a pooled block's range is the
// block, never its segment; a freed address in a segment is one the raw device does not know
// (CUDA_ERROR_INVALID_VALUE, as for any unallocated address). Every other attribute of pooled
// memory is the segment's (device memory of the pool's device), so the real call answers it.
template <Lookup L>
CUresult hook_cuPointerGetAttribute(void* data, CUpointer_attribute attribute, CUdeviceptr ptr) {
  GPUMEM_DRIVER_PROLOGUE(cuPointerGetAttribute, data, attribute, ptr);
  const bool range_attribute = attribute == CU_POINTER_ATTRIBUTE_RANGE_START_ADDR ||
                               attribute == CU_POINTER_ATTRIBUTE_RANGE_SIZE;
  if (data == nullptr || ptr == 0) return real(data, attribute, ptr);
  resources::BlockInfo block;
  if (!policy::lookup(reinterpret_cast<const void*>(ptr), &block)) {
    if (!policy::pool_owns(static_cast<uint64_t>(ptr))) return real(data, attribute, ptr);
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (!range_attribute) return real(data, attribute, ptr);
  if (attribute == CU_POINTER_ATTRIBUTE_RANGE_START_ADDR)
    *static_cast<CUdeviceptr*>(data) = reinterpret_cast<CUdeviceptr>(block.base);
  else
    *static_cast<size_t*>(data) = block.bytes;
  return CUDA_SUCCESS;
}

// See cudaIpcGetMemHandle (runtime.cpp): exporting a pooled block is refused.
template <Lookup L>
CUresult hook_cuIpcGetMemHandle(CUipcMemHandle* handle, CUdeviceptr dptr) {
  GPUMEM_DRIVER_PROLOGUE(cuIpcGetMemHandle, handle, dptr);
  if (!policy::lookup(reinterpret_cast<const void*>(dptr), nullptr)) return real(handle, dptr);
  log_message(LogLevel::error,
              "cuIpcGetMemHandle(0x%llx): pooled memory cannot be exported to another process; "
              "returning CUDA_ERROR_INVALID_VALUE. Run with GPUMEM_POOL=none to share it.",
              static_cast<unsigned long long>(dptr));
  return CUDA_ERROR_INVALID_VALUE;
}

}  // namespace

const Wrapped kDriverWrapped[] = {
    GPUMEM_WRAPPED(cuMemAlloc_v2),
    GPUMEM_WRAPPED(cuMemFree_v2),
    GPUMEM_WRAPPED(cuMemAllocPitch_v2),
    GPUMEM_WRAPPED(cuMemAllocManaged),
    GPUMEM_WRAPPED(cuMemAllocAsync),
    GPUMEM_WRAPPED(cuMemAllocAsync_ptsz),
    GPUMEM_WRAPPED(cuMemFreeAsync),
    GPUMEM_WRAPPED(cuMemFreeAsync_ptsz),
    GPUMEM_WRAPPED(cuMemAllocFromPoolAsync),
    GPUMEM_WRAPPED(cuMemAllocFromPoolAsync_ptsz),
    GPUMEM_WRAPPED(cuMemAllocHost_v2),
    GPUMEM_WRAPPED(cuMemHostAlloc),
    GPUMEM_WRAPPED(cuMemFreeHost),
    GPUMEM_WRAPPED(cuMemCreate),
    GPUMEM_WRAPPED(cuMemRelease),
    GPUMEM_WRAPPED(cuMemRetainAllocationHandle),
    GPUMEM_WRAPPED(cuMemMap),
    GPUMEM_WRAPPED(cuMemUnmap),
    GPUMEM_WRAPPED(cuMemGetInfo_v2),
    GPUMEM_WRAPPED(cuDeviceTotalMem_v2),
    GPUMEM_WRAPPED(cuMemPoolTrimTo),
    GPUMEM_WRAPPED(cuMemPoolSetAccess),
    GPUMEM_WRAPPED(cuMemPoolDestroy),
    GPUMEM_WRAPPED(cuMemGetAddressRange_v2),
    GPUMEM_WRAPPED(cuPointerGetAttribute),
    GPUMEM_WRAPPED(cuIpcGetMemHandle),
};
const size_t kDriverWrappedCount = sizeof kDriverWrapped / sizeof kDriverWrapped[0];

}  // namespace gpumem::hooks

// Direct binding (-lcuda programs): their references resolve to these exports first.
using gpumem::hooks::Lookup;
#define GPUMEM_EXPORT_DRIVER(name, params, args)            \
  GPUMEM_EXPORT CUresult name params {                      \
    return gpumem::hooks::hook_##name<Lookup::direct> args; \
  }

GPUMEM_EXPORT_DRIVER(cuMemAlloc_v2, (CUdeviceptr * p, size_t n), (p, n))
GPUMEM_EXPORT_DRIVER(cuMemFree_v2, (CUdeviceptr p), (p))
GPUMEM_EXPORT_DRIVER(cuMemAllocPitch_v2,
                     (CUdeviceptr * p, size_t* pitch, size_t w, size_t h, unsigned int e),
                     (p, pitch, w, h, e))
GPUMEM_EXPORT_DRIVER(cuMemAllocManaged, (CUdeviceptr * p, size_t n, unsigned int f), (p, n, f))
GPUMEM_EXPORT_DRIVER(cuMemAllocAsync, (CUdeviceptr * p, size_t n, CUstream s), (p, n, s))
GPUMEM_EXPORT_DRIVER(cuMemAllocAsync_ptsz, (CUdeviceptr * p, size_t n, CUstream s), (p, n, s))
GPUMEM_EXPORT_DRIVER(cuMemFreeAsync, (CUdeviceptr p, CUstream s), (p, s))
GPUMEM_EXPORT_DRIVER(cuMemFreeAsync_ptsz, (CUdeviceptr p, CUstream s), (p, s))
GPUMEM_EXPORT_DRIVER(cuMemAllocFromPoolAsync,
                     (CUdeviceptr * p, size_t n, CUmemoryPool m, CUstream s), (p, n, m, s))
GPUMEM_EXPORT_DRIVER(cuMemAllocFromPoolAsync_ptsz,
                     (CUdeviceptr * p, size_t n, CUmemoryPool m, CUstream s), (p, n, m, s))
GPUMEM_EXPORT_DRIVER(cuMemAllocHost_v2, (void** p, size_t n), (p, n))
GPUMEM_EXPORT_DRIVER(cuMemHostAlloc, (void** p, size_t n, unsigned int f), (p, n, f))
GPUMEM_EXPORT_DRIVER(cuMemFreeHost, (void* p), (p))
GPUMEM_EXPORT_DRIVER(cuMemCreate,
                     (CUmemGenericAllocationHandle * h, size_t n, const CUmemAllocationProp* p,
                      unsigned long long f),
                     (h, n, p, f))
GPUMEM_EXPORT_DRIVER(cuMemRelease, (CUmemGenericAllocationHandle h), (h))
GPUMEM_EXPORT_DRIVER(cuMemRetainAllocationHandle, (CUmemGenericAllocationHandle * h, void* a),
                     (h, a))
GPUMEM_EXPORT_DRIVER(cuMemMap,
                     (CUdeviceptr p, size_t n, size_t o, CUmemGenericAllocationHandle h,
                      unsigned long long f),
                     (p, n, o, h, f))
GPUMEM_EXPORT_DRIVER(cuMemUnmap, (CUdeviceptr p, size_t n), (p, n))
GPUMEM_EXPORT_DRIVER(cuMemGetInfo_v2, (size_t * f, size_t* t), (f, t))
GPUMEM_EXPORT_DRIVER(cuDeviceTotalMem_v2, (size_t * b, CUdevice d), (b, d))
GPUMEM_EXPORT_DRIVER(cuMemPoolTrimTo, (CUmemoryPool m, size_t n), (m, n))
GPUMEM_EXPORT_DRIVER(cuMemPoolSetAccess, (CUmemoryPool m, const CUmemAccessDesc* a, size_t n),
                     (m, a, n))
GPUMEM_EXPORT_DRIVER(cuMemPoolDestroy, (CUmemoryPool m), (m))
GPUMEM_EXPORT_DRIVER(cuMemGetAddressRange_v2, (CUdeviceptr * b, size_t* s, CUdeviceptr p),
                     (b, s, p))
GPUMEM_EXPORT_DRIVER(cuIpcGetMemHandle, (CUipcMemHandle * h, CUdeviceptr p), (h, p))
GPUMEM_EXPORT_DRIVER(cuPointerGetAttribute, (void* d, CUpointer_attribute a, CUdeviceptr p),
                     (d, a, p))
