#include "gpumem/resources/limit_resource.h"

#include <algorithm>

namespace gpumem::resources {

uint64_t LimitResource::capacity(int device) const {
  uint64_t physical = upstream_resource()->capacity(device);
  return physical == 0 ? limit_ : std::min(limit_, physical);
}

Result LimitResource::do_allocate(const AllocRequest& req) {
  // Reserve first: a concurrent request sees our bytes, so the sum never passes the limit.
  uint64_t before = used_.fetch_add(req.bytes, std::memory_order_relaxed);
  if (before + req.bytes > limit_ || before + req.bytes < before) {
    used_.fetch_sub(req.bytes, std::memory_order_relaxed);
    Result r;
    r.status = Status::out_of_memory;
    r.in_use = before;
    return r;
  }
  Result r = upstream_resource()->allocate(req);
  if (!r.ok()) used_.fetch_sub(req.bytes, std::memory_order_relaxed);
  return r;
}

MemoryResource::Freed LimitResource::do_deallocate(void* p, const FreeRequest& req) {
  Status s = upstream_resource()->deallocate(p, req);
  if (s != Status::ok) return {s, 0};
  // Released only once the upstream has really freed it: the cap holds on the device.
  used_.fetch_sub(req.bytes, std::memory_order_relaxed);
  return {Status::ok, req.bytes};
}

}  // namespace gpumem::resources
