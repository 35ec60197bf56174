// The address space a pool reserved on one device: its segments and the free extents inside them
// (segment extents minus the live pooled allocations). External fragmentation is computed from it
// as 1 - largest free extent / total free (TensorFlow BFC's GetFragmentation). Free extents never
// span two segments, even when the segments are adjacent: no block can.
#pragma once

#include <cstdint>
#include <map>

#include "free_extents.h"

namespace gpumem::analyzer {

class SegmentSpace {
 public:
  // Adds a segment; returns its id, or 0 when it overlaps a live segment (ignored).
  uint64_t reserve(uint64_t address, uint64_t bytes);
  // Removes the segment starting at `address`. *bytes = its size, *used = bytes still allocated
  // inside it. False when no segment starts there.
  bool release(uint64_t address, uint64_t* bytes, uint64_t* used);
  // Carves [address, address+bytes) out of a free extent; returns the segment id, or 0 when the
  // range is not entirely free inside one segment (then nothing changes).
  uint64_t take(uint64_t address, uint64_t bytes);
  // Returns a range taken with `take` to the free extents, merging neighbours. False (nothing
  // changes) when segment `id` no longer holds it.
  bool give_back(uint64_t address, uint64_t bytes, uint64_t id);

  uint64_t total_free() const { return total_free_; }
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
    uint64_t used;
  };
  std::map<uint64_t, Segment>::iterator segment_containing(uint64_t address);

  std::map<uint64_t, Segment> segments_;  // start -> segment
  FreeExtents free_;                      // ordered, with the largest size at hand
  uint64_t total_free_ = 0;
  uint64_t next_id_ = 1;
};

}  // namespace gpumem::analyzer
