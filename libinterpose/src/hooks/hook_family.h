// What every hook family (runtime: cudaError_t, driver: CUresult) does the same way, written
// once: build the Request (with the family and the real call), refuse a NULL out-parameter, run
// an allocation / free / capacity query through the device's AllocationPath, translate the
// answer's Status into the family's return code (api_codes.h), and warn once when the real
// library is missing. A family is a small traits struct:
//
//   struct Driver {
//     using Result = CUresult;
//     using Stream = CUstream;
//     static constexpr resources::Family kFamily = resources::Family::driver;
//     static constexpr Result kSuccess, kNotInitialised;
//     static constexpr const char* kMissingWhy;          // "libcuda.so.1 cannot be loaded"
//     static constexpr const char* kNotInitialisedName;  // "CUDA_ERROR_NOT_INITIALIZED"
//     static int current_device();                       // -1 when it cannot be asked
//     static int stream_device(Stream);     // the stream's device, else the current one
//     static int device_count();                         // 0 when it cannot be asked
//     static bool pool_writable_from(Pool, int device);  // cuMemPoolGetAccess: read-write
//   };
//
// Everything here is a template in the family file's own translation unit, so the hot path is
// inlined exactly as when each family spelled it out.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "dispatch.h"
#include "hooks/api_codes.h"
#include "log.h"
#include "reentry.h"

namespace gpumem::hooks {

// request()'s default: ask the family for the caller's current device. (-2, as the driver hooks
// always had it: a cuMemCreate location id of -2 keeps meaning "current device".)
inline constexpr int kAskCurrentDevice = -2;

// Device pointers (void*, CUdeviceptr) and VMM handles as the 64-bit addresses the path keeps.
template <class T>
inline uint64_t to_address(T value) {
  if constexpr (std::is_pointer_v<T>)
    return reinterpret_cast<uint64_t>(value);
  else
    return static_cast<uint64_t>(value);
}
template <class T>
inline T from_address(uint64_t address) {
  if constexpr (std::is_pointer_v<T>)
    return reinterpret_cast<T>(address);
  else
    return static_cast<T>(address);
}

template <class F>
typename F::Result missing(const char* name) {
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true))
    log_message(LogLevel::error, "%s called but %s; returning %s", name, F::kMissingWhy,
                F::kNotInitialisedName);
  return F::kNotInitialised;
}

// Pinned host memory belongs to no device (-1); other memory to `device`, by default the
// caller's current one.
template <class F, trace::Lookup L>
inline Request request(trace::Api api, uint64_t bytes, trace::MemKind kind,
                       typename F::Stream stream = nullptr, bool async = false,
                       int device = kAskCurrentDevice) {
  Request r;
  r.device = device != kAskCurrentDevice           ? device
             : kind == trace::MemKind::pinned_host ? -1
                                                   : F::current_device();
  r.bytes = bytes;
  r.stream = reinterpret_cast<uint64_t>(stream);
  r.api = api;
  r.flags = make_flags(kind, L, async);
  r.family = F::kFamily;
  return r;
}

// A stream-ordered allocation takes its memory from the stream's device, whichever is current.
template <class F, trace::Lookup L>
inline Request async_request(trace::Api api, uint64_t bytes, typename F::Stream stream) {
  return request<F, L>(api, bytes, trace::MemKind::device, stream, true, F::stream_device(stream));
}

// An allocation from an explicit pool takes its memory from the pool's device: the one device
// with read-write access to the pool (its own always has it). When the pool cannot be asked, or
// cuMemPoolSetAccess gave peers access too, the stream's device stands in for it (-1 here).
template <class F>
inline int find_pool_owner(typename F::Pool pool) {
  int owner = -1;
  for (int d = 0, n = F::device_count(); d < n; ++d) {
    if (!F::pool_writable_from(pool, d)) continue;
    if (owner >= 0) return -1;
    owner = d;
  }
  return owner;
}

// Finding the owner asks CUDA for the device count and each device's access: on an 8-GPU node 9
// driver calls per cuMemAllocFromPoolAsync, which TensorFlow's and XLA's async allocators make
// for every tensor. So each thread keeps the answer for the last few pools it allocated from,
// valid while g_pool_access_generation has not moved: the hooks of cuMemPoolSetAccess and
// cuMemPoolDestroy (and the runtime's) bump it after each call, so an answer that a change of
// access, or a pool destroyed and another made at the same address, could alter is asked again.
inline std::atomic<uint32_t> g_pool_access_generation{1};
inline void pool_access_changed() {
  g_pool_access_generation.fetch_add(1, std::memory_order_acq_rel);
}
// A call that may change a pool's device (set-access, destroy): not recorded; the real call, then
// the kept devices dropped.
template <class Real, class... Args>
inline auto then_pool_access_changed(Real real, Args... args) {
  const auto result = real(args...);
  pool_access_changed();
  return result;
}
struct PoolOwner {
  uint64_t pool = 0;
  uint32_t generation = 0;  // 0: empty
  int owner = -1;
};
inline constexpr size_t kPoolOwnersPerThread = 8;
__attribute__((
    tls_model("initial-exec"))) inline thread_local PoolOwner t_pool_owners[kPoolOwnersPerThread];

template <class F>
inline int pool_device(typename F::Pool pool, typename F::Stream stream) {
  const uint64_t key = reinterpret_cast<uint64_t>(pool);
  const uint32_t generation = g_pool_access_generation.load(std::memory_order_acquire);
  PoolOwner& cached = t_pool_owners[(key >> 6) % kPoolOwnersPerThread];
  if (cached.pool != key || cached.generation != generation) [[unlikely]]
    cached = PoolOwner{key, generation, find_pool_owner<F>(pool)};
  return cached.owner >= 0 ? cached.owner : F::stream_device(stream);
}

// Device memory frees: the device is asked for only when the pointer turns out to be unknown
// (a stream-ordered free's is its stream's, as for its allocation).
template <class F>
int current_device_of(uint64_t) {
  return F::current_device();
}
template <class F>
int stream_device_of(uint64_t stream) {
  return F::stream_device(reinterpret_cast<typename F::Stream>(stream));
}
template <class F, trace::Lookup L>
inline Request free_request(trace::Api api, typename F::Stream stream = nullptr,
                            bool async = false) {
  Request r;
  r.device = kDeviceUnresolved;
  r.resolve_device = async ? &stream_device_of<F> : &current_device_of<F>;
  r.stream = reinterpret_cast<uint64_t>(stream);
  r.api = api;
  r.flags = make_flags(trace::MemKind::device, L, async);
  r.family = F::kFamily;
  return r;
}

template <class F>
inline typename F::Result to_result(Status s, int upstream_code) {
  return static_cast<typename F::Result>(api_code(F::kFamily, s, upstream_code));
}

template <class F>
inline typename F::Result null_out_param(const Request& req) {
  record_anomaly(trace::AnomalyKind::null_out_param, req, 0);
  return to_result<F>(Status::invalid_value, 0);
}

// Runs an allocation whose real call, call(), stores the new pointer or handle in *out.
template <class F, class Out, class Call>
inline typename F::Result allocate(Request req, Out* out, Call call) {
  auto real = [&](void** p) {
    const typename F::Result e = call();
    *p = e == F::kSuccess ? reinterpret_cast<void*>(to_address(*out)) : nullptr;
    return static_cast<int>(e);
  };
  req.real_alloc = real;
  const Result r = path_for(req.device).allocate(req);
  // A pool answers without the real call: the pointer comes from the answer.
  if (r.ok()) *out = from_address<Out>(reinterpret_cast<uint64_t>(r.ptr));
  return to_result<F>(r.status, r.upstream_code);
}

template <class F, class Handle, class Call>
inline typename F::Result release(Request req, Handle handle, Call call) {
  auto real = [&]() { return static_cast<int>(call()); };
  req.real_free = real;
  const FreeResult r = path_for(req.device).deallocate(req, to_address(handle));
  return to_result<F>(r.status, r.upstream_code);
}

// Runs a capacity query whose real call is call(size_t* free, size_t* total). A null free_bytes
// means the API does not report free memory (recorded as 0).
template <class F, class Call>
inline typename F::Result capacity(const Request& req, size_t* free_bytes, size_t* total,
                                   Call call) {
  uint64_t t = 0, f = 0;
  auto real = [&]() {
    size_t rf = 0, rt = 0;
    const typename F::Result e = call(&rf, &rt);
    f = rf;
    t = rt;
    return static_cast<int32_t>(e);
  };
  const auto e = static_cast<typename F::Result>(
      path_for(req.device).capacity(req, &t, &f, CallRef<int32_t()>(real)));
  if (e == F::kSuccess) {
    if (free_bytes != nullptr) *free_bytes = f;
    *total = t;
  }
  return e;
}

}  // namespace gpumem::hooks

// Opens a hook: `real` is the real function (get_real, e.g. GPUMEM_REAL_DRIVER(name)); without it
// the family's not-initialised code is returned; a call nested in another hook (CUDA calling
// itself) passes straight through. The scope opens first, so that the lookup of the real function
// (the dynamic linker, on first use) is inside the hook too: a signal handler calling gpumem_mark
// there must see that it interrupted the library (c_api.cpp).
#define GPUMEM_HOOK_PROLOGUE(Family, get_real, name_string, ...)             \
  ::gpumem::HookScope scope;                                                 \
  auto real = get_real;                                                      \
  if (real == nullptr) return ::gpumem::hooks::missing<Family>(name_string); \
  if (!scope.outermost()) return real(__VA_ARGS__)
