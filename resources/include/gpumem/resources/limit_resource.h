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
//
// Shared (GPUMEM_LIMIT_SCOPE=shared): the bytes are charged to a SharedLedger that every process
// of the budget uses, under the ledger's lock, so the sum of all processes never passes the
// limit; used_bytes() is then the budget's total. A shared limit whose ledger could not be opened
// (null) refuses every request: never a private budget in its place.
#pragma once

#include <atomic>

#include "gpumem/resources/memory_resource.h"
#include "gpumem/resources/shared_ledger.h"
#include "gpumem/resources/statistics.h"

namespace gpumem::resources {

class LimitResource final : public MemoryResource, public AllocationCounters {
 public:
  LimitResource(MemoryResource& upstream, uint64_t limit) : upstream_(upstream), limit_(limit) {}
  // A shared limit: `ledger` (owned by the caller, may be null: see above).
  LimitResource(MemoryResource& upstream, uint64_t limit, SharedLedger* ledger)
      : upstream_(upstream), limit_(limit), shared_(true), ledger_(ledger) {}

  uint64_t limit_bytes() const { return limit_; }
  // Bytes counted against the limit now (includes allocations being forwarded); shared: by every
  // process of the budget.
  uint64_t used_bytes() const {
    if (shared_) return ledger_ != nullptr ? ledger_->total() : limit_;
    return used_.load(std::memory_order_relaxed);
  }
  bool shared() const { return shared_; }
  SharedLedger* ledger() const { return ledger_; }

 private:
  // out_of_memory with in_use = bytes counted before this request when it would pass the limit.
  Result do_allocate(const Request& req) override;
  FreeResult do_deallocate(void* p, const Request& req) override;
  Status do_synchronize(int device, Family family) override {
    return upstream_.synchronize(device, family);
  }

  bool reserve(uint64_t bytes, uint64_t* before);
  void unreserve(uint64_t bytes);

  MemoryResource& upstream_;
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
  const bool shared_ = false;
  SharedLedger* const ledger_ = nullptr;
};

}  // namespace gpumem::resources
