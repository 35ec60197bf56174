#include "gpumem/resources/stack.h"

#include "gpumem/resources/fixed_pool.h"
#include "gpumem/resources/growth_pool.h"

namespace gpumem::resources {

DeviceStack::DeviceStack(Upstream& upstream, int device, const StackConfig& config,
                         PoolObserver* observer)
    : device_(std::make_unique<DeviceResource>(upstream)) {
  MemoryResource* below = device_.get();
  if (config.limit > 0) {
    limit_ = std::make_unique<LimitResource>(*below, config.limit);
    below = limit_.get();
  }
  switch (config.pool) {
    case PoolKind::none:
      top_ = below;
      break;
    case PoolKind::growth:
      pool_ = std::make_unique<GrowthPool>(*below, device, observer);
      top_ = pool_.get();
      break;
    case PoolKind::fixed: {
      uint64_t size = config.pool_size > 0 ? config.pool_size : config.limit;
      if (size == 0) break;
      pool_ = std::make_unique<FixedPool>(*below, device, size, observer);
      top_ = pool_.get();
      break;
    }
  }
}

}  // namespace gpumem::resources
