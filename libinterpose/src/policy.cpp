// See policy.h.
#include "policy.h"

#include <cuda.h>
#include <cuda_runtime_api.h>
// cuda.h renames cuMemAlloc to cuMemAlloc_v2; here the name is trace::Api's (after policy.h).
#undef cuMemAlloc

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>

#include "config.h"
#include "gpumem/resources/expandable_pool.h"
#include "gpumem/resources/pool_serves.h"
#include "gpumem/resources/stack.h"
#include "gpumem/trace/writer.h"
#include "gpumem/units.h"
#include "hooks/api_codes.h"
#include "log.h"
#include "real.h"
#include "real_vmm.h"
#include "reentry.h"
#include "session.h"

namespace gpumem::policy {
namespace {

using resources::DeviceStack;
using resources::MemoryResource;

// Physical capacity of a device through the real driver (cuInit is idempotent and harmless: the
// program is about to use CUDA anyway). 0 when it cannot be read.
uint64_t physical_capacity(int device) {
  HookScope scope;
  auto init = GPUMEM_REAL_DRIVER(cuInit);
  auto get = GPUMEM_REAL_DRIVER(cuDeviceGet);
  auto total = GPUMEM_REAL_DRIVER(cuDeviceTotalMem_v2);
  if (init == nullptr || get == nullptr || total == nullptr || init(0) != CUDA_SUCCESS) return 0;
  CUdevice dev = 0;
  size_t bytes = 0;
  if (get(&dev, device) != CUDA_SUCCESS || total(&bytes, dev) != CUDA_SUCCESS) return 0;
  return bytes;
}

// Whether CUDA has device ordinal `device`. A request may name one it does not: a cuMemCreate
// location or a gpumem_torch_malloc device the caller got wrong, an NVML index past the devices
// CUDA_VISIBLE_DEVICES leaves. Such a device gets no stack (no limit to resolve against a
// capacity that cannot be read, no pool): its real call answers, as without gpumem. The count is
// read once it can be; true while it cannot (no driver yet): the request then goes on as before.
bool cuda_has_device(int device) {
  static std::atomic<int> known{-1};
  int count = known.load(std::memory_order_acquire);
  if (count < 0) {
    HookScope scope;
    auto init = GPUMEM_REAL_DRIVER(cuInit);
    auto get_count = GPUMEM_REAL_DRIVER(cuDeviceGetCount);
    if (init == nullptr || get_count == nullptr || init(0) != CUDA_SUCCESS ||
        get_count(&count) != CUDA_SUCCESS || count < 0)
      return true;
    known.store(count, std::memory_order_release);
  }
  return device < count;
}

// Whether CUDA is initialised in this process, asked without initialising it: before cuInit the
// driver answers cuDeviceGetCount with CUDA_ERROR_NOT_INITIALIZED. No driver: it cannot be.
bool cuda_initialised() {
  HookScope scope;
  auto get_count = GPUMEM_REAL_DRIVER(cuDeviceGetCount);
  int count = 0;
  return get_count != nullptr && get_count(&count) != CUDA_ERROR_NOT_INITIALIZED;
}

// The device, as the resources see it: the request's own real call for the program's requests,
// its family's plain calls for pool segments and synchronization (a driver-only program may have
// no runtime; a runtime request falls back to the driver when the runtime is missing).
class RealUpstream final : public resources::Upstream {
 public:
  int alloc(void** p, const Request& req) override {
    if (req.api == trace::Api::pool) return alloc_segment(p, req.bytes, req.family);
    if (!req.real_alloc) return hooks::api_code(req.family, Status::invalid_value);
    return req.real_alloc(p);
  }
  int free(void* p, const Request& req) override {
    if (req.api == trace::Api::pool) return free_segment(p, req.family);
    if (!req.real_free) return hooks::api_code(req.family, Status::invalid_value);
    return req.real_free();
  }
  bool is_oom(int code) const override { return hooks::is_out_of_memory(code); }
  int synchronize(int /*device*/, Family family) override {
    if (family == Family::runtime)
      if (auto f = GPUMEM_REAL_RUNTIME(cudaDeviceSynchronize)) return f();
    auto f = GPUMEM_REAL_DRIVER(cuCtxSynchronize);
    return f != nullptr ? f() : CUDA_ERROR_NOT_INITIALIZED;
  }

 private:
  static int alloc_segment(void** p, uint64_t bytes, Family family) {
    if (family == Family::runtime)
      if (auto f = GPUMEM_REAL_RUNTIME(cudaMalloc)) return f(p, bytes);
    auto f = GPUMEM_REAL_DRIVER(cuMemAlloc_v2);
    if (f == nullptr) return CUDA_ERROR_NOT_INITIALIZED;
    CUdeviceptr d = 0;
    const int e = f(&d, bytes);
    *p = reinterpret_cast<void*>(d);
    return e;
  }
  static int free_segment(void* p, Family family) {
    if (family == Family::runtime)
      if (auto f = GPUMEM_REAL_RUNTIME(cudaFree)) return f(p);
    auto f = GPUMEM_REAL_DRIVER(cuMemFree_v2);
    return f != nullptr ? f(reinterpret_cast<CUdeviceptr>(p)) : CUDA_ERROR_NOT_INITIALIZED;
  }
};

// The tracking side of the pools: segment events go to the trace (aux = pool id = device). The
// expandable pool's segments are the physical granules it maps into its range (MemKind::physical):
// the analyzer joins adjacent ones into one segment (analyzer/src/segment_space.h).
class TraceObserver final : public resources::PoolObserver {
 public:
  explicit TraceObserver(trace::MemKind kind) : kind_(kind) {}
  void on_segment_reserve(int device, void* base, uint64_t bytes) override {
    write(trace::Op::segment_reserve, device, base, bytes);
  }
  void on_segment_release(int device, void* base, uint64_t bytes) override {
    write(trace::Op::segment_release, device, base, bytes);
  }

 private:
  void write(trace::Op op, int device, void* base, uint64_t bytes) const {
    Request req;
    req.device = device;
    req.bytes = bytes;
    req.api = trace::Api::pool;
    req.flags = make_flags(kind_, trace::Lookup::direct) | trace::kFlagPooled;
    record_event(op, req, reinterpret_cast<uint64_t>(base), static_cast<uint64_t>(device), 0);
  }
  trace::MemKind kind_;
};

// Built once, never destroyed: hooks may run during static destruction, and CUDA may be gone.
RealUpstream& upstream() {
  static RealUpstream* u = new RealUpstream();
  return *u;
}
TraceObserver& observer(PoolKind pool) {
  static TraceObserver* segments = new TraceObserver(trace::MemKind::device);
  static TraceObserver* granules = new TraceObserver(trace::MemKind::physical);
  return pool == PoolKind::expandable ? *granules : *segments;
}

std::atomic<DeviceStack*> g_stacks[trace::kMaxDevices];
std::atomic<bool> g_fell_back{false};  // a device's expandable pool fell back to growth
constinit std::mutex g_build_mutex;
// Peer access the program enabled (peer_access_changed): bit a of g_peers[owner] set = device a
// may access device owner's memory. Kept for stacks built later. Written under g_build_mutex.
std::atomic<uint64_t> g_peers[trace::kMaxDevices];

resources::ExpandablePool* expandable_of(DeviceStack* s) {
  return s != nullptr ? dynamic_cast<resources::ExpandablePool*>(s->pool()) : nullptr;
}

// Gives (or takes back from) `peer` access to the owner's expandable pool memory. A refusal is
// said: the program's kernels on the peer would fault on pooled blocks.
void update_peer(resources::ExpandablePool& pool, int owner, int peer, bool enabled) {
  HookScope scope;  // the pool's cuMemSetAccess calls are ours
  const int code = enabled ? pool.add_peer(peer) : pool.remove_peer(peer);
  if (code == 0) return;
  if (enabled)
    log_message(LogLevel::warn,
                "device %d: peer access to device %d's memory is enabled, but the expandable pool "
                "could not give device %d access to its blocks (cuMemSetAccess answered %d); "
                "kernels on device %d that touch them will fault. Use GPUMEM_POOL=growth for "
                "this program.",
                peer, owner, peer, code, peer);
  else
    log_message(LogLevel::warn,
                "device %d: peer access to device %d's memory is disabled, but the expandable pool "
                "could not take back device %d's access to all of its blocks (cuMemSetAccess "
                "answered %d); they stay reachable from device %d.",
                peer, owner, peer, code, peer);
}

const LimitSpec& limit_spec(int device) {
  const Config& c = config();
  return c.device_limit[device].set ? c.device_limit[device] : c.limit;
}

bool has_policy(int device) {
  return config().pool != PoolKind::none || limit_spec(device).set;
}

[[noreturn]] void bad_size(const char* var, uint64_t value, const char* what, uint64_t bound,
                           const char* fix) {
  char v[32], b[32];
  log_message(LogLevel::error,
              "%s=%s is above %s (%s); accepted: a size up to it, or a percentage such as 60%%. "
              "%s",
              var, format_bytes(value, v, sizeof v), what, format_bytes(bound, b, sizeof b), fix);
  std::_Exit(2);
}

// The shared budget's ledger for `device` (GPUMEM_LIMIT_SCOPE=shared), kept for the process's
// life; 0600, or 0660 for GPUMEM_LIMIT_GROUP's group. Null when it cannot be opened: said once
// here, and the limit then refuses every request
// (a private cap in its place would let the processes pass the budget together).
resources::SharedLedger* open_budget(int device, uint64_t limit) {
  char shm[128];
  std::snprintf(shm, sizeof shm, "/gpumem-budget-%s-dev%d", config().limit_name, device);
  char err[512] = {};
  const long group = config().limit_group;
  resources::SharedLedger* l =
      resources::SharedLedger::open(shm, limit, group >= 0 ? 0660 : 0600, err, sizeof err, group);
  if (l == nullptr)
    log_message(LogLevel::error,
                "GPUMEM_LIMIT_NAME=%s: %s. Every allocation on device %d is refused until then.",
                config().limit_name, err, device);
  return l;
}

// Budgets opened by a capacity query before CUDA (clamp_before_cuda), kept so that the device's
// stack takes the same ledger: one process opens a budget once.
std::atomic<resources::SharedLedger*> g_budgets[trace::kMaxDevices];

resources::SharedLedger* budget(int device, uint64_t limit) {
  resources::SharedLedger* kept = g_budgets[device].load(std::memory_order_acquire);
  if (kept == nullptr) {
    resources::SharedLedger* opened = open_budget(device, limit);
    if (opened == nullptr) return nullptr;
    if (g_budgets[device].compare_exchange_strong(kept, opened, std::memory_order_acq_rel))
      return opened;
    delete opened;  // another thread kept one first: `kept` is it
  }
  // A percentage resolved against NVML's total before CUDA and against CUDA's capacity now may
  // differ: opened again with this limit, refused as another process giving it would be.
  return kept->limit() == limit ? kept : open_budget(device, limit);
}

// The variable that sets the device's limit, for messages.
const char* limit_variable(int device, char (&var)[32]) {
  std::snprintf(var, sizeof var,
                config().device_limit[device].set ? "GPUMEM_LIMIT_%d" : "GPUMEM_LIMIT", device);
  return var;
}

// A percentage limit in bytes of a device of `capacity` bytes; stops the process when that is too
// few bytes (check_resolved_limit). The stack and the capacity queries before CUDA both use it.
uint64_t percent_limit(const LimitSpec& spec, int device, uint64_t capacity) {
  const uint64_t bytes =
      static_cast<uint64_t>(static_cast<double>(capacity) * spec.percent / 100.0);
  char var[32];
  check_resolved_limit(limit_variable(device, var), spec, device, capacity, bytes);
  return bytes;
}

// Resolves the limit (percentages need the device's capacity) and checks it against the device.
// The capacity is known only once CUDA runs, so these checks happen at the first request for the
// device; they stop the process as configuration errors do (status 2).
DeviceStack* build_stack(int device) {
  const Config& c = config();
  const LimitSpec& spec = limit_spec(device);
  char var[32];
  limit_variable(device, var);
  const uint64_t physical = physical_capacity(device);
  char what[64];
  std::snprintf(what, sizeof what, "the capacity of device %d", device);
  resources::StackConfig sc;
  if (spec.set) {
    if (spec.percent > 0) {
      if (physical == 0) {
        log_message(LogLevel::error,
                    "%s is a percentage but the capacity of device %d cannot be read; accepted "
                    "then: a size such as 8GiB. Give the limit in bytes.",
                    var, device);
        std::_Exit(2);
      }
      sc.limit = percent_limit(spec, device, physical);
    } else {
      sc.limit = spec.bytes;
      if (physical != 0 && sc.limit > physical)
        bad_size(var, sc.limit, what, physical, "Lower the limit or unset it.");
    }
  }
  if (c.limit_shared && spec.set) {
    sc.shared_limit = true;
    sc.ledger = budget(device, sc.limit);
  }
  sc.pool = c.pool;
  sc.pool_size = c.pool == PoolKind::fixed ? c.pool_size : 0;
  if (sc.pool == PoolKind::expandable) {
    // Needs the driver's virtual memory API: without it (an old driver, a device without VMM),
    // the growth pool serves instead, as said once here.
    uint64_t granularity = 0;
    const int code = real_vmm().granularity(device, &granularity);
    if (code == 0 && granularity != 0) {
      sc.vmm = &real_vmm();
    } else {
      log_message(LogLevel::warn,
                  "GPUMEM_POOL=expandable: device %d has no virtual memory management (the "
                  "driver's granularity query answered %d); using the growth pool instead.",
                  device, code);
      sc.pool = PoolKind::growth;
      // The trace says what serves: its header's pool, now and in a forked child's trace.
      g_fell_back.store(true, std::memory_order_release);
      if (TraceWriter* w = session::writer()) w->set_pool(served_pool_name());
    }
  }
  if (sc.pool_size != 0 && physical != 0 && sc.pool_size > physical)
    bad_size("GPUMEM_POOL_SIZE", sc.pool_size, what, physical, "Lower GPUMEM_POOL_SIZE.");
  if (sc.pool_size != 0 && sc.limit != 0 && sc.pool_size > sc.limit)
    bad_size("GPUMEM_POOL_SIZE", sc.pool_size, var, sc.limit,
             "Lower GPUMEM_POOL_SIZE or raise the limit.");
  auto* stack = new DeviceStack(upstream(), device, sc, &observer(sc.pool));
  if (!stack->valid()) {
    log_message(LogLevel::error,
                "GPUMEM_POOL=fixed needs a size for device %d; accepted: GPUMEM_POOL_SIZE or "
                "GPUMEM_LIMIT set to a size such as 8GiB. Set one of them.",
                device);
    std::_Exit(2);
  }
  // Peer access enabled before this device's first request reaches its pool now.
  if (resources::ExpandablePool* pool = expandable_of(stack)) {
    const uint64_t peers = g_peers[device].load(std::memory_order_relaxed);
    for (int p = 0; p < trace::kMaxDevices; ++p)
      if ((peers >> p & 1) != 0) update_peer(*pool, device, p, true);
  }
  GPUMEM_INFO("device %d: pool %s, limit %llu bytes", device, pool_kind_name(sc.pool),
              static_cast<unsigned long long>(sc.limit));
  return stack;
}

// fork() while other threads are inside the policy step: the forking thread takes every lock
// they may hold (the build mutex, then each pool's lock, device order) in its prepare handler and
// releases them in the parent and in the child, so the child's pools are whole and unlocked.
// Prepare handlers run in reverse order of registration: these are registered after simcuda's
// and the session's (see register_fork_handlers), so they run first, while a thread that holds a
// pool lock can still take what it needs to finish (the trace, the driver's lock).
void before_fork() {
  g_build_mutex.lock();
  for (auto& slot : g_stacks)
    if (DeviceStack* s = slot.load(std::memory_order_acquire); s != nullptr && s->pool())
      s->pool()->lock_for_fork();
}
void after_fork() {
  for (int d = trace::kMaxDevices - 1; d >= 0; --d)
    if (DeviceStack* s = g_stacks[d].load(std::memory_order_acquire); s != nullptr && s->pool())
      s->pool()->unlock_after_fork();
  g_build_mutex.unlock();
}

// Once, before the first stack exists, and never under g_build_mutex (pthread_atfork waits for a
// fork in progress, whose prepare handler may wait for that mutex). The session registered its
// handlers in the library constructor; cuInit first: a driver that registers its own fork
// handlers at cuInit has then done so, and ours run before both.
void register_fork_handlers() {
  static std::atomic<int> state{0};  // 0 not yet, 1 being registered, 2 registered
  int expected = 0;
  if (state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
    {
      HookScope scope;
      if (auto init = GPUMEM_REAL_DRIVER(cuInit)) (void)init(0);
    }
    pthread_atfork(before_fork, after_fork, after_fork);
    state.store(2, std::memory_order_release);
    return;
  }
  while (state.load(std::memory_order_acquire) != 2) sched_yield();
}

DeviceStack* stack_for(int device) {
  DeviceStack* s = g_stacks[device].load(std::memory_order_acquire);
  if (s != nullptr) [[likely]]
    return s;
  register_fork_handlers();
  std::lock_guard lock(g_build_mutex);
  s = g_stacks[device].load(std::memory_order_acquire);
  if (s == nullptr) {
    s = build_stack(device);
    g_stacks[device].store(s, std::memory_order_release);
  }
  return s;
}

DeviceStack* built_stack(int device) {
  if (device < 0 || device >= trace::kMaxDevices) return nullptr;
  return g_stacks[device].load(std::memory_order_acquire);
}

}  // namespace

Route route_for(const Request& req) {
  if (req.device < 0 || req.device >= trace::kMaxDevices || req.bytes == 0) return kNone;
  // A size that overflowed (saturated by the hook) fits no device: the real call gives the
  // program its own answer, as without gpumem.
  if (req.bytes == UINT64_MAX) return kNone;
  const auto kind = static_cast<trace::MemKind>(req.flags & trace::kFlagKindMask);
  // Imported memory (IPC) is another process's, charged there: never to this process's cap.
  if (kind == trace::MemKind::pinned_host || kind == trace::MemKind::imported ||
      !has_policy(req.device))
    return kNone;
  // Once the device's stack exists the device does; before, one check (the count is cached).
  if (built_stack(req.device) == nullptr && !cuda_has_device(req.device)) return kNone;
  if (config().pool != PoolKind::none && resources::pool_serves(req.api, req.flags)) return kPooled;
  return kDirect;
}

// A fixed pool under a cap holds the whole cap (unless GPUMEM_POOL_SIZE is smaller), so the cap
// refuses every kind the pool does not serve. Said once per device: the program only sees the
// out-of-memory code (docs/policies.md, "Pools do not change what CUDA answers").
[[gnu::cold, gnu::noinline]] void explain_unpooled_refusal(const DeviceStack& s,
                                                           const Request& req) {
  static std::atomic<bool> said[trace::kMaxDevices];
  if (said[req.device].exchange(true, std::memory_order_relaxed)) return;
  char asked[32], cap[32], held[32];
  log_message(LogLevel::warn,
              "device %d: %s of %s refused with out-of-memory: GPUMEM_POOL=fixed holds %s of the "
              "%s GPUMEM_LIMIT and serves only cudaMalloc/cuMemAlloc; managed, pitched, "
              "stream-ordered, VMM memory and arrays must fit beside it. Set GPUMEM_POOL_SIZE "
              "below GPUMEM_LIMIT to leave room for them, or use GPUMEM_POOL=growth.",
              req.device, trace::api_name(req.api), format_bytes(req.bytes, asked, sizeof asked),
              format_bytes(s.pool()->reserved_bytes(), held, sizeof held),
              format_bytes(s.limit()->limit_bytes(), cap, sizeof cap));
}

Result allocate(const Request& req, Route route) {
  DeviceStack* s = stack_for(req.device);
  MemoryResource* mr = route == kPooled ? s->top() : s->below_pool();
  Result r = mr->allocate(req);
  if (route == kDirect && r.status == Status::out_of_memory && r.upstream_code == 0 &&
      config().pool == PoolKind::fixed && s->pool() != nullptr && s->limit() != nullptr)
    [[unlikely]] explain_unpooled_refusal(*s, req);
  return r;
}

FreeResult deallocate(const Request& req, const LiveInfo& info, uint64_t address) {
  DeviceStack* s = built_stack(info.device);
  if (s == nullptr) {  // cannot happen: the allocation built it
    const int code = req.real_free();
    return code == 0 ? FreeResult{} : FreeResult{Status::upstream_error, code};
  }
  // A host free (cudaFreeHost, cuMemFreeHost) of a pooled block: CUDA refuses to free device
  // memory that way and the program keeps it, so the pool must not release the block either.
  if (info.route == kPooled &&
      static_cast<trace::MemKind>(req.flags & trace::kFlagKindMask) == trace::MemKind::pinned_host)
    return {Status::invalid_value, 0};
  MemoryResource* mr = info.route == kPooled ? s->top() : s->below_pool();
  Request freed = req;  // the allocation's device and size: the limit counts with them
  freed.device = info.device;
  freed.bytes = info.bytes;
  return mr->deallocate(reinterpret_cast<void*>(address), freed);
}

void peer_access_changed(int accessor, int owner, bool enabled) {
  if (accessor < 0 || owner < 0 || accessor >= trace::kMaxDevices || owner >= trace::kMaxDevices ||
      accessor == owner)
    return;
  std::lock_guard lock(g_build_mutex);
  const uint64_t bit = uint64_t{1} << accessor;
  const uint64_t peers = g_peers[owner].load(std::memory_order_relaxed);
  g_peers[owner].store(enabled ? peers | bit : peers & ~bit, std::memory_order_relaxed);
  if (resources::ExpandablePool* pool = expandable_of(built_stack(owner)))
    update_peer(*pool, owner, accessor, enabled);
}

bool has_stack(int device) {
  return built_stack(device) != nullptr;
}

bool pool_owns(uint64_t address) {
  for (int d = 0; d < trace::kMaxDevices; ++d) {
    DeviceStack* s = g_stacks[d].load(std::memory_order_acquire);
    if (s != nullptr && s->pool() != nullptr && s->pool()->owns(reinterpret_cast<void*>(address)))
      return true;
  }
  return false;
}

const char* served_pool_name() {
  return g_fell_back.load(std::memory_order_acquire) ? pool_kind_name(PoolKind::growth)
                                                     : pool_kind_name(config().pool);
}

uint64_t resolved_limit(int device) {
  if (device < 0 || device >= trace::kMaxDevices || !limit_spec(device).set) return 0;
  // Before CUDA (no driver, say) the stack is not built for it: building calls cuInit. A
  // percentage needs the capacity, which only CUDA gives here.
  if (built_stack(device) == nullptr && !cuda_initialised())
    return limit_spec(device).percent > 0 ? 0 : limit_spec(device).bytes;
  if (!cuda_has_device(device)) return 0;
  const DeviceStack* s = stack_for(device);
  return s->limit() != nullptr ? s->limit()->limit_bytes() : 0;
}

namespace {

// A capacity query before CUDA is initialised (NVML's, in a process that has not used CUDA yet):
// answered from the setting alone, without the stack, whose building calls cuInit. A process
// must be able to ask NVML, then fork() children that use CUDA (PyTorch's
// PYTORCH_NVML_BASED_CUDA_CHECK exists for that), and CUDA fails in a child whose parent
// initialised it. Nothing is allocated through CUDA yet, so only a shared budget has bytes in use.
bool clamp_before_cuda(int device, uint64_t* total, uint64_t* free_bytes) {
  const LimitSpec& spec = limit_spec(device);
  if (spec.percent > 0 && *total == 0) return false;  // no capacity to take a share of
  const uint64_t limit = spec.percent > 0 ? percent_limit(spec, device, *total) : spec.bytes;
  const uint64_t cap = *total == 0 ? limit : std::min(limit, *total);
  uint64_t used = 0;
  if (config().limit_shared) {
    // The budget's total, as the stack's limit would read it; a ledger that cannot be opened
    // refuses everything, so nothing is free.
    resources::SharedLedger* l = budget(device, limit);
    if (l != nullptr) l->reclaim_dead();
    used = l != nullptr ? l->total() : limit;
  }
  *total = cap;
  *free_bytes = std::min(*free_bytes, cap > used ? cap - used : 0);
  return true;
}

}  // namespace

bool clamp_capacity(int device, uint64_t* total, uint64_t* free_bytes) {
  if (device < 0 || device >= trace::kMaxDevices || !limit_spec(device).set) return false;
  if (built_stack(device) == nullptr && !cuda_initialised())
    return clamp_before_cuda(device, total, free_bytes);
  if (!cuda_has_device(device)) return false;
  DeviceStack* s = stack_for(device);
  if (s->limit() == nullptr) return false;
  const uint64_t cap =
      *total == 0 ? s->limit()->limit_bytes() : std::min(s->limit()->limit_bytes(), *total);
  // Shared: what every process of the budget holds, after returning the dead ones' charges.
  if (resources::SharedLedger* l = s->limit()->ledger()) l->reclaim_dead();
  const uint64_t used = s->limit()->used_bytes();
  *total = cap;
  *free_bytes = std::min(*free_bytes, cap > used ? cap - used : 0);
  return true;
}

bool lookup(const void* p, resources::BlockInfo* out) {
  for (int d = 0; d < trace::kMaxDevices; ++d) {
    DeviceStack* s = g_stacks[d].load(std::memory_order_acquire);
    if (s != nullptr && s->pool() != nullptr && s->pool()->lookup(p, out)) return true;
  }
  return false;
}

void add_stack_stats(int device, gpumem_stats* out) {
  DeviceStack* s = built_stack(device);
  if (s == nullptr) return;
  // Below the pool every byte taken from the device passes: segments and direct allocations.
  out->reserved_bytes = s->reserved_counters().allocated_bytes();
  out->peak_reserved_bytes = s->reserved_counters().peak_allocated_bytes();
  out->largest_free_block_bytes = s->pool() != nullptr ? s->pool()->largest_free_block() : 0;
  out->limit_bytes = s->limit() != nullptr ? s->limit()->limit_bytes() : 0;
}

uint64_t empty_cache(int device) {
  HookScope hook;  // the real frees below are ours, not the program's
  const Family family = GPUMEM_REAL_RUNTIME(cudaFree) == nullptr ? Family::driver : Family::runtime;
  uint64_t total = 0;
  for (int d = 0; d < trace::kMaxDevices; ++d) {
    if (device >= 0 && d != device) continue;
    DeviceStack* s = built_stack(d);
    if (s == nullptr || s->pool() == nullptr) continue;
    const uint64_t released = s->pool()->empty_cache(family);
    Request req;
    req.device = d;
    req.bytes = released;
    req.api = trace::Api::gpumem;
    req.flags = make_flags(trace::MemKind::device, trace::Lookup::direct) | trace::kFlagPooled;
    record_event(trace::Op::trim, req, 0, 0, 0);
    total += released;
  }
  return total;
}

}  // namespace gpumem::policy
