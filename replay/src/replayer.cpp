// One device's program through the preload's own stack: resources::DeviceStack, built from the
// same StackConfig as libgpumem.so builds it (policy.cpp; docs/policies.md "The stack per
// device"), over a simulated device that charges as simcuda does (simcuda_upstream.h).
// What the preload's pool serves (resources/pool_serves.h) goes to the top of the stack; the rest
// (stream-ordered, pitched, managed, VMM physical allocations) goes to what sits below the pool,
// so it counts against the cap but is never pooled. Without a limit the limit is the device's
// capacity.
#include <algorithm>
#include <memory>

#include "gpumem/replay/replay.h"
#include "gpumem/resources/block.h"
#include "gpumem/resources/growth_pool.h"
#include "gpumem/resources/simulated_vmm.h"
#include "gpumem/resources/stack.h"
#include "gpumem/resources/statistics.h"
#include "gpumem/trace/format.h"
#include "simcuda_upstream.h"

namespace gpumem::replay {
namespace {

using resources::MemoryResource;
using resources::Request;
using resources::Result;
using resources::Status;

// A trace without a capacity: as large as a request may be.
constexpr uint64_t kUnbounded = resources::kMaxRequestBytes;

struct Held {
  void* ptr = nullptr;
  uint64_t bytes = 0;
  bool pooled = false;
};

// The simulated device and the stack over it; the upstream (and the expandable pool's VMM calls)
// are declared first so they outlive the stack, whose pool gives its segments back when destroyed.
class Stack {
 public:
  Stack(Policy policy, int device, uint64_t capacity, uint64_t limit, uint64_t pool_size,
        resources::PoolObserver* observer)
      : upstream_(capacity),
        vmm_(vmm_options(device)),
        stack_(upstream_, device, config(policy, limit, pool_size), observer) {}

  MemoryResource& top(bool pooled_kind) {
    return pooled_kind && stack_.pool() ? *stack_.top() : *stack_.below_pool();
  }
  resources::PoolResource* pool() { return stack_.pool(); }
  // Replay always runs with a limit (the capacity when none is given), so limit() is never null.
  const resources::LimitResource& limit() const { return *stack_.limit(); }
  const resources::DeviceResource& device() const { return *stack_.device(); }
  const SimcudaUpstream& upstream() const { return upstream_; }

 private:
  resources::StackConfig config(Policy policy, uint64_t limit, uint64_t pool_size) {
    resources::StackConfig c{policy, limit, pool_size};
    // The VMM calls count nothing themselves (the physical memory is charged by upstream_, as
    // simcuda charges cuMemCreate).
    if (policy == Policy::expandable) c.vmm = &vmm_;
    return c;
  }
  // The pool names its own device in every VMM call: the simulated VMM must have that ordinal.
  static resources::SimulatedVmm::Options vmm_options(int device) {
    resources::SimulatedVmm::Options o;
    o.devices = device + 1;
    return o;
  }

  SimcudaUpstream upstream_;
  resources::SimulatedVmm vmm_;
  resources::DeviceStack stack_;
};

Request request_for(const DeviceProgram& dp, const Step& s, uint64_t bytes) {
  return Request{dp.device, bytes, s.stream, static_cast<trace::Api>(s.api), s.flags};
}

class Replayer {
 public:
  Replayer(const Program& program, const DeviceProgram& dp, const ReplayOptions& options,
           DeviceRun& run)
      : program_(program),
        dp_(dp),
        options_(options),
        run_(run),
        stack_(options.policy, dp.device, run.capacity_bytes, run.limit_bytes, options.pool_size,
               options.observer),
        held_(dp.slots) {}

  void run() {
    for (const Step& s : dp_.steps) {
      ++run_.steps_replayed;
      if (options_.observer) options_.observer->on_step(s);
      bool ok = true;
      switch (s.kind) {
        case Step::alloc:
          ok = alloc(s);
          break;
        case Step::free:
          free(s);
          break;
        case Step::empty_cache:
          if (stack_.pool()) stack_.pool()->empty_cache();
          break;
      }
      if (!ok) break;
      if (options_.metrics) measure();
    }
    run_.peak_allocated_bytes = peak_allocated_;
    run_.peak_reserved_bytes = stack_.limit().peak_allocated_bytes();
    run_.device_peak_bytes = stack_.upstream().peak();
    if (run_.peak_reserved_bytes > 0)
      run_.utilization =
          static_cast<double>(peak_allocated_) / static_cast<double>(run_.peak_reserved_bytes);
  }

 private:
  bool alloc(const Step& s) {
    MemoryResource& r = stack_.top(s.pooled_kind);
    const uint64_t limit_failed = stack_.limit().failed_count();
    const uint64_t device_failed = stack_.device().failed_count();
    const Result res = r.allocate(request_for(dp_, s, s.bytes));
    if (!res.ok()) {
      fail(s, res, device_failed, limit_failed);
      return false;
    }
    held_[s.slot] = Held{res.ptr, s.bytes, s.pooled_kind};
    allocated_ += s.bytes;
    if (allocated_ > peak_allocated_) {
      peak_allocated_ = allocated_;
      new_peak_ = true;
    }
    if (s.pooled_kind && stack_.pool())
      pooled_blocks_ += resources::round_up(s.bytes, resources::kBlockAlign);
    if (s.recorded_failed) {
      // The program wanted it but never held it: it counts at this instant, then goes back.
      if (options_.metrics) measure();
      free(s);
    }
    return true;
  }

  void free(const Step& s) {
    Held& h = held_[s.slot];
    if (h.ptr == nullptr) return;  // its allocation failed in the replay: nothing to give back
    Request req = request_for(dp_, s, h.bytes);
    (void)stack_.top(h.pooled).deallocate(h.ptr, req);
    allocated_ -= h.bytes;
    if (h.pooled && stack_.pool())
      pooled_blocks_ -= resources::round_up(h.bytes, resources::kBlockAlign);
    h = Held{};
  }

  void fail(const Step& s, const Result& res, uint64_t device_failed, uint64_t limit_failed) {
    run_.fits = false;
    Failure f;
    f.record = s.record;
    f.t_ns = s.t_ns;
    f.phase = s.phase < program_.phases.size() ? program_.phases[s.phase] : "";
    f.api = trace::api_name(static_cast<trace::Api>(s.api));
    f.bytes = s.bytes;
    f.in_use_bytes = res.in_use;
    f.allocated_bytes = allocated_;
    f.reserved_bytes = stack_.limit().allocated_bytes();
    f.recorded_failed = s.recorded_failed;
    if (stack_.device().failed_count() > device_failed)
      f.refused_by = "device";
    else if (stack_.limit().failed_count() > limit_failed)
      f.refused_by = "limit";
    else
      f.refused_by = "pool";
    run_.failure = std::move(f);
  }

  void measure() {
    const uint64_t reserved = stack_.limit().allocated_bytes();
    double frag = 0;
    if (resources::PoolResource* pool = stack_.pool()) {
      const uint64_t in_segments = pool->reserved_bytes();
      const uint64_t free_bytes = in_segments > pooled_blocks_ ? in_segments - pooled_blocks_ : 0;
      // The pool's largest free block counts mapped memory only (the expandable pool's too), so
      // it is within its free bytes; clamped to 0 all the same.
      if (free_bytes > 0)
        frag = std::max(0.0, 1.0 - static_cast<double>(pool->largest_free_block()) /
                                       static_cast<double>(free_bytes));
    }
    run_.fragmentation_max = std::max(run_.fragmentation_max, frag);
    if (new_peak_) {
      new_peak_ = false;
      run_.fragmentation_at_peak = frag;
      run_.reserved_unallocated_at_peak_bytes = reserved - allocated_;
    }
  }

  const Program& program_;
  const DeviceProgram& dp_;
  const ReplayOptions& options_;
  DeviceRun& run_;
  Stack stack_;
  std::vector<Held> held_;
  uint64_t allocated_ = 0;
  uint64_t peak_allocated_ = 0;
  bool new_peak_ = false;       // measure() takes the at-peak values
  uint64_t pooled_blocks_ = 0;  // bytes of live blocks inside pool segments
};

}  // namespace

uint64_t limit_granularity(Policy p) {
  switch (p) {
    case Policy::none:
      return 1;
    case Policy::fixed:
      return resources::kBlockAlign;
    case Policy::growth:
      return resources::GrowthPool::kGranularity;
    case Policy::expandable:
      return resources::SimulatedVmm::Options{}.granularity;  // one mapped granule, 2 MiB
  }
  return 1;
}

uint64_t effective_capacity(const DeviceProgram& dp, uint64_t override_capacity) {
  if (override_capacity != 0) return override_capacity;
  return dp.capacity_bytes != 0 ? dp.capacity_bytes : kUnbounded;
}

DeviceRun replay_device(const Program& program, const DeviceProgram& device,
                        const ReplayOptions& options) {
  DeviceRun run;
  run.device = device.device;
  run.policy = options.policy;
  run.capacity_bytes = effective_capacity(device, options.capacity);
  run.limit_bytes = options.limit != 0 ? options.limit : run.capacity_bytes;
  Replayer(program, device, options, run).run();
  return run;
}

}  // namespace gpumem::replay
