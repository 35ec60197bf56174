// The trace's address -> allocation map: what is live now, across all devices and pinned host
// memory, and the addresses freed recently (kept to tell a double free from a free of an
// address never allocated). Memory stays proportional to what is live: see kMaxRememberedFrees.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>

#include "address_map.h"
#include "gpumem/trace/format.h"
#include "metrics.h"

namespace gpumem::analyzer {

// LiveAlloc::segment_id of an allocation whose memory an NVTX heap turned into a segment (this
// bit | the segment's SegmentSpace id; nvtx_heaps.h): no longer allocated, but reserved, its
// regions the pooled allocations inside. Never a pool segment's id, so the fast path steps aside.
inline constexpr uint64_t kNvtxHeapSegment = uint64_t{1} << 63;

// One allocation, live or recently freed.
struct LiveAlloc {
  uint64_t bytes = 0;
  int64_t t_ns = 0;
  uint64_t segment_id = 0;  // SegmentSpace id when it lives inside a pool segment, else 0
  uint32_t site = 0;
  int16_t device = -1;
  uint8_t kind = 0;    // trace::MemKind
  bool freed = false;  // the map keeps freed addresses a while, to tell a double free
};

class LiveAllocations {
 public:
  // Past this many freed entries they are all forgotten, and a double free of an address freed
  // that long ago is reported as free_unknown. Allocators reuse addresses, so a real trace rarely
  // gets near it: every reuse turns a freed entry back into a live one.
  static constexpr size_t kMaxRememberedFrees = size_t{1} << 18;

  // The entry of an allocation at `address`, to be overwritten by the caller. *was_live: the
  // address still held a live allocation (its free was lost: the caller closes it first).
  LiveAlloc& claim(uint64_t address, bool* was_live) {
    bool inserted = false;
    LiveAlloc& a = map_.find_or_insert(address, &inserted);
    *was_live = !inserted && !a.freed;
    if (!inserted && a.freed) --freed_entries_;
    return a;
  }
  // Live or freed; nullptr when the address is unknown (or forgotten).
  LiveAlloc* find(uint64_t address) { return map_.find(address); }
  // The live allocation whose bytes hold `address`, and its start in *start, for NVTX heaps (rare
  // records): the one starting there; else the one found last, if it still holds it (an
  // allocator that carves one allocation into many heaps); else one starting at `address`
  // rounded down to a power of two from 512 B to 1 TiB (device allocations are aligned, and a
  // heap lies near its allocation's start); else the first a walk of the whole map finds. With
  // the walk alone, 20000 heaps each 4 KiB inside its own allocation took 0.29 s, quadratic.
  LiveAlloc* holding(uint64_t address, uint64_t* start) {
    LiveAlloc* a = map_.find(address);
    if (a != nullptr && !a->freed) return *start = address, a;
    auto holds = [&](uint64_t at) {
      LiveAlloc* b = map_.find(at);
      return b != nullptr && !b->freed && address > at && address - at < b->bytes ? b : nullptr;
    };
    if (LiveAlloc* last = holds(last_holder_)) return *start = last_holder_, last;
    uint64_t tried = address;
    for (int k = 9; k <= 40; ++k) {
      const uint64_t at = address & ~((uint64_t{1} << k) - 1);
      if (at == tried) continue;
      tried = at;
      if (LiveAlloc* b = holds(at)) return *start = last_holder_ = at, b;
    }
    ++holding_walks_;
    bool found = false;
    map_.for_each([&](uint64_t at, const LiveAlloc& b) {
      if (!found && !b.freed && address > at && address - at < b.bytes) found = true, *start = at;
    });
    if (!found) return nullptr;
    last_holder_ = *start;
    return map_.find(*start);
  }
  // Walks of the whole map holding() made (for tests: a heap inside the allocation found last,
  // or near an aligned allocation's start, makes none).
  uint64_t holding_walks() const { return holding_walks_; }
  void mark_freed(LiveAlloc& a) {
    a.freed = true;
    if (++freed_entries_ > kMaxRememberedFrees) forget_freed();
  }
  // Live again after a failed free.
  void revive(LiveAlloc& a) {
    a.freed = false;
    --freed_entries_;
  }

  // For DeviceState::plain_run: the map itself, how many records it may take (each adds at most
  // one freed entry, so a run this long passes the bound, if at all, with its last record), and
  // the change in freed entries it made (modulo 2^64: may be negative).
  AddressMap<LiveAlloc>& map() { return map_; }
  size_t run_room() const { return kMaxRememberedFrees + 1 - freed_entries_; }
  void after_run(int64_t freed_change) {
    freed_entries_ += static_cast<size_t>(freed_change);
    if (freed_entries_ > kMaxRememberedFrees) forget_freed();
  }

  // What is still live on each device (pinned host memory left out), by site and by size class.
  // An allocation an NVTX heap made a segment is not: its live regions are (NvtxHeaps::add_leaks).
  std::map<int, std::pair<SiteAggregates, ClassAggregates>> leaks_by_device() const {
    std::map<int, std::pair<SiteAggregates, ClassAggregates>> leaks;
    map_.for_each([&](uint64_t /*address*/, const LiveAlloc& a) {
      if (a.freed || a.kind == static_cast<uint8_t>(trace::MemKind::pinned_host) ||
          a.segment_id >= kNvtxHeapSegment)
        return;
      auto& [sites, classes] = leaks[a.device];
      sites[a.site].add(a.bytes);
      classes[size_class(a.bytes)].add(a.bytes);
    });
    return leaks;
  }

 private:
  [[gnu::noinline]] void forget_freed() {
    map_.retain_if([](uint64_t, const LiveAlloc& a) { return !a.freed; });
    freed_entries_ = 0;
  }

  AddressMap<LiveAlloc> map_;
  size_t freed_entries_ = 0;
  uint64_t last_holder_ = 0;  // start of the allocation holding() found last
  uint64_t holding_walks_ = 0;
};

}  // namespace gpumem::analyzer
