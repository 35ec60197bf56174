// The address space a pool reserved on one device: its segments and the free extents inside them
// (segment extents minus the live pooled allocations). External fragmentation is computed from it
// as 1 - largest free extent / total free (TensorFlow BFC's GetFragmentation). Free extents never
// span two segments, even when the segments are adjacent: no block can.
//
// The expandable pool (GPUMEM_POOL=expandable) is the exception: it records each physical granule
// it maps into its one virtual range as a segment of its own, and its blocks span granules. Its
// segments are reserved as *joining*: a joining segment next to another one becomes part of it, so
// one run of mapped granules is one segment, blocks and free extents span its granules, and a
// release may take any part of it (an unmapped granule splits it in two). Free space, and so
// fragmentation and the largest free block, is then what is mapped and not allocated.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "free_extents.h"
#include "granule_hints.h"

namespace gpumem::analyzer {

class SegmentSpace {
 public:
  // Adds a segment; returns its id, or 0 when it overlaps a live segment (ignored). A joining
  // segment merges with the joining segments that end where it starts or start where it ends.
  uint64_t reserve(uint64_t address, uint64_t bytes, bool joining = false);
  // Removes the segment starting at `address`. *bytes = its size, *used = bytes still allocated
  // inside it. False when no segment starts there.
  bool release(uint64_t address, uint64_t* bytes, uint64_t* used);
  // Removes [address, address+bytes) from the joining segment that holds all of it (a segment
  // that does not join: as release() when it starts at `address` and has `bytes`). *used = the
  // bytes of that range that were not free. False (nothing changes) otherwise.
  bool release_part(uint64_t address, uint64_t bytes, uint64_t* used);
  // Carves [address, address+bytes) out of a free extent; returns the segment id, or 0 when the
  // range is not entirely free inside one segment (then nothing changes).
  uint64_t take(uint64_t address, uint64_t bytes);
  // Returns a range taken with `take` to the free extents, merging neighbours; returns the bytes
  // given back: `bytes`, or 0 (nothing changes) when segment `id` no longer holds the range. In
  // joining segments the range's parts still reserved and not free go back, whatever the id: a
  // release may have taken the rest.
  uint64_t give_back(uint64_t address, uint64_t bytes, uint64_t id);

  uint64_t total_free() const { return total_free_; }
  // How many times the segment index was rebuilt (for tests: it must stay amortised).
  uint64_t index_rebuilds() const { return index_rebuilds_; }
  uint64_t largest_free() const { return free_.largest(); }
  double external_fragmentation() const {
    return total_free_ == 0 ? 0.0
                            : 1.0 - static_cast<double>(largest_free()) /
                                        static_cast<double>(total_free_);
  }

 private:
  struct Segment {
    uint64_t end;
    uint64_t id;
    uint64_t used;  // not kept for joining segments (release_part counts what is not free)
    bool joining;
  };
  using Iter = std::map<uint64_t, Segment>::iterator;
  // The segment holding `address`: through its hint (hints_) when that holds, else through
  // index_ when it is current, else through the map; segments_.end() when none.
  Iter segment_containing(uint64_t address);
  // segment_containing without the hints; *found = the segment's place in index_ when index_
  // answered, else left as it was.
  Iter search_segment(uint64_t address, uint32_t* found);
  static constexpr uint32_t kNotIndexed = UINT32_MAX;
  // Every change to the set of segments (emplace, erase) makes index_ stale, and with it the
  // hints, which name places in it.
  void index_stale() {
    index_.clear();
    lookups_since_stale_ = 0;
  }
  // Whether any free extent overlaps [address, end), given `next`, the first free extent that
  // starts at or after `address` (free_.lower_bound(address)).
  bool any_free_in(uint64_t address, uint64_t end, FreeExtents::Pos next) const;
  // Removes every free byte of [address, end); returns how many there were.
  uint64_t unfree(uint64_t address, uint64_t end);
  // Adds [address, end), wholly not free and inside `seg`, to the free extents; `next` is
  // free_.lower_bound(address) (one search for the caller's check and the change).
  void free_range(uint64_t address, uint64_t end, Iter seg, FreeExtents::Pos next);
  uint64_t give_back_joining(uint64_t address, uint64_t end);

  std::map<uint64_t, Segment> segments_;  // start -> segment
  // segments_ in order, as starts and iterators, for segment_containing(): take and give_back
  // look a segment up on every pooled event, and a search over an array costs a third of a
  // tree's pointer chase through the growth pool's dozens of segments. Rebuilt (O(segments))
  // once the lookups since a segment came or went are as many as a sixteenth of the segments;
  // until then the map answers. (Rebuilt at the first lookup, a trace that reserves a segment
  // for each allocation, such as NVTX heaps, cost O(segments) an event: 20000 heaps took 1.2 s
  // and 50000 took 12 s.)
  std::vector<uint64_t> index_starts_;
  std::vector<Iter> index_;
  uint64_t lookups_since_stale_ = 0;
  uint64_t index_rebuilds_ = 0;
  // The segment last found for each granule of addresses, as its place in index_, tried before
  // the search: the search over a growth pool's dozens of segments was 14 % of a report of its
  // trace. A granule is the smallest segment's size rounded down to a power of two (set when the
  // index is rebuilt), so that few granules share a hint. Made once a device has a few segments.
  static constexpr size_t kHintsFromSegments = 4;
  GranuleHints<512> hints_;
  FreeExtents free_;  // ordered, with the largest size at hand
  uint64_t total_free_ = 0;
  uint64_t next_id_ = 1;
};

}  // namespace gpumem::analyzer
