#include "gpumem/resources/fixed_pool.h"

namespace gpumem::resources {

Result FixedPool::grow(uint64_t rounded, uint8_t kind, const Request& req) {
  if (reserved_once_ || rounded > size_)
    return Result{nullptr, Status::out_of_memory, 0, allocated_bytes()};
  Result r = reserve_segment(size_, kind, req.family);
  if (r.ok()) reserved_once_ = true;
  return r;
}

// The reservation is the point of a fixed pool: nothing is given back before it is destroyed.
uint64_t FixedPool::do_empty_cache(Family /*family*/) {
  return 0;
}

}  // namespace gpumem::resources
