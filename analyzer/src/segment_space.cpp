#include "segment_space.h"

#include <algorithm>
#include <bit>
#include <utility>
#include <vector>

#include "sorted_search.h"

namespace gpumem::analyzer {

SegmentSpace::Iter SegmentSpace::segment_containing(uint64_t address) {
  uint32_t* hint = nullptr;
  if (hints_.on()) {
    hint = &hints_.slot(address);
    // index_ is empty while stale (any change to the segments empties it). The bounds are read
    // through the segment's node: a joining segment's end moves in place.
    if (*hint < index_.size()) {
      const Iter it = index_[*hint];
      if (address >= it->first && address < it->second.end) return it;
    }
  } else if (segments_.size() >= kHintsFromSegments) {
    hints_.start();
  }
  uint32_t found = kNotIndexed;
  const Iter it = search_segment(address, &found);
  if (hint != nullptr && found != kNotIndexed) *hint = found;
  return it;
}

SegmentSpace::Iter SegmentSpace::search_segment(uint64_t address, uint32_t* found) {
  if (index_.size() != segments_.size()) [[unlikely]] {  // stale: index_stale() emptied it
    if (++lookups_since_stale_ <= segments_.size() / 16) {
      auto after = segments_.upper_bound(address);
      if (after == segments_.begin()) return segments_.end();
      const Iter it = std::prev(after);
      return address < it->second.end ? it : segments_.end();
    }
    ++index_rebuilds_;
    index_starts_.clear();
    uint64_t smallest = UINT64_MAX;
    for (auto it = segments_.begin(); it != segments_.end(); ++it) {
      index_starts_.push_back(it->first);
      index_.push_back(it);
      smallest = std::min(smallest, it->second.end - it->first);
    }
    hints_.set_granule_shift(
        std::clamp(static_cast<unsigned>(std::bit_width(smallest)) - 1, 12u, 40u));
  }
  if (index_.size() == 1) {  // one segment (an expandable pool's run of granules, a heap's)
    const Iter it = index_[0];
    return address >= it->first && address < it->second.end ? it : segments_.end();
  }
  const uint64_t* starts = index_starts_.data();
  const uint32_t n = count_at_most(static_cast<uint32_t>(index_.size()), address,
                                   [starts](uint32_t i) { return starts[i]; });
  if (n == 0) return segments_.end();
  const Iter it = index_[n - 1];
  if (address >= it->second.end) return segments_.end();
  *found = n - 1;
  return it;
}

uint64_t SegmentSpace::reserve(uint64_t address, uint64_t bytes, bool joining) {
  if (bytes == 0 || address + bytes < address) return 0;
  uint64_t end = address + bytes;
  auto next = segments_.lower_bound(address);
  if (next != segments_.end() && next->first < end) return 0;
  auto prev = next != segments_.begin() ? std::prev(next) : segments_.end();
  if (prev != segments_.end() && prev->second.end > address) return 0;
  total_free_ += bytes;
  if (!joining) {
    uint64_t id = next_id_++;
    segments_.emplace(address, Segment{end, id, 0, false});
    index_stale();
    free_.insert_before(free_.lower_bound(address), {address, end});
    return id;
  }
  const bool join_prev =
      prev != segments_.end() && prev->second.joining && prev->second.end == address;
  const bool join_next = next != segments_.end() && next->second.joining && next->first == end;
  // The new free range, merged with free extents that touch it in the segments it joins.
  const auto after = free_.lower_bound(address);
  const auto before = free_.prev(after);
  const bool merge_before = join_prev && free_.valid(before) && free_.get(before).end == address;
  const bool merge_after = join_next && free_.valid(after) && free_.get(after).start == end;
  if (merge_before) {
    free_.set(before, free_.get(before).start, merge_after ? free_.get(after).end : end);
    if (merge_after) free_.erase(after);
  } else if (merge_after) {
    free_.set(after, address, free_.get(after).end);
  } else {
    free_.insert_before(after, {address, end});
  }
  const uint64_t joined_end = join_next ? next->second.end : end;
  if (join_next) {
    segments_.erase(next);
    index_stale();
  }
  if (join_prev) {
    prev->second.end = joined_end;
    return prev->second.id;
  }
  const uint64_t id = next_id_++;
  segments_.emplace(address, Segment{joined_end, id, 0, true});
  index_stale();
  return id;
}

bool SegmentSpace::release(uint64_t address, uint64_t* bytes, uint64_t* used) {
  auto seg = segments_.find(address);
  if (seg == segments_.end()) return false;
  const uint64_t end = seg->second.end;
  const uint64_t was_free = unfree(address, end);
  *bytes = end - address;
  *used = seg->second.joining ? *bytes - was_free : seg->second.used;
  segments_.erase(seg);
  index_stale();
  return true;
}

bool SegmentSpace::release_part(uint64_t address, uint64_t bytes, uint64_t* used) {
  if (bytes == 0 || address + bytes < address) return false;
  auto seg = segment_containing(address);
  if (seg == segments_.end()) return false;
  const uint64_t end = address + bytes;
  if (!seg->second.joining) {
    if (seg->first != address || seg->second.end != end) return false;
    uint64_t all = 0;
    return release(address, &all, used);
  }
  if (end > seg->second.end) return false;
  *used = bytes - unfree(address, end);
  // What is left on either side stays reserved: two segments when the part was in the middle.
  if (end < seg->second.end) segments_.emplace(end, Segment{seg->second.end, next_id_++, 0, true});
  if (seg->first < address)
    seg->second.end = address;
  else
    segments_.erase(seg);
  index_stale();
  return true;
}

bool SegmentSpace::any_free_in(uint64_t address, uint64_t end, FreeExtents::Pos next) const {
  const auto prev = free_.prev(next);
  return (free_.valid(prev) && free_.get(prev).end > address) ||
         (free_.valid(next) && free_.get(next).start < end);
}

uint64_t SegmentSpace::unfree(uint64_t address, uint64_t end) {
  uint64_t removed = 0;
  const auto p = free_.at_or_before(address);
  if (free_.valid(p)) {
    const FreeExtents::Extent x = free_.get(p);
    if (x.start < address && x.end > address) {
      removed += std::min(x.end, end) - address;
      free_.set(p, x.start, address);
      if (x.end > end) {
        free_.insert_after(p, {end, x.end});
        total_free_ -= removed;
        return removed;
      }
    }
  }
  // Rare (a segment's end): one search per extent removed is fine.
  for (auto q = free_.lower_bound(address); free_.valid(q) && free_.get(q).start < end;
       q = free_.lower_bound(address)) {
    const FreeExtents::Extent x = free_.get(q);
    if (x.end <= end) {
      removed += x.end - x.start;
      free_.erase(q);
    } else {
      removed += end - x.start;
      free_.set(q, end, x.end);
      break;
    }
  }
  total_free_ -= removed;
  return removed;
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

void SegmentSpace::free_range(uint64_t address, uint64_t end, Iter seg, FreeExtents::Pos next) {
  total_free_ += end - address;
  // Neighbours in free_ are inside this segment whenever they touch the range (extents never
  // cross segment bounds, and the range is inside the segment).
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
}

uint64_t SegmentSpace::give_back(uint64_t address, uint64_t bytes, uint64_t id) {
  if (bytes == 0 || address + bytes < address) return 0;
  const uint64_t end = address + bytes;
  auto seg = segment_containing(address);
  if (seg != segments_.end() && seg->second.joining) {
    const auto next = free_.lower_bound(address);
    if (end <= seg->second.end && !any_free_in(address, end, next)) {  // the common case
      free_range(address, end, seg, next);
      return bytes;
    }
    return give_back_joining(address, end);
  }
  if (seg == segments_.end()) return give_back_joining(address, end);  // its start unmapped
  if (seg->second.id != id || end > seg->second.end) return 0;
  seg->second.used -= bytes;
  free_range(address, end, seg, free_.lower_bound(address));
  return bytes;
}

// The parts of [address, end) in joining segments that are not free: a block whose granules were
// partly released, or reserved again (then free: not this block's any more).
uint64_t SegmentSpace::give_back_joining(uint64_t address, uint64_t end) {
  uint64_t given = 0;
  uint64_t pos = address;
  while (pos < end) {
    auto after = segments_.upper_bound(pos);
    if (after == segments_.begin() || std::prev(after)->second.end <= pos) {
      if (after == segments_.end() || after->first >= end) break;
      pos = after->first;
      continue;
    }
    const Iter seg = std::prev(after);
    const uint64_t stop = std::min(end, seg->second.end);
    if (seg->second.joining) {
      std::vector<std::pair<uint64_t, uint64_t>> taken;
      uint64_t at = pos;
      auto p = free_.at_or_before(pos);
      if (!free_.valid(p)) p = free_.lower_bound(pos);
      for (; free_.valid(p) && free_.get(p).start < stop; p = free_.next(p)) {
        const FreeExtents::Extent x = free_.get(p);
        if (x.end <= at) continue;
        if (x.start > at) taken.emplace_back(at, x.start);
        at = std::max(at, x.end);
      }
      if (at < stop) taken.emplace_back(at, stop);
      for (const auto& [from, to] : taken) {
        free_range(from, to, seg, free_.lower_bound(from));
        given += to - from;
      }
    }
    pos = stop;
  }
  return given;
}

}  // namespace gpumem::analyzer
