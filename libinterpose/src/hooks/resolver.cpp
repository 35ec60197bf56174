// Resolver family: cuGetProcAddress, cuGetProcAddress_v2, cudaGetDriverEntryPoint and
// cudaGetDriverEntryPointByVersion (and their _ptsz forms). The real resolver always runs first
// with the caller's own arguments (symbol, version, flags); its answer is replaced only when it
// is exactly the address of a real driver function that gpumem wraps, as found by
// dlsym(libcuda, exported name). No name or version is ever guessed: a request for an older ABI
// returns a different real function and is left alone.
#include <cuda.h>
#include <cuda_runtime_api.h>

// cuda.h maps cuGetProcAddress to cuGetProcAddress_v2; the unversioned export is wrapped too.
#undef cuGetProcAddress

#include <pthread.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "hooks/wrapped.h"
#include "real.h"

extern "C" {
// The CUDA 11.3-era resolver without symbolStatus; libcuda still exports it.
CUresult cuGetProcAddress(const char* symbol, void** pfn, int cudaVersion, cuuint64_t flags);
cudaError_t cudaGetDriverEntryPoint_ptsz(const char* symbol, void** funcPtr,
                                         unsigned long long flags,
                                         cudaDriverEntryPointQueryResult* driverStatus);
cudaError_t cudaGetDriverEntryPointByVersion_ptsz(const char* symbol, void** funcPtr,
                                                  unsigned int cudaVersion,
                                                  unsigned long long flags,
                                                  cudaDriverEntryPointQueryResult* driverStatus);
}

namespace gpumem::hooks {

using trace::Lookup;
using GetProcAddressV1 = CUresult (*)(const char*, void**, int, cuuint64_t);

namespace {

// real driver address -> index into kDriverWrapped / kResolverWrapped, built once from dlsym.
struct RealAddress {
  void* real;
  void* wrapper;
};
constexpr size_t kMaxMapped = 256;
RealAddress g_map[kMaxMapped];
size_t g_mapped = 0;
std::atomic<bool> g_map_ready{false};
std::mutex g_map_mutex;

// A fork while another thread builds the map would leave the child's copy of the mutex locked
// forever: the forking thread holds it across fork() instead (registered once, outside the lock).
void lock_map_for_fork() {
  g_map_mutex.lock();
}
void unlock_map_after_fork() {
  g_map_mutex.unlock();
}

void build_map() {
  static std::atomic<bool> fork_handlers{false};
  if (!fork_handlers.exchange(true))
    pthread_atfork(lock_map_for_fork, unlock_map_after_fork, unlock_map_after_fork);
  std::lock_guard<std::mutex> lock(g_map_mutex);
  if (g_map_ready.load(std::memory_order_acquire)) return;
  if (driver_handle() == nullptr) return;
  auto add = [](const Wrapped* table, size_t n) {
    for (size_t i = 0; i < n && g_mapped < kMaxMapped; ++i) {
      void* real = real_driver_symbol(table[i].name);
      void* wrapper = table[i].by_lookup[static_cast<int>(Lookup::resolver)];
      if (real != nullptr) g_map[g_mapped++] = {real, wrapper};
      // A driver whose resolver hands out its exported (hence interposable) addresses returns
      // our export: that is the same function, reached through the resolver.
      if (g_mapped < kMaxMapped)
        g_map[g_mapped++] = {table[i].by_lookup[static_cast<int>(Lookup::direct)], wrapper};
    }
  };
  add(kDriverWrapped, kDriverWrappedCount);
  add(kResolverWrapped, kResolverWrappedCount);
  add(kArrayWrapped, kArrayWrappedCount);
  add(kHostRegisterWrapped, kHostRegisterWrappedCount);
  add(kIpcWrapped, kIpcWrappedCount);
  add(kPeerWrapped, kPeerWrappedCount);
  g_map_ready.store(true, std::memory_order_release);
}

void substitute(void** pfn) {
  if (pfn == nullptr || *pfn == nullptr) return;
  if (void* w = wrapper_for_real_driver_function(*pfn)) *pfn = w;
}

CUresult hook_cuGetProcAddress_v2(const char* symbol, void** pfn, int cuda_version,
                                  cuuint64_t flags, CUdriverProcAddressQueryResult* status) {
  auto real = GPUMEM_REAL_DRIVER(cuGetProcAddress_v2);
  if (real == nullptr) return CUDA_ERROR_NOT_INITIALIZED;
  const CUresult r = real(symbol, pfn, cuda_version, flags, status);
  if (r == CUDA_SUCCESS) substitute(pfn);
  return r;
}

CUresult hook_cuGetProcAddress(const char* symbol, void** pfn, int cuda_version, cuuint64_t flags) {
  auto real = GPUMEM_REAL_DRIVER_AS(GetProcAddressV1, cuGetProcAddress);
  if (real == nullptr) return CUDA_ERROR_NOT_INITIALIZED;
  const CUresult r = real(symbol, pfn, cuda_version, flags);
  if (r == CUDA_SUCCESS) substitute(pfn);
  return r;
}

cudaError_t hook_cudaGetDriverEntryPoint(const char* symbol, void** fn, unsigned long long flags,
                                         cudaDriverEntryPointQueryResult* status) {
  auto real = GPUMEM_REAL_RUNTIME(cudaGetDriverEntryPoint);
  if (real == nullptr) return cudaErrorInitializationError;
  const cudaError_t r = real(symbol, fn, flags, status);
  if (r == cudaSuccess) substitute(fn);
  return r;
}

cudaError_t hook_cudaGetDriverEntryPoint_ptsz(const char* symbol, void** fn,
                                              unsigned long long flags,
                                              cudaDriverEntryPointQueryResult* status) {
  auto real = GPUMEM_REAL_RUNTIME(cudaGetDriverEntryPoint_ptsz);
  if (real == nullptr) return cudaErrorInitializationError;
  const cudaError_t r = real(symbol, fn, flags, status);
  if (r == cudaSuccess) substitute(fn);
  return r;
}

cudaError_t hook_cudaGetDriverEntryPointByVersion(const char* symbol, void** fn,
                                                  unsigned int version, unsigned long long flags,
                                                  cudaDriverEntryPointQueryResult* status) {
  auto real = GPUMEM_REAL_RUNTIME(cudaGetDriverEntryPointByVersion);
  if (real == nullptr) return cudaErrorInitializationError;
  const cudaError_t r = real(symbol, fn, version, flags, status);
  if (r == cudaSuccess) substitute(fn);
  return r;
}

cudaError_t hook_cudaGetDriverEntryPointByVersion_ptsz(const char* symbol, void** fn,
                                                       unsigned int version,
                                                       unsigned long long flags,
                                                       cudaDriverEntryPointQueryResult* status) {
  auto real = GPUMEM_REAL_RUNTIME(cudaGetDriverEntryPointByVersion_ptsz);
  if (real == nullptr) return cudaErrorInitializationError;
  const cudaError_t r = real(symbol, fn, version, flags, status);
  if (r == cudaSuccess) substitute(fn);
  return r;
}

#define GPUMEM_RESOLVER(name)                                                       \
  {                                                                                 \
#name, {                                                                        \
      reinterpret_cast<void*>(&hook_##name), reinterpret_cast<void*>(&hook_##name), \
          reinterpret_cast<void*>(&hook_##name)                                     \
    }                                                                               \
  }

}  // namespace

// The resolvers themselves are wrapped too: a runtime that asks the driver for
// "cuGetProcAddress" gets ours back, and stays inside the net.
const Wrapped kResolverWrapped[] = {
    GPUMEM_RESOLVER(cuGetProcAddress_v2),
    GPUMEM_RESOLVER(cuGetProcAddress),
    GPUMEM_RESOLVER(cudaGetDriverEntryPoint),
    GPUMEM_RESOLVER(cudaGetDriverEntryPoint_ptsz),
    GPUMEM_RESOLVER(cudaGetDriverEntryPointByVersion),
    GPUMEM_RESOLVER(cudaGetDriverEntryPointByVersion_ptsz),
};
const size_t kResolverWrappedCount = sizeof kResolverWrapped / sizeof kResolverWrapped[0];

void* wrapper_for_real_driver_function(void* real) {
  if (!g_map_ready.load(std::memory_order_acquire)) build_map();
  if (!g_map_ready.load(std::memory_order_acquire)) return nullptr;
  for (size_t i = 0; i < g_mapped; ++i)
    if (g_map[i].real == real) return g_map[i].wrapper;
  return nullptr;
}

void* wrapper_for_name(const char* name, Lookup lookup) {
  if (name == nullptr) return nullptr;
  if ((name[0] != 'c' || name[1] != 'u') && (name[0] != 'n' || name[1] != 'v'))
    return nullptr;  // cu*, cuda* and nvml* only
  const Wrapped* tables[] = {kRuntimeWrapped, kDriverWrapped,       kResolverWrapped, kNvmlWrapped,
                             kArrayWrapped,   kHostRegisterWrapped, kIpcWrapped,
                             kPeerWrapped};
  const size_t counts[] = {kRuntimeWrappedCount, kDriverWrappedCount, kResolverWrappedCount,
                           kNvmlWrappedCount,    kArrayWrappedCount,  kHostRegisterWrappedCount,
                           kIpcWrappedCount,     kPeerWrappedCount};
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; ++t)
    for (size_t i = 0; i < counts[t]; ++i)
      if (std::strcmp(tables[t][i].name, name) == 0)
        return tables[t][i].by_lookup[static_cast<int>(lookup)];
  return nullptr;
}

}  // namespace gpumem::hooks

using namespace gpumem::hooks;  // NOLINT: exported C entry points below only

GPUMEM_EXPORT CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int cuda_version,
                                           cuuint64_t flags,
                                           CUdriverProcAddressQueryResult* status) {
  return hook_cuGetProcAddress_v2(symbol, pfn, cuda_version, flags, status);
}
GPUMEM_EXPORT CUresult cuGetProcAddress(const char* symbol, void** pfn, int cuda_version,
                                        cuuint64_t flags) {
  return hook_cuGetProcAddress(symbol, pfn, cuda_version, flags);
}
GPUMEM_EXPORT cudaError_t cudaGetDriverEntryPoint(const char* symbol, void** fn,
                                                  unsigned long long flags,
                                                  cudaDriverEntryPointQueryResult* status) {
  return hook_cudaGetDriverEntryPoint(symbol, fn, flags, status);
}
GPUMEM_EXPORT cudaError_t cudaGetDriverEntryPoint_ptsz(const char* symbol, void** fn,
                                                       unsigned long long flags,
                                                       cudaDriverEntryPointQueryResult* status) {
  return hook_cudaGetDriverEntryPoint_ptsz(symbol, fn, flags, status);
}
GPUMEM_EXPORT cudaError_t cudaGetDriverEntryPointByVersion(
    const char* symbol, void** fn, unsigned int version, unsigned long long flags,
    cudaDriverEntryPointQueryResult* status) {
  return hook_cudaGetDriverEntryPointByVersion(symbol, fn, version, flags, status);
}
GPUMEM_EXPORT cudaError_t cudaGetDriverEntryPointByVersion_ptsz(
    const char* symbol, void** fn, unsigned int version, unsigned long long flags,
    cudaDriverEntryPointQueryResult* status) {
  return hook_cudaGetDriverEntryPointByVersion_ptsz(symbol, fn, version, flags, status);
}
