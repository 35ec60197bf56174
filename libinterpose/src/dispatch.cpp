// See dispatch.h. The tracking step: live-pointer map, per-device counters, trace records. It
// calls the policy step (policy.h), never the other way round.
#include "dispatch.h"

#include <atomic>

#include "config.h"
#include "gpumem/trace/writer.h"
#include "gpumem/units.h"
#include "hooks/api_codes.h"
#include "live_map.h"
#include "log.h"
#include "policy.h"
#include "session.h"
#include "stacks/stacks.h"

namespace gpumem {
namespace {

struct alignas(64) PathCounters {
  std::atomic<uint64_t> allocated{0};
  std::atomic<uint64_t> peak{0};
  std::atomic<uint64_t> allocs{0};
  std::atomic<uint64_t> frees{0};
  std::atomic<uint64_t> failed{0};
};

constexpr int kHostPath = trace::kMaxDevices;  // pinned host memory and unknown devices
AllocationPath g_paths[trace::kMaxDevices + 1];
PathCounters g_counters[trace::kMaxDevices + 1];

// 2^22 slots = 64 MiB of address space, committed page by page as it is touched. Constant-
// initialised globals: no guard variable checked on every call (as a function-local static had).
constinit LiveMap g_live_pointers(22, LiveMap::Keys::device_addresses);
// VMM handles live in their own namespace of values.
constinit LiveMap g_live_handles(16, LiveMap::Keys::opaque);
LiveMap& live_pointers() {
  return g_live_pointers;
}
LiveMap& live_handles() {
  return g_live_handles;
}

int path_index(int device) {
  return device >= 0 && device < trace::kMaxDevices ? device : kHostPath;
}

// VMM and array handles are opaque values, kept apart from addresses.
bool is_handle(uint16_t flags) {
  const auto kind = static_cast<trace::MemKind>(flags & trace::kFlagKindMask);
  return kind == trace::MemKind::physical || kind == trace::MemKind::array;
}

// Imported memory (IPC) is another process's allocation: recorded, never in this one's figures.
bool counted(uint16_t kind) {
  return static_cast<trace::MemKind>(kind) != trace::MemKind::imported;
}

void raise_peak(PathCounters& c, uint64_t now) {
  uint64_t peak = c.peak.load(std::memory_order_relaxed);
  while (now > peak && !c.peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

// The real free failed (cudaFreeHost of a device pointer, a free on the wrong context...): the
// program still holds the allocation, so the path takes it back (live map, counters; a limit
// below releases its bytes only on success) and cancels the free record it wrote before the call.
[[gnu::cold]] void undo_free(LiveMap& live, PathCounters& c, const Request& freed, uint64_t address,
                             const LiveInfo& info, uint64_t free_t_ns, int32_t result) {
  live.insert(address, info);
  if (counted(info.kind)) {
    raise_peak(c, c.allocated.fetch_add(info.bytes, std::memory_order_relaxed) + info.bytes);
    c.frees.fetch_sub(1, std::memory_order_relaxed);
  }
  TraceWriter* w = session::writer();
  if (w == nullptr) return;
  trace::Record r = make_record(trace::Op::free_failed, freed, address, info.bytes);
  r.aux = free_t_ns;
  r.result = result;
  write_record(w, r, true);
}

// Out of memory, as the device says it (its own code) or as gpumem's cap or pool does (no code).
bool is_oom(const Result& a) {
  return a.status == Status::out_of_memory ||
         (a.status == Status::upstream_error && hooks::is_out_of_memory(a.upstream_code));
}

// Op::oom: the device's state right after the failed call `failed` (its alloc_failed record, site
// included). Reads counters only (no device call, no allocation); the pool's largest free block
// takes the pool's own lock, which the failed call has released.
[[gnu::cold, gnu::noinline]] void record_oom(TraceWriter* w, const AllocationPath& path,
                                             const trace::Record& failed, const Result& a) {
  gpumem_stats st{};
  path.stats(&st);
  trace::Record r = failed;
  r.op = static_cast<uint16_t>(trace::Op::oom);
  r.t_ns = 0;  // the writer stamps it: after the alloc_failed record
  r.address = st.allocated_bytes;
  r.stream = st.reserved_bytes;
  r.aux = st.largest_free_block_bytes;
  if (a.status == Status::out_of_memory && a.upstream_code == 0) r.flags |= trace::kFlagOomByGpumem;
  w->append(r);
}

// The hook's own call, with no policy in between.
Result run_real_alloc(const Request& req) {
  Result r;
  const int code = req.real_alloc(&r.ptr);
  if (code != 0) r = Result{nullptr, Status::upstream_error, code, 0};
  return r;
}
FreeResult run_real_free(const Request& req) {
  const int code = req.real_free();
  return code == 0 ? FreeResult{} : FreeResult{Status::upstream_error, code};
}

}  // namespace

AllocationPath& path_for(int device) {
  return g_paths[path_index(device)];
}

Result AllocationPath::allocate(const Request& req) {
  const policy::Route route = policy::route_for(req);
  PathCounters& c = g_counters[this - g_paths];
  Result a;
  if (route == policy::kNone) {
    a = run_real_alloc(req);
    a.in_use = c.allocated.load(std::memory_order_relaxed);
  } else {
    a = policy::allocate(req, route);
  }
  const uint64_t address = reinterpret_cast<uint64_t>(a.ptr);
  TraceWriter* w = session::writer();
  if (w != nullptr) session::note_device(req.device);
  const uint16_t pooled = route == policy::kPooled ? trace::kFlagPooled : 0;
  if (a.ok()) {
    if (address == 0) return a;  // a zero-byte request that returned NULL: nothing to track
    (is_handle(req.flags) ? live_handles() : live_pointers())
        .insert(address, LiveInfo{req.bytes, req.device,
                                  static_cast<uint16_t>(req.flags & trace::kFlagKindMask),
                                  static_cast<uint8_t>(route)});
    if (counted(req.flags & trace::kFlagKindMask)) {
      raise_peak(c, c.allocated.fetch_add(req.bytes, std::memory_order_relaxed) + req.bytes);
      c.allocs.fetch_add(1, std::memory_order_relaxed);
    }
    if (w != nullptr) {
      trace::Record r = make_record(trace::Op::alloc, req, address, req.bytes);
      r.flags |= pooled;
      write_record(w, r, true);
    }
  } else {
    c.failed.fetch_add(1, std::memory_order_relaxed);
    if (w != nullptr) {
      trace::Record r = make_record(trace::Op::alloc_failed, req, 0, req.bytes);
      r.flags |= pooled;
      r.aux = a.in_use;
      r.result = hooks::api_code(req.family, a.status, a.upstream_code);
      write_record(w, r, true);
      if (is_oom(a)) record_oom(w, *this, r, a);
    }
  }
  return a;
}

FreeResult AllocationPath::deallocate(const Request& req, uint64_t address) {
  // cudaFree(0) is how programs initialise CUDA: no event
  if (address == 0) return run_real_free(req);
  LiveMap& live = is_handle(req.flags) ? live_handles() : live_pointers();
  LiveInfo info;
  const bool known = live.erase(address, &info);
  TraceWriter* w = session::writer();
  if (known) {
    PathCounters& c = g_counters[path_index(info.device)];
    if (counted(info.kind)) {
      c.allocated.fetch_sub(info.bytes, std::memory_order_relaxed);
      c.frees.fetch_add(1, std::memory_order_relaxed);
    }
    Request freed = req;  // the free carries the allocation's device and kind of memory
    freed.device = info.device;
    freed.flags = static_cast<uint16_t>((req.flags & ~trace::kFlagKindMask) | info.kind);
    if (info.route == policy::kPooled) freed.flags |= trace::kFlagPooled;
    uint64_t free_t_ns = 0;
    if (w != nullptr) {
      // Recorded before the real free: once it returns, the driver (or a pool) may hand the
      // address to another thread, whose alloc record must come after this free.
      trace::Record r = make_record(trace::Op::free, freed, address, info.bytes);
      r.t_ns = free_t_ns = monotonic_ns();
      write_record(w, r, false);
    }
    const FreeResult result =
        info.route != policy::kNone ? policy::deallocate(req, info, address) : run_real_free(req);
    if (!result.ok()) [[unlikely]]
      undo_free(live, c, freed, address, info, free_t_ns,
                hooks::api_code(req.family, result.status, result.upstream_code));
    return result;
  }
  if (w != nullptr) {
    Request unknown = req;
    if (unknown.device == kDeviceUnresolved)
      unknown.device =
          unknown.resolve_device != nullptr ? unknown.resolve_device(unknown.stream) : -1;
    trace::Record r = make_record(trace::Op::anomaly, unknown, address, 0);
    r.aux = static_cast<uint64_t>(trace::AnomalyKind::free_unknown);
    write_record(w, r, true);
  }
  // Inside a pool segment (a block freed twice, an interior pointer): CUDA's own free would
  // release the whole segment under the pool's feet. Refuse it as CUDA refuses a double free.
  if (!is_handle(req.flags) && policy::pool_owns(address)) return {Status::invalid_value, 0};
  return run_real_free(req);
}

int32_t AllocationPath::capacity(const Request& req, uint64_t* total, uint64_t* free_bytes,
                                 CallRef<int32_t()> real) {
  const int32_t result = real();
  if (result == 0) policy::clamp_capacity(req.device, total, free_bytes);
  Request q = req;
  q.bytes = result == 0 ? *total : 0;
  record_event(trace::Op::meminfo, q, 0, result == 0 ? *free_bytes : 0, result);
  return result;
}

void AllocationPath::stats(gpumem_stats* out) const {
  const PathCounters& c = g_counters[this - g_paths];
  *out = gpumem_stats{};
  out->allocated_bytes = c.allocated.load(std::memory_order_relaxed);
  out->reserved_bytes = out->allocated_bytes;  // without a pool; add_stack_stats sets the pool's
  out->peak_allocated_bytes = c.peak.load(std::memory_order_relaxed);
  out->peak_reserved_bytes = out->peak_allocated_bytes;
  out->alloc_count = c.allocs.load(std::memory_order_relaxed);
  out->free_count = c.frees.load(std::memory_order_relaxed);
  out->failed_count = c.failed.load(std::memory_order_relaxed);
  if (this != &g_paths[kHostPath]) policy::add_stack_stats(static_cast<int>(this - g_paths), out);
}

void log_summary() {
  if (!log_enabled(LogLevel::info)) return;
  for (int d = 0; d < trace::kMaxDevices; ++d) {
    gpumem_stats st{};
    path_for(d).stats(&st);
    if (st.alloc_count == 0 && st.failed_count == 0 && !policy::has_stack(d)) continue;
    char a[32], pa[32], r[32], pr[32], lf[32], lim[32];
    log_message(LogLevel::info,
                "device %d: allocated %s (peak %s), reserved %s (peak %s), %llu allocs, "
                "%llu frees, %llu failed, largest free block %s, limit %s, pool %s",
                d, format_bytes(st.allocated_bytes, a, sizeof a),
                format_bytes(st.peak_allocated_bytes, pa, sizeof pa),
                format_bytes(st.reserved_bytes, r, sizeof r),
                format_bytes(st.peak_reserved_bytes, pr, sizeof pr),
                static_cast<unsigned long long>(st.alloc_count),
                static_cast<unsigned long long>(st.free_count),
                static_cast<unsigned long long>(st.failed_count),
                format_bytes(st.largest_free_block_bytes, lf, sizeof lf),
                st.limit_bytes != 0 ? format_bytes(st.limit_bytes, lim, sizeof lim) : "none",
                policy::served_pool_name());  // what served, as the trace's header says
  }
}

}  // namespace gpumem
