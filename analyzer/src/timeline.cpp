#include "timeline.h"

#include <algorithm>

namespace gpumem::analyzer {

MaxBoxTimeline::MaxBoxTimeline(size_t max_points) : max_points_(std::max<size_t>(max_points, 1)) {}

bool MaxBoxTimeline::merge_into(Box& into, const Box& from) {
  if (!from.used) return false;
  if (!into.used) {
    into = from;
    return true;
  }
  bool took = false;
  // Keep the time of the larger allocated value; on a tie the earlier one (first reached).
  if (from.allocated > into.allocated ||
      (from.allocated == into.allocated && from.t_ns < into.t_ns)) {
    into.allocated = from.allocated;
    into.t_ns = from.t_ns;
    took = true;
  }
  into.reserved = std::max(into.reserved, from.reserved);
  into.fragmentation = std::max(into.fragmentation, from.fragmentation);
  return took;
}

void MaxBoxTimeline::coarsen() {
  std::vector<Box> merged(boxes_.size() / 2 + 1);
  for (size_t i = 0; i < boxes_.size(); ++i) {
    Box& into = merged[i / 2];
    const uint32_t kept = into.detail;
    if (merge_into(into, boxes_[i])) {
      into.detail = boxes_[i].detail;
      if (kept != 0) dropped_details_.push_back(kept);
    } else if (boxes_[i].detail != 0) {
      dropped_details_.push_back(boxes_[i].detail);
    }
  }
  merged.resize(std::min(merged.size(), max_points_));
  boxes_.swap(merged);
  width_ns_ *= 2;
  box_lo_ns_ = INT64_MAX;  // the cached box moved: find it again
  box_hi_ns_ = INT64_MIN;
}

uint32_t* MaxBoxTimeline::add_to_another_box(int64_t t_ns, uint64_t allocated, uint64_t reserved,
                                             double fragmentation) {
  if (!started_) {
    started_ = true;
    origin_ns_ = t_ns;
  }
  // Records from several threads may be slightly out of order: an early one joins the first box.
  // (t_ns > origin_ns_, so the unsigned difference is exact.)
  const uint64_t rel =
      t_ns > origin_ns_ ? static_cast<uint64_t>(t_ns) - static_cast<uint64_t>(origin_ns_) : 0;
  // Doubling stops at 2^63 (the next one would wrap to 0): with one point, a span of 2^63 ns or
  // more (a corrupt trace's times) still needs a second box; the last box takes it.
  while (rel / width_ns_ >= max_points_ && width_ns_ <= UINT64_MAX / 2) coarsen();
  box_index_ = static_cast<size_t>(std::min<uint64_t>(rel / width_ns_, max_points_ - 1));
  if (box_index_ >= boxes_.size()) boxes_.resize(box_index_ + 1);
  Box& box = boxes_[box_index_];
  const uint32_t detail = box.detail;
  const bool raised = merge_into(box, Box{true, t_ns, allocated, reserved, fragmentation, 0});
  box.detail = detail;  // the new maximum's detail is the caller's to fill in
  // Cache the box's time range for the next events, unless its bounds leave int64 (a corrupt
  // trace's times may be anywhere): then every event comes here, which is only slower.
  const uint64_t start = box_index_ * width_ns_;
  int64_t lo = 0, hi = 0;
  constexpr uint64_t kMax = static_cast<uint64_t>(INT64_MAX);
  if (box_index_ > 0 && start <= kMax && width_ns_ <= kMax &&
      !__builtin_add_overflow(origin_ns_, static_cast<int64_t>(start), &lo) &&
      !__builtin_add_overflow(lo, static_cast<int64_t>(width_ns_), &hi)) {
    box_lo_ns_ = lo;
    box_hi_ns_ = hi;
  } else {
    box_lo_ns_ = INT64_MAX;  // box 0 also takes early (out of order) events: not cached
    box_hi_ns_ = INT64_MIN;
  }
  return raised ? &box.detail : nullptr;
}

Timeline MaxBoxTimeline::points() const {
  Timeline out;
  for (const Box& b : boxes_) {
    if (!b.used) continue;
    out.t_ns.push_back(b.t_ns);
    out.allocated.push_back(b.allocated);
    out.reserved.push_back(b.reserved);
    out.fragmentation.push_back(b.fragmentation);
  }
  return out;
}

std::vector<uint32_t> MaxBoxTimeline::point_details() const {
  std::vector<uint32_t> out;
  for (const Box& b : boxes_)
    if (b.used) out.push_back(b.detail);
  return out;
}

}  // namespace gpumem::analyzer
