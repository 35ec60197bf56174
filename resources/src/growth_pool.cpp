#include "gpumem/resources/growth_pool.h"

namespace gpumem::resources {

uint64_t GrowthPool::segment_size(uint64_t rounded) {
  if (rounded <= kSmallRequest) return kSmallSegment;
  if (rounded < kOwnSegmentFrom) return kLargeSegment;
  return round_up(rounded, kGranularity);
}

Result GrowthPool::grow(uint64_t rounded, uint8_t kind, const Request& req) {
  const uint64_t bytes = segment_size(rounded);
  Result r = reserve_segment(bytes, kind, req.family);
  // The retry rule: the device (or a limit below us) said no; give back what we cache, ask again.
  if (r.status == Status::out_of_memory && release_empty_segments(req.family) > 0)
    r = reserve_segment(bytes, kind, req.family);
  return r;
}

}  // namespace gpumem::resources
