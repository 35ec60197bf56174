// One device's resource stack, built from the configuration in the recommended order
// (docs/policies.md "The stack per device"):
//   none:   [limit →] device
//   growth: growth pool → [limit →] device
//   fixed:  fixed pool (pool_size, or the limit when 0) → [limit →] device
//   expandable: expandable pool (over config.vmm) → [limit →] device
// The tracking layer (which writes the trace) goes on top of `top()`. The preload library
// (policy.cpp), `gpumem replay` (replayer.cpp) and the benchmarks all build their stacks with this,
// from the same StackConfig, so what replay predicts is what the preload does.
#pragma once

#include <memory>

#include "gpumem/resources/device_resource.h"
#include "gpumem/resources/limit_resource.h"
#include "gpumem/resources/pool_kind.h"
#include "gpumem/resources/pool_observer.h"
#include "gpumem/resources/pool_resource.h"
#include "gpumem/resources/statistics.h"
#include "gpumem/resources/vmm_upstream.h"

namespace gpumem::resources {

struct StackConfig {
  PoolKind pool = PoolKind::none;
  uint64_t limit = 0;      // bytes, 0 = no limit (percentages are resolved by the caller)
  uint64_t pool_size = 0;  // fixed pool size (GPUMEM_POOL_SIZE), 0 = the limit
  // The expandable pool's virtual memory calls (owned by the caller; without them the stack is
  // not valid) and the size of each address range it reserves (0 = its default).
  VmmUpstream* vmm = nullptr;
  uint64_t vmm_range = 0;
  // A limit shared with other processes (GPUMEM_LIMIT_SCOPE=shared): charged to `ledger`, owned
  // by the caller; a null ledger (it could not be opened) refuses every request.
  bool shared_limit = false;
  SharedLedger* ledger = nullptr;
};

class DeviceStack {
 public:
  // A fixed pool needs pool_size or limit, an expandable pool config.vmm; without, valid() is
  // false and top() is null.
  DeviceStack(Upstream& upstream, int device, const StackConfig& config,
              PoolObserver* observer = nullptr);

  bool valid() const { return top_ != nullptr; }
  MemoryResource* top() const { return top_; }
  PoolResource* pool() const { return pool_.get(); }     // null for PoolKind::none
  LimitResource* limit() const { return limit_.get(); }  // null without a limit
  DeviceResource* device() const { return device_.get(); }
  // What sits below the pool (the limit, else the device): requests that a pool must not serve
  // (managed, pitched, stream-ordered, VMM) go here, so they still count against the cap.
  MemoryResource* below_pool() const {
    return limit_ ? static_cast<MemoryResource*>(limit_.get()) : device_.get();
  }
  // The counters of the layer below the pool: every byte taken from the device passes there
  // (segments and direct allocations), so its allocated bytes are the stack's reserved bytes.
  const AllocationCounters& reserved_counters() const {
    return limit_ ? static_cast<const AllocationCounters&>(*limit_) : *device_;
  }
  // The counters of the top layer: what the program holds through top(). Null when !valid().
  const AllocationCounters* top_counters() const { return top_counters_; }
  // The stack's numbers in one read, each from the layer that owns it. Needs valid().
  Stats stats() const;

 private:
  // Declared bottom-up: destroyed top-down, so the pool gives its segments back through the limit.
  std::unique_ptr<DeviceResource> device_;
  std::unique_ptr<LimitResource> limit_;
  std::unique_ptr<PoolResource> pool_;
  MemoryResource* top_ = nullptr;
  const AllocationCounters* top_counters_ = nullptr;
};

}  // namespace gpumem::resources
