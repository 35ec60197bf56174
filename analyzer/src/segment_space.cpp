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
  ++sizes_[end - start];
  total_free_ += end - start;
}

void SegmentSpace::remove_free(std::map<uint64_t, uint64_t>::iterator it) {
  uint64_t size = it->second - it->first;
  auto s = sizes_.find(size);
  if (--s->second == 0) sizes_.erase(s);
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

uint64_t SegmentSpace::take(uint64_t address, uint64_t bytes) {
  if (bytes == 0 || address + bytes < address) return 0;
  auto it = free_.upper_bound(address);
  if (it == free_.begin()) return 0;
  --it;
  uint64_t start = it->first, end = it->second;
  if (address + bytes > end) return 0;
  auto seg = segment_containing(address);
  if (seg == segments_.end()) return 0;
  remove_free(it);
  add_free(start, address);
  add_free(address + bytes, end);
  seg->second.used += bytes;
  return seg->second.id;
}

bool SegmentSpace::give_back(uint64_t address, uint64_t bytes, uint64_t id) {
  auto seg = segment_containing(address);
  if (seg == segments_.end() || seg->second.id != id || address + bytes > seg->second.end)
    return false;
  seg->second.used -= bytes;
  uint64_t start = address, end = address + bytes;
  // Neighbours in free_ are inside this segment whenever they touch the range (extents never
  // cross segment bounds, and the range is inside the segment).
  auto next = free_.lower_bound(address);
  if (next != free_.end() && next->first == end && end < seg->second.end) {
    end = next->second;
    remove_free(next);
  }
  auto after = free_.lower_bound(address);
  if (after != free_.begin()) {
    auto prev = std::prev(after);
    if (prev->second == start && prev->first >= seg->first) {
      start = prev->first;
      remove_free(prev);
    }
  }
  add_free(start, end);
  return true;
}

}  // namespace gpumem::analyzer
