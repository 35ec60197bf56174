// Loading the driver, resolving its entry points, the runtime's per-thread state, and fork.
#include "driver.h"

#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <new>
#include <type_traits>

namespace simcuda::rt {
namespace {

struct Loaded {
  Driver d{};
  cudaError_t error = cudaSuccess;
};
// No destructor runs at exit(), so threads still inside runtime calls keep a valid driver table.
static_assert(std::is_trivially_destructible_v<Loaded>);

// simcuda's driver lock around fork(), when the driver left it to us (see on_load below).
std::atomic<void (*)(int)> g_driver_fork{nullptr};

template <typename Pfn>
bool resolve(PFN_cuGetProcAddress_v12000 get, const char* name, Pfn* out, cuuint64_t flags) {
  void* fn = nullptr;
  CUdriverProcAddressQueryResult status{};
  if (get(name, &fn, kDriverApiVersion, flags, &status) != CUDA_SUCCESS || fn == nullptr) {
    std::fprintf(stderr,
                 "simcuda runtime: the driver has no entry point '%s' (status %d); "
                 "put simcuda's libcuda.so.1 first in LD_LIBRARY_PATH\n",
                 name, static_cast<int>(status));
    return false;
  }
  *out = reinterpret_cast<Pfn>(fn);
  return true;
}

Loaded load() {
  Loaded l;
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (h == nullptr) {
    l.error = cudaErrorInsufficientDriver;
    return l;
  }
  // Before cuInit, so that simcuda's driver leaves fork handling to our early-registered
  // handlers. A real libcuda.so.1 has neither symbol.
  auto adopt = reinterpret_cast<int (*)()>(dlsym(h, "simcuda_driver_fork_adopt"));
  auto driver_fork = reinterpret_cast<void (*)(int)>(dlsym(h, "simcuda_driver_fork"));
  if (adopt != nullptr && driver_fork != nullptr && adopt() != 0)
    g_driver_fork.store(driver_fork, std::memory_order_release);
  auto get = reinterpret_cast<PFN_cuGetProcAddress_v12000>(dlsym(h, "cuGetProcAddress_v2"));
  if (get == nullptr) {
    l.error = cudaErrorInsufficientDriver;
    return l;
  }
  Driver& d = l.d;
  d.cuGetProcAddress_v2 = get;
  constexpr cuuint64_t legacy = CU_GET_PROC_ADDRESS_LEGACY_STREAM;
  constexpr cuuint64_t per_thread = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
  bool ok = true;
#define RESOLVE(field, name) ok = resolve(get, name, &d.field, legacy) && ok
#define RESOLVE_PT(field, name) ok = resolve(get, name, &d.field, per_thread) && ok
  RESOLVE(cuInit, "cuInit");
  RESOLVE(cuDriverGetVersion, "cuDriverGetVersion");
  RESOLVE(cuDeviceGetCount, "cuDeviceGetCount");
  RESOLVE(cuDeviceGetName, "cuDeviceGetName");
  RESOLVE(cuDeviceTotalMem, "cuDeviceTotalMem");
  RESOLVE(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  RESOLVE(cuCtxGetCurrent, "cuCtxGetCurrent");
  RESOLVE(cuCtxSetCurrent, "cuCtxSetCurrent");
  RESOLVE(cuCtxGetDevice, "cuCtxGetDevice");
  RESOLVE(cuCtxSynchronize, "cuCtxSynchronize");
  RESOLVE(cuMemAlloc, "cuMemAlloc");
  RESOLVE(cuMemFree, "cuMemFree");
  RESOLVE(cuMemAllocPitch, "cuMemAllocPitch");
  RESOLVE(cuMemAllocManaged, "cuMemAllocManaged");
  RESOLVE(cuMemAllocHost, "cuMemAllocHost");
  RESOLVE(cuMemHostAlloc, "cuMemHostAlloc");
  RESOLVE(cuMemFreeHost, "cuMemFreeHost");
  RESOLVE(cuMemGetInfo, "cuMemGetInfo");
  RESOLVE(cuPointerGetAttribute, "cuPointerGetAttribute");
  RESOLVE(cuMemAllocAsync, "cuMemAllocAsync");
  RESOLVE_PT(cuMemAllocAsync_ptsz, "cuMemAllocAsync");
  RESOLVE(cuMemFreeAsync, "cuMemFreeAsync");
  RESOLVE_PT(cuMemFreeAsync_ptsz, "cuMemFreeAsync");
  RESOLVE(cuMemAllocFromPoolAsync, "cuMemAllocFromPoolAsync");
  RESOLVE_PT(cuMemAllocFromPoolAsync_ptsz, "cuMemAllocFromPoolAsync");
  RESOLVE(cuDeviceGetDefaultMemPool, "cuDeviceGetDefaultMemPool");
  RESOLVE(cuMemPoolGetAttribute, "cuMemPoolGetAttribute");
  RESOLVE(cuMemPoolSetAttribute, "cuMemPoolSetAttribute");
  RESOLVE(cuMemPoolTrimTo, "cuMemPoolTrimTo");
  RESOLVE(cuMemPoolGetAccess, "cuMemPoolGetAccess");
  RESOLVE(cuMemPoolSetAccess, "cuMemPoolSetAccess");
  RESOLVE(cuMemPoolCreate, "cuMemPoolCreate");
  RESOLVE(cuMemPoolDestroy, "cuMemPoolDestroy");
  RESOLVE(cuStreamCreate, "cuStreamCreate");
  RESOLVE(cuStreamDestroy, "cuStreamDestroy");
  RESOLVE(cuStreamSynchronize, "cuStreamSynchronize");
  RESOLVE_PT(cuStreamSynchronize_ptsz, "cuStreamSynchronize");
  RESOLVE(cuStreamQuery, "cuStreamQuery");
  RESOLVE(cuStreamGetDevice, "cuStreamGetDevice");
  RESOLVE_PT(cuStreamGetDevice_ptsz, "cuStreamGetDevice");
  RESOLVE(cuEventCreate, "cuEventCreate");
  RESOLVE(cuEventRecord, "cuEventRecord");
  RESOLVE_PT(cuEventRecord_ptsz, "cuEventRecord");
  RESOLVE(cuEventSynchronize, "cuEventSynchronize");
  RESOLVE(cuEventQuery, "cuEventQuery");
  RESOLVE(cuEventDestroy, "cuEventDestroy");
  RESOLVE(cuEventElapsedTime, "cuEventElapsedTime");
  RESOLVE(cuDeviceCanAccessPeer, "cuDeviceCanAccessPeer");
  RESOLVE(cuCtxEnablePeerAccess, "cuCtxEnablePeerAccess");
  RESOLVE(cuCtxDisablePeerAccess, "cuCtxDisablePeerAccess");
#undef RESOLVE
#undef RESOLVE_PT
  if (!ok) {
    l.error = cudaErrorInsufficientDriver;
    return l;
  }
  if (CUresult r = d.cuInit(0); r != CUDA_SUCCESS) l.error = to_runtime(r);
  return l;
}

// Serialises the first retain of each device's primary context. Not taken around fork (a thread
// holds it while calling the driver, whose lock fork does take); a forked child gets a fresh
// one, and at worst retains a primary context once more.
std::mutex g_primary_mu;
std::atomic<CUcontext> g_primary[64] = {};

void fork_prepare() {
  if (auto f = g_driver_fork.load(std::memory_order_acquire)) f(0);
}
void fork_parent() {
  if (auto f = g_driver_fork.load(std::memory_order_acquire)) f(1);
}
void fork_child() {
  if (auto f = g_driver_fork.load(std::memory_order_acquire)) f(1);
  new (&g_primary_mu) std::mutex();  // if held at fork, it was by a thread the child lacks
}

// Registered when the library loads, before an LD_PRELOAD interposer's constructor registers
// its own handlers: prepare handlers run in reverse order of registration, so the interposer
// takes its locks (held while it calls into CUDA) before simcuda takes the driver's.
__attribute__((constructor)) void on_load() {
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}

}  // namespace

cudaError_t driver(const Driver** d) {
  static const Loaded loaded = load();
  *d = loaded.error == cudaSuccess ? &loaded.d : nullptr;
  return loaded.error;
}

int& thread_device() {
  thread_local int device = 0;
  return device;
}

cudaError_t primary_context(const Driver& d, int device, CUcontext* out) {
  int count = 0;
  if (CUresult r = d.cuDeviceGetCount(&count)) return to_runtime(r);
  if (device < 0 || device >= count || device >= 64) return cudaErrorInvalidDevice;
  CUcontext ctx = g_primary[device].load(std::memory_order_acquire);
  if (ctx == nullptr) {
    std::lock_guard lock(g_primary_mu);
    ctx = g_primary[device].load(std::memory_order_relaxed);
    if (ctx == nullptr) {
      if (CUresult r = d.cuDevicePrimaryCtxRetain(&ctx, device)) return to_runtime(r);
      g_primary[device].store(ctx, std::memory_order_release);
    }
  }
  *out = ctx;
  return cudaSuccess;
}

cudaError_t bind_device(const Driver& d, int device) {
  CUcontext ctx = nullptr;
  if (cudaError_t e = primary_context(d, device, &ctx)) return e;
  if (CUresult r = d.cuCtxSetCurrent(ctx)) return to_runtime(r);
  thread_device() = device;
  return cudaSuccess;
}

cudaError_t ready(const Driver** d) {
  if (cudaError_t e = driver(d)) return e;
  CUcontext ctx = nullptr;
  if (CUresult r = (*d)->cuCtxGetCurrent(&ctx)) return to_runtime(r);
  if (ctx != nullptr) return cudaSuccess;
  return bind_device(**d, thread_device());
}

cudaError_t to_runtime(CUresult r) {
  switch (r) {
    case CUDA_SUCCESS:
      return cudaSuccess;
    case CUDA_ERROR_INVALID_VALUE:
      return cudaErrorInvalidValue;
    case CUDA_ERROR_OUT_OF_MEMORY:
      return cudaErrorMemoryAllocation;
    case CUDA_ERROR_NOT_INITIALIZED:
      return cudaErrorInitializationError;
    case CUDA_ERROR_NO_DEVICE:
      return cudaErrorNoDevice;
    case CUDA_ERROR_INVALID_DEVICE:
      return cudaErrorInvalidDevice;
    case CUDA_ERROR_INVALID_CONTEXT:
      return cudaErrorDeviceUninitialized;
    case CUDA_ERROR_INVALID_HANDLE:
      return cudaErrorInvalidResourceHandle;
    case CUDA_ERROR_NOT_FOUND:
      return cudaErrorSymbolNotFound;
    case CUDA_ERROR_NOT_READY:
      return cudaErrorNotReady;
    case CUDA_ERROR_NOT_SUPPORTED:
      return cudaErrorNotSupported;
    case CUDA_ERROR_PEER_ACCESS_UNSUPPORTED:
      return cudaErrorPeerAccessUnsupported;
    case CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED:
      return cudaErrorPeerAccessAlreadyEnabled;
    case CUDA_ERROR_PEER_ACCESS_NOT_ENABLED:
      return cudaErrorPeerAccessNotEnabled;
    case CUDA_ERROR_ILLEGAL_ADDRESS:
      return cudaErrorIllegalAddress;
    default:
      return cudaErrorUnknown;
  }
}

cudaError_t& last_error() {
  thread_local cudaError_t e = cudaSuccess;
  return e;
}

cudaError_t finish(cudaError_t e) {
  if (e != cudaSuccess && e != cudaErrorNotReady) last_error() = e;
  return e;
}

}  // namespace simcuda::rt
