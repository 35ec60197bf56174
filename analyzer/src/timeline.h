// A streaming max-box filter: the run is cut into at most `max_points` equal time boxes and each
// box keeps the maximum of each series, so a peak always survives downsampling (TensorFlow's
// memory profile does the same; uniform sampling would lose it). The box width starts small and
// doubles, merging neighbour boxes, whenever the run outgrows the boxes: memory is O(max_points)
// and the total time need not be known in advance.
#pragma once

#include <cstdint>
#include <vector>

#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

class MaxBoxTimeline {
 public:
  explicit MaxBoxTimeline(size_t max_points);
  // The state after an event at time t_ns (relative to the trace's clock base). Inline: called
  // once per event, and nearly every event falls in the box of the one before it.
  void add(int64_t t_ns, uint64_t allocated, uint64_t reserved, double fragmentation) {
    if (t_ns < box_lo_ns_ || t_ns >= box_hi_ns_) {
      add_to_another_box(t_ns, allocated, reserved, fragmentation);
      return;
    }
    Box& b = boxes_[box_index_];
    // Keep the time of the larger allocated value; on a tie the earlier one (first reached).
    if (allocated > b.allocated || (allocated == b.allocated && t_ns < b.t_ns)) {
      b.allocated = allocated;
      b.t_ns = t_ns;
    }
    if (reserved > b.reserved) b.reserved = reserved;
    if (fragmentation > b.fragmentation) b.fragmentation = fragmentation;
  }

  // The same after a change that lowered allocated and reserved and left fragmentation as it was
  // (a free outside any pool, of a non-zero size): the box of the event before already holds
  // larger values, so only a move to another box has anything to record.
  void add_lower(int64_t t_ns, uint64_t allocated, uint64_t reserved, double fragmentation) {
    if (t_ns < box_lo_ns_ || t_ns >= box_hi_ns_)
      add_to_another_box(t_ns, allocated, reserved, fragmentation);
  }

  // The same two for a caller that keeps a detail of each box's maximum (SiteCapture): they
  // return the box's detail slot when this state became its box's maximum, else nullptr. A box
  // merged away by coarsening hands its detail to dropped_details(), for reuse.
  uint32_t* add_tracked(int64_t t_ns, uint64_t allocated, uint64_t reserved, double fragmentation) {
    if (t_ns < box_lo_ns_ || t_ns >= box_hi_ns_)
      return add_to_another_box(t_ns, allocated, reserved, fragmentation);
    Box& b = boxes_[box_index_];
    uint32_t* raised = nullptr;
    if (allocated > b.allocated || (allocated == b.allocated && t_ns < b.t_ns)) {
      b.allocated = allocated;
      b.t_ns = t_ns;
      raised = &b.detail;
    }
    if (reserved > b.reserved) b.reserved = reserved;
    if (fragmentation > b.fragmentation) b.fragmentation = fragmentation;
    return raised;
  }
  uint32_t* add_lower_tracked(int64_t t_ns, uint64_t allocated, uint64_t reserved,
                              double fragmentation) {
    if (t_ns < box_lo_ns_ || t_ns >= box_hi_ns_)
      return add_to_another_box(t_ns, allocated, reserved, fragmentation);
    return nullptr;
  }
  std::vector<uint32_t>& dropped_details() { return dropped_details_; }

  // Non-empty boxes in time order. A point's t_ns is when `allocated` reached its box maximum.
  Timeline points() const;
  // The detail slot of each of points(), in the same order (0 = none was attached).
  std::vector<uint32_t> point_details() const;

 private:
  struct Box {
    bool used = false;
    int64_t t_ns = 0;
    uint64_t allocated = 0;
    uint64_t reserved = 0;
    double fragmentation = 0;
    uint32_t detail = 0;  // the caller's detail of the maximum (add_tracked), 0 = none
  };
  // Returns true when `from`'s maximum became `into`'s (its detail then goes with it).
  static bool merge_into(Box& into, const Box& from);
  // Returns the box's detail slot when the state became its box's maximum (see add_tracked).
  [[gnu::cold]] uint32_t* add_to_another_box(int64_t t_ns, uint64_t allocated, uint64_t reserved,
                                             double fragmentation);
  void coarsen();

  size_t max_points_;
  bool started_ = false;
  int64_t origin_ns_ = 0;
  uint64_t width_ns_ = 1024;
  std::vector<Box> boxes_;
  std::vector<uint32_t> dropped_details_;  // details of maxima that coarsening merged away
  // The box the last event fell in: boxes_[box_index_], times [box_lo_ns_, box_hi_ns_); an
  // empty range when none is cached.
  size_t box_index_ = 0;
  int64_t box_lo_ns_ = INT64_MAX;
  int64_t box_hi_ns_ = INT64_MIN;
};

}  // namespace gpumem::analyzer
