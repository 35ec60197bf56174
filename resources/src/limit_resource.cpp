#include "gpumem/resources/limit_resource.h"

namespace gpumem::resources {

Result LimitResource::do_allocate(const Request& req) {
  Result r;
  if (refused_size(req, &r)) return r;
  // Reserve first: a concurrent request sees our bytes, so the sum never passes the limit.
  uint64_t before = used_.fetch_add(req.bytes, std::memory_order_relaxed);
  if (before + req.bytes > limit_ || before + req.bytes < before) {
    used_.fetch_sub(req.bytes, std::memory_order_relaxed);
    r.status = Status::out_of_memory;
    r.in_use = before;
    count_failed();
    return r;
  }
  r = upstream_.allocate(req);
  if (!r.ok()) {
    used_.fetch_sub(req.bytes, std::memory_order_relaxed);
    count_failed();
    return r;
  }
  count_alloc(req.bytes);
  return r;
}

FreeResult LimitResource::do_deallocate(void* p, const Request& req) {
  const FreeResult f = upstream_.deallocate(p, req);
  if (!f.ok()) return f;
  // Released only once the upstream has really freed it: the cap holds on the device.
  used_.fetch_sub(req.bytes, std::memory_order_relaxed);
  count_free(req.bytes);
  return f;
}

}  // namespace gpumem::resources
