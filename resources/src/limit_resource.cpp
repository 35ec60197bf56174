#include "gpumem/resources/limit_resource.h"

namespace gpumem::resources {

// Reserve first: a concurrent request sees our bytes, so the sum never passes the limit.
bool LimitResource::reserve(uint64_t bytes, uint64_t* before) {
  if (shared_) {
    if (ledger_ == nullptr) {
      *before = limit_;
      return false;
    }
    return ledger_->charge(bytes, before);
  }
  *before = used_.fetch_add(bytes, std::memory_order_relaxed);
  if (*before + bytes > limit_ || *before + bytes < *before) {
    used_.fetch_sub(bytes, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void LimitResource::unreserve(uint64_t bytes) {
  if (shared_) {
    if (ledger_ != nullptr) ledger_->uncharge(bytes);
    return;
  }
  used_.fetch_sub(bytes, std::memory_order_relaxed);
}

Result LimitResource::do_allocate(const Request& req) {
  Result r;
  if (refused_size(req, &r)) return r;
  uint64_t before = 0;
  if (!reserve(req.bytes, &before)) {
    r.status = Status::out_of_memory;
    r.in_use = before;
    count_failed();
    return r;
  }
  r = upstream_.allocate(req);
  if (!r.ok()) {
    unreserve(req.bytes);
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
  unreserve(req.bytes);
  count_free(req.bytes);
  return f;
}

}  // namespace gpumem::resources
