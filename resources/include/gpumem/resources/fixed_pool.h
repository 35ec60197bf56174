// TensorFlow's default behaviour, for comparison with growth: reserves its whole size with ONE
// upstream allocation at the first allocation on its device, and serves everything from it with
// the same best-fit/split/coalesce bookkeeping as the growth pool. Never grows, never gives the
// reservation back while alive (empty_cache returns 0).
#pragma once

#include "gpumem/resources/pool_resource.h"

namespace gpumem::resources {

class FixedPool final : public PoolResource {
 public:
  // `size` is the limit or GPUMEM_POOL_SIZE, rounded down to 512 B.
  FixedPool(MemoryResource& upstream, int device, uint64_t size, PoolObserver* observer = nullptr)
      : PoolResource(upstream, device, observer), size_(size / kBlockAlign * kBlockAlign) {}

  uint64_t size() const { return size_; }

 private:
  // First use: reserve the whole pool. Afterwards (or for a request larger than the pool):
  // out_of_memory with in_use = the bytes the program holds from the pool.
  Result grow(uint64_t rounded, uint8_t kind, const Request& req) override;
  uint64_t do_empty_cache(Family family) override;

  const uint64_t size_;
  bool reserved_once_ = false;  // guarded by mutex_
};

}  // namespace gpumem::resources
