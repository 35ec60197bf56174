#include "segment_space.h"

namespace gpumem::analyzer {

std::map<uint64_t, SegmentSpace::Segment>::iterator SegmentSpace::segment_containing(
    uint64_t address) {
  auto it = segments_.upper_bound(address);
  if (it == segments_.begin()) return segments_.end();
  --it;
  return address < it->second.end ? it : segments_.end();
}

void SegmentSpace::add_free(uint64_t start, uint64_t end) {
  if (end <= start) return;
  free_.emplace(start, end);
  sizes_.add(end - start);
  total_free_ += end - start;
}

void SegmentSpace::remove_free(std::map<uint64_t, uint64_t>::iterator it) {
  uint64_t size = it->second - it->first;
  sizes_.remove(size);
  total_free_ -= size;
  free_.erase(it);
}

uint64_t SegmentSpace::reserve(uint64_t address, uint64_t bytes) {
  if (bytes == 0 || address + bytes < address) return 0;
  uint64_t end = address + bytes;
  auto next = segments_.lower_bound(address);
  if (next != segments_.end() && next->first < end) return 0;
  if (next != segments_.begin() && std::prev(next)->second.end > address) return 0;
  uint64_t id = next_id_++;
  segments_.emplace(address, Segment{end, id, 0});
  add_free(address, end);
  return id;
}

bool SegmentSpace::release(uint64_t address, uint64_t* bytes, uint64_t* used) {
  auto seg = segments_.find(address);
  if (seg == segments_.end()) return false;
  uint64_t end = seg->second.end;
  for (auto it = free_.lower_bound(address); it != free_.end() && it->first < end;)
    remove_free(it++);
  *bytes = end - address;
  *used = seg->second.used;
  segments_.erase(seg);
  return true;
}

// take and give_back run once per pooled event: they change the free extents in place (a node
// re-keyed, an end moved, an insertion with its position as hint) rather than removing and
// re-adding them, so most events allocate nothing and search the tree once.
uint64_t SegmentSpace::take(uint64_t address, uint64_t bytes) {
  if (bytes == 0 || address + bytes < address) return 0;
  auto it = free_.upper_bound(address);
  if (it == free_.begin()) return 0;
  --it;
  const uint64_t start = it->first, end = it->second, taken_end = address + bytes;
  if (taken_end > end) return 0;
  auto seg = segment_containing(address);
  if (seg == segments_.end()) return 0;
  sizes_.remove(end - start);
  total_free_ -= bytes;
  if (start < address) {
    it->second = address;  // the part before stays in this node
    sizes_.add(address - start);
    if (taken_end < end) {
      free_.emplace_hint(std::next(it), taken_end, end);
      sizes_.add(end - taken_end);
    }
  } else if (taken_end < end) {
    auto next = std::next(it);  // the part after: the same node, re-keyed
    auto node = free_.extract(it);
    node.key() = taken_end;
    free_.insert(next, std::move(node));
    sizes_.add(end - taken_end);
  } else {
    free_.erase(it);
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
  auto next = free_.lower_bound(address);
  const bool merge_next = next != free_.end() && next->first == end && end < seg->second.end;
  auto prev = next == free_.begin() ? free_.end() : std::prev(next);
  const bool merge_prev = prev != free_.end() && prev->second == address && prev->first >= seg->first;
  if (merge_prev) {
    sizes_.remove(prev->second - prev->first);
    prev->second = merge_next ? next->second : end;
    if (merge_next) {
      sizes_.remove(next->second - next->first);
      free_.erase(next);
    }
    sizes_.add(prev->second - prev->first);
  } else if (merge_next) {
    sizes_.remove(next->second - next->first);
    sizes_.add(next->second - address);
    auto after = std::next(next);
    auto node = free_.extract(next);
    node.key() = address;
    free_.insert(after, std::move(node));
  } else {
    free_.emplace_hint(next, address, end);
    sizes_.add(bytes);
  }
  return true;
}

}  // namespace gpumem::analyzer
