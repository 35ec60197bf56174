#include "segment_space.h"

namespace gpumem::analyzer {

std::map<uint64_t, SegmentSpace::Segment>::iterator SegmentSpace::segment_containing(
    uint64_t address) {
  auto it = segments_.upper_bound(address);
  if (it == segments_.begin()) return segments_.end();
  --it;
  return address < it->second.end ? it : segments_.end();
}

uint64_t SegmentSpace::reserve(uint64_t address, uint64_t bytes) {
  if (bytes == 0 || address + bytes < address) return 0;
  uint64_t end = address + bytes;
  auto next = segments_.lower_bound(address);
  if (next != segments_.end() && next->first < end) return 0;
  if (next != segments_.begin() && std::prev(next)->second.end > address) return 0;
  uint64_t id = next_id_++;
  segments_.emplace(address, Segment{end, id, 0});
  free_.insert_before(free_.lower_bound(address), {address, end});
  total_free_ += bytes;
  return id;
}

bool SegmentSpace::release(uint64_t address, uint64_t* bytes, uint64_t* used) {
  auto seg = segments_.find(address);
  if (seg == segments_.end()) return false;
  uint64_t end = seg->second.end;
  // Rare (a segment's end): one search per extent removed is fine.
  for (auto p = free_.lower_bound(address); free_.valid(p) && free_.get(p).start < end;
       p = free_.lower_bound(address)) {
    total_free_ -= free_.get(p).end - free_.get(p).start;
    free_.erase(p);
  }
  *bytes = end - address;
  *used = seg->second.used;
  segments_.erase(seg);
  return true;
}

// take and give_back run once per pooled event: they change the free extents in place (an end
// moved, a start moved, an insertion next to a known position), one search each.
uint64_t SegmentSpace::take(uint64_t address, uint64_t bytes) {
  if (bytes == 0 || address + bytes < address) return 0;
  const auto p = free_.at_or_before(address);
  if (!free_.valid(p)) return 0;
  const FreeExtents::Extent x = free_.get(p);
  const uint64_t taken_end = address + bytes;
  if (taken_end > x.end) return 0;
  auto seg = segment_containing(address);
  if (seg == segments_.end()) return 0;
  total_free_ -= bytes;
  if (x.start < address) {
    free_.set(p, x.start, address);  // the part before stays in place
    if (taken_end < x.end) free_.insert_after(p, {taken_end, x.end});
  } else if (taken_end < x.end) {
    free_.set(p, taken_end, x.end);  // the part after: the same entry, its start moved
  } else {
    free_.erase(p);
  }
  seg->second.used += bytes;
  return seg->second.id;
}

bool SegmentSpace::give_back(uint64_t address, uint64_t bytes, uint64_t id) {
  auto seg = segment_containing(address);
  if (seg == segments_.end() || seg->second.id != id || address + bytes > seg->second.end)
    return false;
  seg->second.used -= bytes;
  total_free_ += bytes;
  const uint64_t end = address + bytes;
  // Neighbours in free_ are inside this segment whenever they touch the range (extents never
  // cross segment bounds, and the range is inside the segment).
  const auto next = free_.lower_bound(address);
  const bool merge_next =
      free_.valid(next) && free_.get(next).start == end && end < seg->second.end;
  const auto prev = free_.prev(next);
  const bool merge_prev = free_.valid(prev) && free_.get(prev).end == address &&
                          free_.get(prev).start >= seg->first;
  if (merge_prev) {
    // The one before grows over the range (and the one after, then erased).
    free_.set(prev, free_.get(prev).start, merge_next ? free_.get(next).end : end);
    if (merge_next) free_.erase(next);
  } else if (merge_next) {
    free_.set(next, address, free_.get(next).end);
  } else {
    free_.insert_before(next, {address, end});
  }
  return true;
}

}  // namespace gpumem::analyzer
