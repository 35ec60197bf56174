#include "gpumem/resources/pool_resource.h"

namespace gpumem::resources {

namespace {
Request segment_request(int device, uint64_t bytes) {
  return Request{device, bytes, 0, static_cast<uint16_t>(trace::Api::pool), 0};
}
}  // namespace

PoolResource::~PoolResource() {
  blocks_.for_each_segment([&](uintptr_t addr, uint64_t size) {
    (void)upstream_resource()->deallocate(reinterpret_cast<void*>(addr),
                                          segment_request(device_, size));
  });
}

Result PoolResource::do_allocate(const AllocRequest& req) {
  if (req.device != device_) return Result{nullptr, Status::invalid_value, 0, 0};
  const uint64_t rounded = round_up(req.bytes, kBlockAlign);
  const uint8_t kind = kind_for(rounded);
  std::lock_guard lock(mutex_);
  Block* b = blocks_.find_fit(rounded, kind, req.stream);
  // The reuse rule: blocks freed synchronously (or on other streams) become reusable only after a
  // device synchronization. Synchronize rather than grow when that may give a fit.
  if (b == nullptr && blocks_.has_unsafe() && synchronize_locked() == Status::ok)
    b = blocks_.find_fit(rounded, kind, req.stream);
  if (b == nullptr) {
    Result grown = grow(rounded, kind, req);
    if (!grown.ok()) return grown;
    b = blocks_.find_fit(rounded, kind, req.stream);
    if (b == nullptr) return Result{nullptr, Status::out_of_memory, 0, allocated_bytes()};
  }
  count_alloc_locked(req.bytes);
  return Result{reinterpret_cast<void*>(blocks_.take(b, rounded, req.bytes)), Status::ok, 0, 0};
}

MemoryResource::Freed PoolResource::do_deallocate(void* p, const FreeRequest& req) {
  std::lock_guard lock(mutex_);
  Block* b = blocks_.find_live(reinterpret_cast<uintptr_t>(p));
  if (b == nullptr) return {Status::invalid_value, 0};
  uint64_t bytes = b->requested;
  blocks_.release(b, is_stream_ordered(req), req.stream);
  count_free_locked(bytes);
  return {Status::ok, bytes};
}

Status PoolResource::synchronize_locked() {
  Status s = upstream_resource()->synchronize(device_);
  if (s == Status::ok) blocks_.make_all_safe();
  return s;
}

Status PoolResource::do_synchronize(int /*device*/) {
  std::lock_guard lock(mutex_);
  return synchronize_locked();
}

Result PoolResource::reserve_segment(uint64_t bytes, uint8_t kind) {
  Result r = upstream_resource()->allocate(segment_request(device_, bytes));
  if (!r.ok()) return r;
  blocks_.add_segment(reinterpret_cast<uintptr_t>(r.ptr), bytes, kind);
  raise_peak(peak_reserved_, reserved_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
  if (observer_) observer_->on_segment_reserve(device_, r.ptr, bytes);
  return r;
}

uint64_t PoolResource::release_empty_segments() {
  return blocks_.remove_empty_segments([&](uintptr_t addr, uint64_t size) {
    void* p = reinterpret_cast<void*>(addr);
    // Told before the device has the address back, as frees are: once it is freed, another thread
    // may be handed the same address, and its record must not fall inside a segment still shown
    // reserved.
    if (observer_) observer_->on_segment_release(device_, p, size);
    if (upstream_resource()->deallocate(p, segment_request(device_, size)) != Status::ok) {
      // The device still holds it: it stays a cached segment, and is told reserved again.
      if (observer_) observer_->on_segment_reserve(device_, p, size);
      return false;
    }
    reserved_.fetch_sub(size, std::memory_order_relaxed);
    return true;
  });
}

uint64_t PoolResource::do_empty_cache() {
  std::lock_guard lock(mutex_);
  if (blocks_.has_unsafe()) (void)synchronize_locked();
  return release_empty_segments();
}

bool PoolResource::do_lookup(const void* p, BlockInfo* out) const {
  std::lock_guard lock(mutex_);
  if (!blocks_.lookup(reinterpret_cast<uintptr_t>(p), out)) return false;
  if (out) out->device = device_;
  return true;
}

uint64_t PoolResource::largest_free_block() const {
  std::lock_guard lock(mutex_);
  return blocks_.largest_free();
}

std::vector<SegmentView> PoolResource::snapshot() const {
  std::lock_guard lock(mutex_);
  return blocks_.snapshot();
}

bool PoolResource::owns(const void* p) const {
  std::lock_guard lock(mutex_);
  return blocks_.contains(reinterpret_cast<uintptr_t>(p));
}

size_t PoolResource::segment_count() const {
  std::lock_guard lock(mutex_);
  return blocks_.segment_count();
}

size_t PoolResource::pending_count() const {
  std::lock_guard lock(mutex_);
  return blocks_.pending_count();
}

}  // namespace gpumem::resources
