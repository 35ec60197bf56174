#include "gpumem/resources/stack.h"

#include "gpumem/resources/expandable_pool.h"
#include "gpumem/resources/fixed_pool.h"
#include "gpumem/resources/growth_pool.h"

namespace gpumem::resources {

DeviceStack::DeviceStack(Upstream& upstream, int device, const StackConfig& config,
                         PoolObserver* observer)
    : device_(std::make_unique<DeviceResource>(upstream)) {
  MemoryResource* below = device_.get();
  if (config.limit > 0) {
    limit_ = config.shared_limit
                 ? std::make_unique<LimitResource>(*below, config.limit, config.ledger)
                 : std::make_unique<LimitResource>(*below, config.limit);
    below = limit_.get();
  }
  switch (config.pool) {
    case PoolKind::none:
      top_ = below;
      top_counters_ = &reserved_counters();
      break;
    case PoolKind::growth:
      pool_ = std::make_unique<GrowthPool>(*below, device, observer);
      top_ = pool_.get();
      top_counters_ = pool_.get();
      break;
    case PoolKind::fixed: {
      uint64_t size = config.pool_size > 0 ? config.pool_size : config.limit;
      if (size == 0) break;
      pool_ = std::make_unique<FixedPool>(*below, device, size, observer);
      top_ = pool_.get();
      top_counters_ = pool_.get();
      break;
    }
    case PoolKind::expandable:
      if (config.vmm == nullptr) break;
      pool_ = std::make_unique<ExpandablePool>(*below, *config.vmm, device, observer,
                                               config.vmm_range);
      top_ = pool_.get();
      top_counters_ = pool_.get();
      break;
  }
}

Stats DeviceStack::stats() const {
  Stats s;
  const AllocationCounters& top = *top_counters_;
  s.allocated_bytes = top.allocated_bytes();
  s.peak_allocated_bytes = top.peak_allocated_bytes();
  s.alloc_count = top.alloc_count();
  s.free_count = top.free_count();
  s.failed_count = top.failed_count();
  s.reserved_bytes = reserved_counters().allocated_bytes();
  s.peak_reserved_bytes = reserved_counters().peak_allocated_bytes();
  s.largest_free_block_bytes = pool_ ? pool_->largest_free_block() : 0;
  s.limit_bytes = limit_ ? limit_->limit_bytes() : 0;
  return s;
}

}  // namespace gpumem::resources
