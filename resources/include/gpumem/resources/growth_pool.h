// Grows on demand from segments taken from its upstream and caches freed blocks (PyTorch's
// CUDACachingAllocator rule for segment sizes; docs/policies.md "Growth pool"):
//   request (rounded to 512 B) <= 1 MiB  -> served from 2 MiB "small" segments
//   request < 10 MiB                      -> served from 20 MiB "large" segments
//   request >= 10 MiB                     -> a segment of its own, rounded up to 2 MiB
// Small and large requests never share a segment, so small long-lived blocks do not pin big
// segments. When the upstream refuses a new segment, every empty cached segment is released and
// the segment is asked for once more.
#pragma once

#include "gpumem/resources/pool_resource.h"

namespace gpumem::resources {

class GrowthPool final : public PoolResource {
 public:
  static constexpr uint64_t kMiB = uint64_t{1} << 20;
  static constexpr uint64_t kSmallRequest = 1 * kMiB;
  static constexpr uint64_t kSmallSegment = 2 * kMiB;
  static constexpr uint64_t kLargeSegment = 20 * kMiB;
  static constexpr uint64_t kOwnSegmentFrom = 10 * kMiB;
  static constexpr uint64_t kGranularity = 2 * kMiB;
  static constexpr uint8_t kSmall = 0;
  static constexpr uint8_t kLarge = 1;

  GrowthPool(MemoryResource& upstream, int device, PoolObserver* observer = nullptr)
      : PoolResource(upstream, device, observer) {}

  // The segment a request of `rounded` bytes (a multiple of 512) makes the pool reserve.
  static uint64_t segment_size(uint64_t rounded);

 private:
  Result grow(uint64_t rounded, uint8_t kind, const Request& req) override;
  uint8_t kind_for(uint64_t rounded) const override {
    return rounded <= kSmallRequest ? kSmall : kLarge;
  }
};

}  // namespace gpumem::resources
