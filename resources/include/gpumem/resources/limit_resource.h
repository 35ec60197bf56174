// A hard cap on the bytes that pass through it, like RMM's limiting_resource_adaptor: reserve the
// bytes on one atomic counter, forward, roll back if the upstream fails. Lock-free. A refused
// request's bytes sit on the counter between its add and its roll-back, so the counter may pass
// the limit for that moment (a concurrent request may then be refused although it would fit);
// nothing is forwarded unless the sum fits, so the upstream never holds more than the limit.
//
// Counts requested bytes exactly (no rounding). Placed above a pool it caps what the program
// holds; placed below a pool it caps what the pool reserves from the device (segments). See
// docs/policies.md for which the preload library uses. Its statistics count what passed it
// (successes only): under a limit they are the stack's reserved bytes.
#pragma once

#include <atomic>

#include "gpumem/resources/memory_resource.h"
#include "gpumem/resources/statistics.h"

namespace gpumem::resources {

class LimitResource final : public MemoryResource, public AllocationCounters {
 public:
  LimitResource(MemoryResource& upstream, uint64_t limit) : upstream_(upstream), limit_(limit) {}

  uint64_t limit_bytes() const { return limit_; }
  // Bytes counted against the limit now (includes allocations being forwarded).
  uint64_t used_bytes() const { return used_.load(std::memory_order_relaxed); }

 private:
  // out_of_memory with in_use = bytes counted before this request when it would pass the limit.
  Result do_allocate(const Request& req) override;
  FreeResult do_deallocate(void* p, const Request& req) override;
  Status do_synchronize(int device, Family family) override {
    return upstream_.synchronize(device, family);
  }

  MemoryResource& upstream_;
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
};

}  // namespace gpumem::resources
