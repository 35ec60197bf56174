#include "gpumem/resources/pool_resource.h"

namespace gpumem::resources {

namespace {
// A segment: no real call, so the device takes the plain allocation of `family`.
Request segment_request(int device, uint64_t bytes, Family family) {
  Request r;
  r.device = device;
  r.bytes = bytes;
  r.api = trace::Api::pool;
  r.family = family;
  return r;
}
}  // namespace

PoolResource::~PoolResource() {
  if (!give_back_segments_) return;
  blocks_.for_each_segment([&](uintptr_t addr, uint64_t size) {
    (void)upstream_.deallocate(reinterpret_cast<void*>(addr),
                               segment_request(device_, size, Family::runtime));
  });
}

Result PoolResource::do_allocate(const Request& req) {
  Result r;
  if (refused_size(req, &r)) return r;
  r = allocate_locked(req);
  if (!r.ok()) count_failed();
  return r;
}

Result PoolResource::allocate_locked(const Request& req) {
  if (req.device != device_) return Result{nullptr, Status::invalid_value, 0, 0};
  const uint64_t rounded = round_up(req.bytes, kBlockAlign);
  const uint8_t kind = kind_for(rounded);
  std::lock_guard lock(mutex_);
  Block* b = blocks_.find_fit(rounded, kind, req.stream);
  // The reuse rule: blocks freed synchronously (or on other streams) become reusable only after a
  // device synchronization. Synchronize rather than grow when that may give a fit.
  if (b == nullptr && blocks_.has_unsafe() && synchronize_locked(req.family) == Status::ok)
    b = blocks_.find_fit(rounded, kind, req.stream);
  if (b == nullptr) {
    Result grown = grow(rounded, kind, req);
    if (!grown.ok()) return grown;
    b = blocks_.find_fit(rounded, kind, req.stream);
    if (b == nullptr) return Result{nullptr, Status::out_of_memory, 0, allocated_bytes()};
  }
  if (Result ready = prepare_fit(&b, rounded, kind, req); !ready.ok()) return ready;
  count_alloc_locked(req.bytes);
  return Result{reinterpret_cast<void*>(blocks_.take(b, rounded, req.bytes)), Status::ok, 0, 0};
}

FreeResult PoolResource::do_deallocate(void* p, const Request& req) {
  std::lock_guard lock(mutex_);
  Block* b = blocks_.find_live(reinterpret_cast<uintptr_t>(p));
  if (b == nullptr) return {Status::invalid_value, 0};
  uint64_t bytes = b->requested;
  blocks_.release(b, is_stream_ordered(req), req.stream);
  count_free_locked(bytes);
  return {};
}

Status PoolResource::synchronize_locked(Family family) {
  Status s = upstream_.synchronize(device_, family);
  if (s == Status::ok) blocks_.make_all_safe();
  return s;
}

Status PoolResource::do_synchronize(int /*device*/, Family family) {
  std::lock_guard lock(mutex_);
  return synchronize_locked(family);
}

Result PoolResource::reserve_segment(uint64_t bytes, uint8_t kind, Family family) {
  Result r = upstream_.allocate(segment_request(device_, bytes, family));
  if (!r.ok()) return r;
  blocks_.add_segment(reinterpret_cast<uintptr_t>(r.ptr), bytes, kind);
  raise_peak(peak_reserved_, reserved_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
  if (observer_) observer_->on_segment_reserve(device_, r.ptr, bytes);
  return r;
}

uint64_t PoolResource::release_empty_segments(Family family) {
  return blocks_.remove_empty_segments([&](uintptr_t addr, uint64_t size) {
    void* p = reinterpret_cast<void*>(addr);
    // Told before the device has the address back, as frees are: once it is freed, another thread
    // may be handed the same address, and its record must not fall inside a segment still shown
    // reserved.
    if (observer_) observer_->on_segment_release(device_, p, size);
    if (!upstream_.deallocate(p, segment_request(device_, size, family)).ok()) {
      // The device still holds it: it stays a cached segment, and is told reserved again.
      if (observer_) observer_->on_segment_reserve(device_, p, size);
      return false;
    }
    reserved_.fetch_sub(size, std::memory_order_relaxed);
    return true;
  });
}

uint64_t PoolResource::do_empty_cache(Family family) {
  std::lock_guard lock(mutex_);
  if (blocks_.has_unsafe()) (void)synchronize_locked(family);
  return release_empty_segments(family);
}

bool PoolResource::lookup(const void* p, BlockInfo* out) const {
  std::lock_guard lock(mutex_);
  if (!blocks_.lookup(reinterpret_cast<uintptr_t>(p), out)) return false;
  if (out) out->device = device_;
  return true;
}

uint64_t PoolResource::largest_free_block() const {
  std::lock_guard lock(mutex_);
  return largest_free_locked();
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
