#include "gpumem/resources/expandable_pool.h"

#include <algorithm>

namespace gpumem::resources {

namespace {
// Physical memory of one granule, through the layers below the pool: its real call is the VMM
// create / release, so the device resource (and a limit above it) count it like any allocation.
Request chunk_request(int device, uint64_t bytes, Family family, trace::Api api) {
  Request r;
  r.device = device;
  r.bytes = bytes;
  r.api = api;
  r.family = family;
  return r;
}
}  // namespace

ExpandablePool::ExpandablePool(MemoryResource& upstream, VmmUpstream& vmm, int device,
                               PoolObserver* observer, uint64_t range_bytes)
    : PoolResource(upstream, device, observer),
      vmm_(vmm),
      range_bytes_(range_bytes != 0 ? range_bytes : kDefaultRangeBytes) {
  keep_segments_at_destruction();
}

ExpandablePool::~ExpandablePool() {
  // As the other pools: everything goes back, live blocks or not, without telling the observer.
  for (uint64_t handle : unreleased_) (void)release_handle(handle, Family::runtime);
  for (auto& [base, r] : ranges_) {
    for (size_t g = 0; g < r.handles.size(); ++g) {
      if (r.handles[g] == 0) continue;
      (void)vmm_.unmap(base + g * granularity_, granularity_);
      (void)release_handle(r.handles[g], Family::runtime);
    }
    (void)vmm_.free_range(base, r.bytes);
  }
}

uint64_t ExpandablePool::granularity() const {
  std::lock_guard lock(mutex_);
  return granularity_;
}

size_t ExpandablePool::mapped_granules() const {
  std::lock_guard lock(mutex_);
  return mapped_.size();
}

size_t ExpandablePool::range_count() const {
  std::lock_guard lock(mutex_);
  return ranges_.size();
}

uint64_t ExpandablePool::address_bytes() const {
  std::lock_guard lock(mutex_);
  uint64_t sum = 0;
  for (const auto& [base, r] : ranges_) sum += r.bytes;
  return sum;
}

int ExpandablePool::add_peer(int peer) {
  std::lock_guard lock(mutex_);
  if (peer == device() || std::find(peers_.begin(), peers_.end(), peer) != peers_.end()) return 0;
  for (auto it = mapped_.begin(); it != mapped_.end(); ++it) {
    const int code = vmm_.set_access(peer, *it, granularity_, true);
    if (code == 0) continue;
    for (auto undo = mapped_.begin(); undo != it; ++undo)
      (void)vmm_.set_access(peer, *undo, granularity_, false);
    return code;
  }
  peers_.push_back(peer);
  return 0;
}

int ExpandablePool::remove_peer(int peer) {
  std::lock_guard lock(mutex_);
  auto at = std::find(peers_.begin(), peers_.end(), peer);
  if (at == peers_.end()) return 0;
  peers_.erase(at);
  int first_error = 0;
  for (uintptr_t va : mapped_) {
    const int code = vmm_.set_access(peer, va, granularity_, false);
    if (first_error == 0) first_error = code;
  }
  return first_error;
}

std::vector<int> ExpandablePool::peers() const {
  std::lock_guard lock(mutex_);
  return peers_;
}

Result ExpandablePool::grow(uint64_t rounded, uint8_t kind, const Request& /*req*/) {
  if (granularity_ == 0) {
    uint64_t g = 0;
    const int code = vmm_.granularity(device(), &g);
    if (code != 0 || g == 0 || g % kBlockAlign != 0)
      return Result{nullptr, Status::upstream_error, code, 0};
    granularity_ = g;
  }
  if (rounded > kLargestRequest) return Result{nullptr, Status::out_of_memory, 0, allocated_bytes()};
  const uint64_t bytes = round_up(std::max(range_bytes_, rounded), granularity_);
  uintptr_t va = 0;
  const int code = vmm_.reserve(device(), bytes, granularity_, &va);
  if (code != 0 || va == 0)
    return Result{nullptr, vmm_.is_oom(code) ? Status::out_of_memory : Status::upstream_error, code,
                  allocated_bytes()};
  Range r;
  r.bytes = bytes;
  r.handles.assign(bytes / granularity_, 0);
  ranges_.emplace(va, std::move(r));
  blocks().add_segment(va, bytes, kind);
  return Result{reinterpret_cast<void*>(va), Status::ok, 0, 0};
}

ExpandablePool::Range* ExpandablePool::range_of(uintptr_t addr, uintptr_t* base) {
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return nullptr;
  --it;
  if (addr - it->first >= it->second.bytes) return nullptr;
  *base = it->first;
  return &it->second;
}

bool ExpandablePool::all_mapped(const Range& r, size_t g0, size_t g1) const {
  for (size_t g = g0; g < g1; ++g)
    if (r.handles[g] == 0) return false;
  return true;
}

Result ExpandablePool::prepare_fit(Block** b, uint64_t rounded, uint8_t kind, const Request& req) {
  uintptr_t base = 0;
  Range* r = range_of((*b)->addr, &base);
  if (r == nullptr) return Result{nullptr, Status::invalid_value, 0, 0};
  auto span = [&](const Block* blk, size_t* g0, size_t* g1) {
    *g0 = (blk->addr - base) / granularity_;
    *g1 = (blk->addr + rounded - base + granularity_ - 1) / granularity_;
  };
  size_t g0 = 0, g1 = 0;
  span(*b, &g0, &g1);
  if (all_mapped(*r, g0, g1)) return {};  // the common case: no page changes
  // New memory is needed: first make pending frees reusable (the growth pool's rule, applied
  // before mapping rather than before growing), which may give a block that is mapped already.
  if (blocks().has_unsafe() && synchronize_locked(req.family) == Status::ok) {
    Block* again = blocks().find_fit(rounded, kind, req.stream);
    if (again == nullptr || (r = range_of(again->addr, &base)) == nullptr)
      return Result{nullptr, Status::out_of_memory, 0, allocated_bytes()};
    *b = again;
    span(again, &g0, &g1);
    if (all_mapped(*r, g0, g1)) return {};
  }
  // Give back what no block uses before taking more, so the peak holds no idle pages.
  (void)unmap_free_granules(req.family, base + g0 * granularity_, base + g1 * granularity_);
  return map_granules(base, *r, g0, g1, req);
}

Result ExpandablePool::map_granules(uintptr_t base, Range& r, size_t g0, size_t g1,
                                    const Request& req) {
  std::vector<size_t> fresh;
  Result failure;
  for (size_t g = g0; g < g1 && failure.ok(); ++g) {
    if (r.handles[g] != 0) continue;
    auto create = [&](void** out) {
      uint64_t handle = 0;
      const int code = vmm_.create(device(), granularity_, &handle);
      *out = reinterpret_cast<void*>(handle);
      return code;
    };
    Request chunk = chunk_request(device(), granularity_, req.family, trace::Api::cuMemCreate);
    chunk.real_alloc = create;
    Result c = upstream().allocate(chunk);
    if (!c.ok()) {
      failure = c;
      break;
    }
    const uint64_t handle = reinterpret_cast<uint64_t>(c.ptr);
    const uintptr_t va = base + g * granularity_;
    int code = vmm_.map(va, granularity_, handle);
    if (code == 0) {
      code = vmm_.set_access(device(), va, granularity_, true);
      for (size_t i = 0; i < peers_.size() && code == 0; ++i)
        code = vmm_.set_access(peers_[i], va, granularity_, true);
      if (code != 0) (void)vmm_.unmap(va, granularity_);
    }
    if (code != 0) {
      (void)release_handle(handle, req.family);
      failure = Result{nullptr, vmm_.is_oom(code) ? Status::out_of_memory : Status::upstream_error,
                       code, 0};
      break;
    }
    r.handles[g] = handle;
    mapped_.insert(va);
    add_reserved(granularity_);
    if (observer()) observer()->on_segment_reserve(device(), reinterpret_cast<void*>(va),
                                                   granularity_);
    fresh.push_back(g);
  }
  if (failure.ok()) return failure;
  // All or none: what this request mapped goes back, and the refusing layer's count of bytes in
  // use is told without it (as it was before the request).
  const uint64_t undone = fresh.size() * granularity_;
  for (size_t g : fresh) (void)unmap_granule(base, r, g, req.family);
  failure.ptr = nullptr;
  if (failure.status == Status::out_of_memory)
    failure.in_use = failure.in_use >= undone ? failure.in_use - undone : 0;
  return failure;
}

FreeResult ExpandablePool::release_handle(uint64_t handle, Family family) {
  auto release = [&] { return vmm_.release(handle); };
  Request chunk = chunk_request(device(), granularity_, family, trace::Api::cuMemRelease);
  chunk.real_free = release;
  return upstream().deallocate(reinterpret_cast<void*>(handle), chunk);
}

bool ExpandablePool::unmap_granule(uintptr_t base, Range& r, size_t g, Family family) {
  const uintptr_t va = base + g * granularity_;
  void* p = reinterpret_cast<void*>(va);
  // Told before the pages go, as segment releases are (pool_observer.h).
  if (observer()) observer()->on_segment_release(device(), p, granularity_);
  if (vmm_.unmap(va, granularity_) != 0) {
    if (observer()) observer()->on_segment_reserve(device(), p, granularity_);
    return false;
  }
  const uint64_t handle = r.handles[g];
  r.handles[g] = 0;
  mapped_.erase(va);
  return give_back(handle, family);
}

bool ExpandablePool::give_back(uint64_t handle, Family family) {
  // Unmapped, the handle's memory is ours only to release; should the release fail, the layer
  // below still counts it, so reserved does too, and the next pass tries again.
  if (!release_handle(handle, family).ok()) {
    unreleased_.push_back(handle);
    return false;
  }
  sub_reserved(granularity_);
  return true;
}

uint64_t ExpandablePool::unmap_free_granules(Family family, uintptr_t keep_from,
                                             uintptr_t keep_to) {
  uint64_t released = 0;
  std::vector<uint64_t> refused;
  refused.swap(unreleased_);
  for (uint64_t handle : refused)
    if (give_back(handle, family)) released += granularity_;
  if (mapped_.empty()) return released;
  // Only free blocks of a granule or more can hold a whole one: walking every block here, at
  // each mapping, made a pool of many live blocks quadratic (50000 blocks: minutes in replay).
  std::vector<uintptr_t> idle;
  blocks().for_each_free_at_least(granularity_, [&](const Block& b) {
    const uintptr_t end = b.addr + b.size;
    for (auto it = mapped_.lower_bound(b.addr); it != mapped_.end() && *it + granularity_ <= end;
         ++it)
      if (*it >= keep_to || *it + granularity_ <= keep_from) idle.push_back(*it);
  });
  std::sort(idle.begin(), idle.end());  // in address order, as the segments are released
  for (uintptr_t va : idle) {
    uintptr_t base = 0;
    Range* r = range_of(va, &base);
    if (r != nullptr && unmap_granule(base, *r, (va - base) / granularity_, family))
      released += granularity_;
  }
  return released;
}

uint64_t ExpandablePool::largest_free_locked() const {
  if (mapped_.empty()) return 0;
  uint64_t largest = 0;
  // Largest first: a block no larger than the best so far cannot beat it, nor can the rest of its
  // list. (Walking every block, at each step of a replay that measures fragmentation, made
  // `gpumem replay --pool expandable` quadratic: 80 s for a 2M-event trace.)
  blocks().for_each_unheld_largest_first([&](const Block& b) {
    if (b.size <= largest) return false;
    const uintptr_t end = b.addr + b.size;
    uintptr_t from = 0, to = 0;  // the run of adjacent mapped granules being walked
    auto close_run = [&] {
      if (to > from)
        largest = std::max<uint64_t>(largest, std::min(to, end) - std::max(from, b.addr));
    };
    // Ranges are aligned to the granularity, so the granule holding addr starts at its floor.
    for (auto it = mapped_.lower_bound(b.addr / granularity_ * granularity_);
         it != mapped_.end() && *it < end; ++it) {
      if (*it != to) {
        close_run();
        from = *it;
      }
      to = *it + granularity_;
    }
    close_run();
    return true;
  });
  return largest;
}

uint64_t ExpandablePool::do_empty_cache(Family family) {
  std::lock_guard lock(mutex_);
  if (blocks().has_unsafe()) (void)synchronize_locked(family);
  return unmap_free_granules(family, 0, 0);
}

}  // namespace gpumem::resources
