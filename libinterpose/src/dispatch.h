// The seam between hooks and policy. Every hook translates its arguments into a Request, hands
// it with "the real call" to the device's AllocationPath, and translates the Answer into its own
// API's return code. Hooks hold no policy; the path holds no API knowledge.
//
// A path is: tracking (trace record, live-pointer map, statistics) -> the device's policy stack
// (policy.h: pool -> limit -> device upstream = the real function), or straight to the real
// function when no policy applies. A policy that refuses answers Status::out_of_memory and the
// hook returns its API's out-of-memory code.
#pragma once

#include <cstdint>

#include "gpumem/gpumem.h"
#include "gpumem/trace/format.h"

namespace gpumem {

// Record::flags helpers: kind of memory, how the caller reached the hook, stream-ordered.
constexpr uint16_t make_flags(trace::MemKind kind, trace::Lookup lookup, bool async = false) {
  return static_cast<uint16_t>(static_cast<uint16_t>(kind) |
                               (static_cast<uint16_t>(lookup) << trace::kFlagLookupShift) |
                               (async ? trace::kFlagAsync : 0));
}

// A free leaves its device unresolved: a known pointer's free takes its allocation's device (from
// the live map), so only the free of an unknown pointer pays for asking CUDA (resolve_device).
constexpr int kDeviceUnresolved = -2;

struct Request {
  int device = -1;      // ordinal; -1 = host memory or unknown; kDeviceUnresolved (frees)
  uint64_t bytes = 0;   // what the caller asked for (pitch * height for pitched calls)
  uint64_t stream = 0;  // 0 = legacy default stream
  trace::Api api = trace::Api::unknown;
  uint16_t flags = 0;                 // make_flags(...)
  int (*resolve_device)() = nullptr;  // the caller's current device, for kDeviceUnresolved
};

enum class Status : uint8_t { ok, out_of_memory, upstream_error };

struct Answer {
  Status status = Status::upstream_error;
  uint64_t address = 0;  // device pointer or VMM handle when ok
  int32_t code = 0;      // the real function's own return code (meaningful for upstream_error)
};

// A non-owning reference to a callable, so hooks pass lambdas without any allocation.
template <class R>
class CallRef {
 public:
  template <class F>
  CallRef(F& f) : obj_(&f), fn_([](void* o) -> R { return (*static_cast<F*>(o))(); }) {}
  R operator()() const { return fn_(obj_); }

 private:
  void* obj_;
  R (*fn_)(void*);
};

// One per device (plus one for host memory). Thread-safe, lock-free.
class AllocationPath {
 public:
  // real(): performs the real allocation and reports its address and return code.
  Answer allocate(const Request& req, CallRef<Answer> real);
  // Records the free (before it happens, so the address cannot be handed out again while the
  // trace still shows it live), then calls real() and returns its code. When real() fails the
  // allocation stays live: it goes back into the live map and counters, and an Op::free_failed
  // record cancels the free. address 0: no event.
  int32_t deallocate(const Request& req, uint64_t address, CallRef<int32_t> real);
  // Capacity query (cudaMemGetInfo, cuMemGetInfo_v2, cuDeviceTotalMem_v2): real() fills
  // *total and *free_bytes; under a limit they are clamped (policy::clamp_capacity), and the path
  // records what is reported.
  int32_t capacity(const Request& req, uint64_t* total, uint64_t* free_bytes,
                   CallRef<int32_t> real);
  void stats(gpumem_stats* out) const;
};

AllocationPath& path_for(int device);

// Events that involve no policy decision: written as they happen.
void record_event(trace::Op op, const Request& req, uint64_t address, uint64_t aux, int32_t result);
void record_anomaly(trace::AnomalyKind kind, const Request& req, uint64_t address);

}  // namespace gpumem
