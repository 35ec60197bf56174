// The policy step of the allocation path (docs/policies.md, "In the preload library"): one
// resource stack per device (gpumem_resources' DeviceStack: pool → limit → device), built at the
// first request for that device from the configuration, never destroyed (CUDA may be gone at
// exit). Without GPUMEM_POOL and without a limit for a device there is no stack and every request
// goes straight to CUDA, as before.
//
// The bottom of each stack is RealUpstream: it runs the request's own real call (so
// cudaMallocPitch gets its pitch, cudaMallocFromPoolAsync its pool, cuMemCreate its properties),
// except for pool segments, which it takes with the plain allocation of the request's family (real
// cudaMalloc / cudaFree for runtime hooks, cuMemAlloc_v2 / cuMemFree_v2 for driver hooks).
#pragma once

#include <cstdint>

#include "gpumem/gpumem.h"
#include "gpumem/resources/request.h"
#include "live_map.h"
#include "record.h"

namespace gpumem::policy {

using resources::Family;
using resources::FreeResult;
using resources::Request;
using resources::Result;
using resources::Status;

// Which resource serves a request. Stored in LiveInfo::route so the free takes the same way.
enum Route : uint8_t {
  kNone = 0,    // no stack: straight to CUDA
  kPooled = 1,  // the pool at the top of the stack (cudaMalloc, cuMemAlloc_v2, torch)
  kDirect = 2,  // below the pool: counted against the limit, then the real call
};

// Pure decision from the configuration and the request (no CUDA call).
Route route_for(const Request& req);

// Runs req through the device's stack. On a refusal Result::in_use is the bytes in use as the
// refusing layer counts them (the aux of the alloc_failed record).
Result allocate(const Request& req, Route route);
// Frees an allocation that info.route served, through the same layer; the real free's code comes
// back in FreeResult::upstream_code.
FreeResult deallocate(const Request& req, const LiveInfo& info, uint64_t address);
// True when address lies in a segment of any pool: such an address must never reach CUDA's free.
bool pool_owns(uint64_t address);
// The program enabled (or disabled) peer access from device `accessor` to device `owner`'s
// memory, with cudaDeviceEnablePeerAccess or cuCtxEnablePeerAccess (hooks/peer.cpp). The owner's
// expandable pool gives the accessor access to every granule it maps, or takes it back
// (docs/policies.md, "Peer access"); other pools need nothing (their memory is CUDA's own
// allocations, which peer access reaches). Remembered for a stack built later.
void peer_access_changed(int accessor, int owner, bool enabled);
// True once the device's stack is built (its first request under a policy).
bool has_stack(int device);

// The device's limit in bytes, percentages resolved (building its stack if need be); 0 = none.
// Before CUDA is initialised no stack is built (that would call cuInit): a size as given, a
// percentage 0.
uint64_t resolved_limit(int device);
// Capacity queries under a limit: *total = min(limit, physical), *free_bytes = max(0, total − in
// use) (never more than the device reports free). False when the device has no limit. Before CUDA
// is initialised (an NVML query) it answers from the setting, a percentage of *total, and never
// initialises CUDA: a process may ask NVML, then fork children that use CUDA.
bool clamp_capacity(int device, uint64_t* total, uint64_t* free_bytes);
// The pooled block containing p, on any device; false when p is not pooled memory.
bool lookup(const void* p, resources::BlockInfo* out);
// Overwrites the stack's figures (reserved, peaks, largest free block, limit) in *out.
void add_stack_stats(int device, gpumem_stats* out);
// Gives empty cached segments back (device -1: all). Writes a trim record per device.
uint64_t empty_cache(int device);
// The pool a trace header names: GPUMEM_POOL's, or "growth" once a device fell back to it from
// the expandable pool (no virtual memory management); the configuration lines keep the setting.
const char* served_pool_name();

}  // namespace gpumem::policy
