// cuGetProcAddress / cuGetProcAddress_v2: a base name, a CUDA version and stream flags select
// one versioned entry point, as in the real driver. The versions are those of cudaTypedefs.h's
// PFN_<name>_v<version> typedefs: a row (cuMemAlloc, 3020) serves cuMemAlloc_v2 to any request
// for "cuMemAlloc" at version 3020 or later. Only base names are accepted ("cuMemAlloc_v2" is
// not found, as on a GPU).
#include <cstring>

#include "state.h"

namespace {

// Generated from unsupported.txt: every other driver entry point, returning
// CUDA_ERROR_NOT_SUPPORTED.
struct SimcudaStub {
  const char* name;
  void* fn;
};
extern "C" const SimcudaStub simcuda_stubs[];

enum class Variant { plain, per_thread };  // per_thread: the _ptsz / _ptds entry point

struct Entry {
  const char* name;
  int version;
  Variant variant;
  void* fn;
};

#define ROW(name, version, fn) \
  { #name, version, Variant::plain, reinterpret_cast < void*>(&fn) }
#define ROW_PT(name, version, fn) \
  { #name, version, Variant::per_thread, reinterpret_cast < void*>(&fn) }

const Entry kEntries[] = {
    ROW(cuInit, 2000, cuInit),
    ROW(cuDriverGetVersion, 2020, cuDriverGetVersion),
    ROW(cuGetProcAddress, 11030, cuGetProcAddress),
    ROW(cuGetProcAddress, 12000, cuGetProcAddress_v2),
    ROW(cuGetErrorName, 6000, cuGetErrorName),
    ROW(cuGetErrorString, 6000, cuGetErrorString),
    ROW(cuDeviceGet, 2000, cuDeviceGet),
    ROW(cuDeviceGetCount, 2000, cuDeviceGetCount),
    ROW(cuDeviceGetName, 2000, cuDeviceGetName),
    ROW(cuDeviceGetAttribute, 2000, cuDeviceGetAttribute),
    ROW(cuDeviceTotalMem, 3020, cuDeviceTotalMem_v2),
    ROW(cuDevicePrimaryCtxRetain, 7000, cuDevicePrimaryCtxRetain),
    ROW(cuDevicePrimaryCtxRelease, 11000, cuDevicePrimaryCtxRelease_v2),
    ROW(cuCtxCreate, 12050, cuCtxCreate_v4),
    ROW(cuCtxEnablePeerAccess, 4000, cuCtxEnablePeerAccess),
    ROW(cuCtxDisablePeerAccess, 4000, cuCtxDisablePeerAccess),
    ROW(cuDeviceCanAccessPeer, 4000, cuDeviceCanAccessPeer),
    ROW(cuCtxDestroy, 4000, cuCtxDestroy_v2),
    ROW(cuCtxGetCurrent, 4000, cuCtxGetCurrent),
    ROW(cuCtxSetCurrent, 4000, cuCtxSetCurrent),
    ROW(cuCtxGetDevice, 2000, cuCtxGetDevice),
    ROW(cuCtxGetDevice, 13000, cuCtxGetDevice_v2),
    ROW(cuCtxSynchronize, 2000, cuCtxSynchronize),
    ROW(cuCtxSynchronize, 13000, cuCtxSynchronize_v2),
    ROW(cuMemAlloc, 3020, cuMemAlloc_v2),
    ROW(cuMemFree, 3020, cuMemFree_v2),
    ROW(cuMemAllocPitch, 3020, cuMemAllocPitch_v2),
    ROW(cuMemAllocManaged, 6000, cuMemAllocManaged),
    ROW(cuMemGetInfo, 3020, cuMemGetInfo_v2),
    ROW(cuIpcGetMemHandle, 4010, cuIpcGetMemHandle),
    ROW(cuIpcOpenMemHandle, 11000, cuIpcOpenMemHandle_v2),
    ROW(cuIpcCloseMemHandle, 4010, cuIpcCloseMemHandle),
    ROW(cuMemGetAddressRange, 3020, cuMemGetAddressRange_v2),
    ROW(cuMemAllocHost, 3020, cuMemAllocHost_v2),
    ROW(cuMemHostAlloc, 2020, cuMemHostAlloc),
    ROW(cuMemFreeHost, 2000, cuMemFreeHost),
    ROW(cuPointerGetAttribute, 4000, cuPointerGetAttribute),
    ROW(cuMemcpy, 4000, cuMemcpy),
    ROW(cuMemsetD8, 3020, cuMemsetD8_v2),
    ROW(cuMemAllocAsync, 11020, cuMemAllocAsync),
    ROW_PT(cuMemAllocAsync, 11020, cuMemAllocAsync_ptsz),
    ROW(cuMemFreeAsync, 11020, cuMemFreeAsync),
    ROW_PT(cuMemFreeAsync, 11020, cuMemFreeAsync_ptsz),
    ROW(cuMemAllocFromPoolAsync, 11020, cuMemAllocFromPoolAsync),
    ROW_PT(cuMemAllocFromPoolAsync, 11020, cuMemAllocFromPoolAsync_ptsz),
    ROW(cuDeviceGetDefaultMemPool, 11020, cuDeviceGetDefaultMemPool),
    ROW(cuMemPoolGetAttribute, 11020, cuMemPoolGetAttribute),
    ROW(cuMemPoolSetAttribute, 11020, cuMemPoolSetAttribute),
    ROW(cuMemPoolTrimTo, 11020, cuMemPoolTrimTo),
    ROW(cuMemPoolGetAccess, 11020, cuMemPoolGetAccess),
    ROW(cuMemPoolSetAccess, 11020, cuMemPoolSetAccess),
    ROW(cuMemPoolCreate, 11020, cuMemPoolCreate),
    ROW(cuMemPoolDestroy, 11020, cuMemPoolDestroy),
    ROW(cuMemAddressReserve, 10020, cuMemAddressReserve),
    ROW(cuMemAddressFree, 10020, cuMemAddressFree),
    ROW(cuMemCreate, 10020, cuMemCreate),
    ROW(cuMemRelease, 10020, cuMemRelease),
    ROW(cuMemMap, 10020, cuMemMap),
    ROW(cuMemUnmap, 10020, cuMemUnmap),
    ROW(cuMemSetAccess, 10020, cuMemSetAccess),
    ROW(cuMemGetAllocationGranularity, 10020, cuMemGetAllocationGranularity),
    ROW(cuMemRetainAllocationHandle, 11000, cuMemRetainAllocationHandle),
    ROW(cuMemExportToShareableHandle, 10020, cuMemExportToShareableHandle),
    ROW(cuMemImportFromShareableHandle, 10020, cuMemImportFromShareableHandle),
    ROW(cuStreamCreate, 2000, cuStreamCreate),
    ROW(cuStreamCreateWithPriority, 5050, cuStreamCreateWithPriority),
    ROW(cuStreamDestroy, 4000, cuStreamDestroy_v2),
    ROW(cuStreamSynchronize, 2000, cuStreamSynchronize),
    ROW_PT(cuStreamSynchronize, 7000, cuStreamSynchronize_ptsz),
    ROW(cuStreamQuery, 2000, cuStreamQuery),
    ROW_PT(cuStreamQuery, 7000, cuStreamQuery_ptsz),
    ROW(cuStreamGetDevice, 12080, cuStreamGetDevice),
    ROW_PT(cuStreamGetDevice, 12080, cuStreamGetDevice_ptsz),
    ROW(cuEventCreate, 2000, cuEventCreate),
    ROW(cuEventRecord, 2000, cuEventRecord),
    ROW_PT(cuEventRecord, 7000, cuEventRecord_ptsz),
    ROW(cuEventSynchronize, 2000, cuEventSynchronize),
    ROW(cuEventQuery, 2000, cuEventQuery),
    ROW(cuEventDestroy, 4000, cuEventDestroy_v2),
    ROW(cuEventElapsedTime, 2000, cuEventElapsedTime),
    ROW(cuEventElapsedTime, 12080, cuEventElapsedTime_v2),
    ROW(cuArrayCreate, 3020, cuArrayCreate_v2),
    ROW(cuArray3DCreate, 3020, cuArray3DCreate_v2),
    ROW(cuArrayDestroy, 2000, cuArrayDestroy),
    ROW(cuMipmappedArrayCreate, 5000, cuMipmappedArrayCreate),
    ROW(cuMipmappedArrayDestroy, 5000, cuMipmappedArrayDestroy),
    ROW(cuMemHostRegister, 6050, cuMemHostRegister_v2),
    ROW(cuMemHostUnregister, 4000, cuMemHostUnregister),
};

#undef ROW
#undef ROW_PT

// Is `name` a base name (no _v<N>, _ptsz or _ptds suffix)? Only base names are resolved.
bool is_base_name(const char* name) {
  const char* us = std::strrchr(name, '_');
  if (us == nullptr) return true;
  if (std::strcmp(us, "_ptsz") == 0 || std::strcmp(us, "_ptds") == 0) return false;
  if (us[1] != 'v' || us[2] == '\0') return true;
  for (const char* c = us + 2; *c; ++c)
    if (*c < '0' || *c > '9') return true;
  return false;
}

void* unsupported_stub(const char* name) {
  if (!is_base_name(name)) return nullptr;
  for (const SimcudaStub* s = simcuda_stubs; s->name; ++s)
    if (std::strcmp(s->name, name) == 0) return s->fn;
  return nullptr;
}

CUresult resolve(const char* symbol, void** pfn, int version, cuuint64_t flags,
                 CUdriverProcAddressQueryResult* status) {
  auto answer = [&](CUresult r, CUdriverProcAddressQueryResult s, void* fn) {
    *pfn = fn;
    if (status) *status = s;
    return r;
  };
  if (symbol == nullptr || pfn == nullptr) return CUDA_ERROR_INVALID_VALUE;
  constexpr cuuint64_t kFlags =
      CU_GET_PROC_ADDRESS_LEGACY_STREAM | CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
  if ((flags & ~kFlags) != 0)
    return answer(CUDA_ERROR_INVALID_VALUE, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND, nullptr);
  bool per_thread = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
  const Entry* plain = nullptr;
  const Entry* threaded = nullptr;
  bool known = false;
  for (const Entry& e : kEntries) {
    if (std::strcmp(e.name, symbol) != 0) continue;
    known = true;
    if (e.version > version) continue;
    const Entry*& best = e.variant == Variant::plain ? plain : threaded;
    if (best == nullptr || e.version > best->version) best = &e;
  }
  const Entry* chosen = (per_thread && threaded) ? threaded : plain;
  if (chosen) return answer(CUDA_SUCCESS, CU_GET_PROC_ADDRESS_SUCCESS, chosen->fn);
  // Outside the surface: a stub that answers CUDA_ERROR_NOT_SUPPORTED, so that a caller that
  // resolves many entry points up front (static cudart) still starts.
  if (!known) {
    if (void* stub = unsupported_stub(symbol))
      return answer(CUDA_SUCCESS, CU_GET_PROC_ADDRESS_SUCCESS, stub);
  }
  return answer(
      CUDA_ERROR_NOT_FOUND,
      known ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND,
      nullptr);
}

}  // namespace

SIMCUDA_EXPORT CUresult CUDAAPI cuGetProcAddress_v2(const char* symbol, void** pfn, int version,
                                                    cuuint64_t flags,
                                                    CUdriverProcAddressQueryResult* status) {
  return resolve(symbol, pfn, version, flags, status);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuGetProcAddress(const char* symbol, void** pfn, int version,
                                                 cuuint64_t flags) {
  return resolve(symbol, pfn, version, flags, nullptr);
}
