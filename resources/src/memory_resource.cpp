#include "gpumem/resources/memory_resource.h"

namespace gpumem::resources {

const char* status_name(Status s) {
  switch (s) {
    case Status::ok:
      return "ok";
    case Status::out_of_memory:
      return "out_of_memory";
    case Status::invalid_value:
      return "invalid_value";
    case Status::upstream_error:
      return "upstream_error";
  }
  return "unknown";
}

Result MemoryResource::allocate(const AllocRequest& req) {
  Result r;
  if (req.bytes == 0) {
    r.status = Status::invalid_value;
  } else if (req.bytes > kMaxRequestBytes) {
    r.status = Status::out_of_memory;
    r.in_use = allocated_bytes();
  } else {
    r = do_allocate(req);
  }
  if (!r.ok()) {
    failed_count_.fetch_add(1, std::memory_order_relaxed);
    return r;
  }
  if (counts_under_own_lock_) return r;
  alloc_count_.fetch_add(1, std::memory_order_relaxed);
  uint64_t now = allocated_.fetch_add(req.bytes, std::memory_order_relaxed) + req.bytes;
  raise_peak(peak_allocated_, now);
  return r;
}

Status MemoryResource::deallocate(void* p, const FreeRequest& req) {
  if (p == nullptr) return Status::invalid_value;
  Freed f = do_deallocate(p, req);
  if (f.status != Status::ok) return f.status;
  if (counts_under_own_lock_) return Status::ok;
  free_count_.fetch_add(1, std::memory_order_relaxed);
  allocated_.fetch_sub(f.bytes, std::memory_order_relaxed);
  return Status::ok;
}

uint64_t MemoryResource::reserved_bytes() const {
  return upstream_ ? upstream_->reserved_bytes() : allocated_bytes();
}
uint64_t MemoryResource::peak_reserved_bytes() const {
  return upstream_ ? upstream_->peak_reserved_bytes() : peak_allocated_bytes();
}
uint64_t MemoryResource::largest_free_block() const {
  return upstream_ ? upstream_->largest_free_block() : 0;
}
uint64_t MemoryResource::limit_bytes() const {
  return upstream_ ? upstream_->limit_bytes() : 0;
}
uint64_t MemoryResource::capacity(int device) const {
  return upstream_ ? upstream_->capacity(device) : 0;
}
Status MemoryResource::do_synchronize(int device) {
  return upstream_ ? upstream_->synchronize(device) : Status::ok;
}
uint64_t MemoryResource::do_empty_cache() {
  return upstream_ ? upstream_->empty_cache() : 0;
}
bool MemoryResource::do_lookup(const void* p, BlockInfo* out) const {
  return upstream_ ? upstream_->lookup(p, out) : false;
}

Stats MemoryResource::stats() const {
  Stats s{};
  s.allocated_bytes = allocated_bytes();
  s.reserved_bytes = reserved_bytes();
  s.peak_allocated_bytes = peak_allocated_bytes();
  s.peak_reserved_bytes = peak_reserved_bytes();
  s.alloc_count = alloc_count();
  s.free_count = free_count();
  s.failed_count = failed_count();
  s.largest_free_block_bytes = largest_free_block();
  s.limit_bytes = limit_bytes();
  return s;
}

}  // namespace gpumem::resources
