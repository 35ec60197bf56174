#include "timeline.h"

#include <algorithm>

namespace gpumem::analyzer {

MaxBoxTimeline::MaxBoxTimeline(size_t max_points)
    : max_points_(std::max<size_t>(max_points, 1)) {}

void MaxBoxTimeline::merge_into(Box& into, const Box& from) {
  if (!from.used) return;
  if (!into.used) {
    into = from;
    return;
  }
  // Keep the time of the larger allocated value; on a tie the earlier one (first reached).
  if (from.allocated > into.allocated ||
      (from.allocated == into.allocated && from.t_ns < into.t_ns)) {
    into.allocated = from.allocated;
    into.t_ns = from.t_ns;
  }
  into.reserved = std::max(into.reserved, from.reserved);
  into.fragmentation = std::max(into.fragmentation, from.fragmentation);
}

void MaxBoxTimeline::coarsen() {
  std::vector<Box> merged(boxes_.size() / 2 + 1);
  for (size_t i = 0; i < boxes_.size(); ++i) merge_into(merged[i / 2], boxes_[i]);
  merged.resize(std::min(merged.size(), max_points_));
  boxes_.swap(merged);
  width_ns_ *= 2;
  box_start_ = UINT64_MAX;  // the cached box moved: find it again
}

void MaxBoxTimeline::add_to_another_box(int64_t t_ns, uint64_t rel, uint64_t allocated,
                                        uint64_t reserved, double fragmentation) {
  if (!started_) {
    started_ = true;
    origin_ns_ = t_ns;
    rel = 0;
  }
  while (rel / width_ns_ >= max_points_) coarsen();
  box_index_ = static_cast<size_t>(rel / width_ns_);
  box_start_ = box_index_ * width_ns_;
  if (box_index_ >= boxes_.size()) boxes_.resize(box_index_ + 1);
  merge_into(boxes_[box_index_], Box{true, t_ns, allocated, reserved, fragmentation});
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

}  // namespace gpumem::analyzer
