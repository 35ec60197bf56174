// The seam between hooks and policy. Every hook builds one resources::Request (its arguments, its
// family, its real call), hands it to the device's AllocationPath, and translates the answer's
// Status into its own API's return code (hooks/api_codes.h). Hooks hold no policy; the path holds
// no API knowledge beyond that table.
//
// A path is: tracking (trace record, live-pointer map, statistics) -> the device's policy stack
// (policy.h: pool -> limit -> device upstream = the request's real call), or straight to the real
// call when no policy applies. A policy that refuses answers Status::out_of_memory and the hook
// returns its API's out-of-memory code.
#pragma once

#include <cstdint>

#include "gpumem/gpumem.h"
#include "gpumem/resources/request.h"
#include "gpumem/trace/format.h"
#include "record.h"

namespace gpumem {

// A free leaves its device unresolved: a known pointer's free takes its allocation's device (from
// the live map), so only the free of an unknown pointer pays for asking CUDA (resolve_device).
constexpr int kDeviceUnresolved = -2;

// The hooks' request is the resources' own: device (an ordinal; -1 = host memory or unknown;
// kDeviceUnresolved for frees), bytes (pitch * height for pitched calls), stream, api,
// make_flags(...), the family, and the real call.
using resources::CallRef;
using resources::Family;
using resources::FreeResult;
using resources::Request;
using resources::Result;
using resources::Status;

// One per device (plus one for host memory). Thread-safe, lock-free.
class AllocationPath {
 public:
  // Runs req.real_alloc, or the device's stack when a policy applies. Result::ptr is the address
  // (or VMM handle) on success.
  Result allocate(const Request& req);
  // Records the free (before it happens, so the address cannot be handed out again while the
  // trace still shows it live), then runs req.real_free (or the stack) and returns its answer,
  // the real free's code included. When the free fails the allocation stays live: it goes back
  // into the live map and counters, and an Op::free_failed record cancels the free. address 0:
  // no event.
  FreeResult deallocate(const Request& req, uint64_t address);
  // Capacity query (cudaMemGetInfo, cuMemGetInfo_v2, cuDeviceTotalMem_v2): real() fills
  // *total and *free_bytes and returns the API's code; under a limit they are clamped
  // (policy::clamp_capacity), and the path records what is reported.
  int32_t capacity(const Request& req, uint64_t* total, uint64_t* free_bytes,
                   CallRef<int32_t()> real);
  void stats(gpumem_stats* out) const;
};

AllocationPath& path_for(int device);

// At exit with GPUMEM_LOG=info or more: one line per device that was used.
void log_summary();

}  // namespace gpumem
