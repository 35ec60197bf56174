#include "nvtx_heaps.h"

#include <algorithm>

namespace gpumem::analyzer {

void NvtxHeaps::heap_register(uint64_t heap, uint64_t address, uint64_t bytes, uint64_t domain,
                              int device, int64_t t_ns) {
  if (heaps_.size() >= kMaxHeaps) return;
  Heap h;
  h.row.address = address;
  h.row.bytes = bytes;
  h.row.start_ns = t_ns;
  h.row.peak_time_ns = t_ns;
  h.row.largest_free_at_peak_bytes = bytes;
  h.domain = domain;
  h.device = device;
  open_ids_[heap] = next_key_;
  heaps_.emplace(next_key_++, h);
}

// The open heap a record names; for heap 0 (NVTX's process-wide heap) or an unknown id, the open
// heap whose range holds the address.
bool NvtxHeaps::heap_of(uint64_t heap, uint64_t address, uint64_t* key) const {
  auto id = open_ids_.find(heap);
  if (heap != 0 && id != open_ids_.end()) return *key = id->second, true;
  for (const auto& [k, h] : heaps_)
    if (h.open && address >= h.row.address && address - h.row.address < h.row.bytes)
      return *key = k, true;
  return false;
}

void NvtxHeaps::changed(Heap& h, uint64_t key, int64_t t_ns) {
  h.row.regions_final_bytes = h.live_bytes;
  if (h.live_bytes <= h.row.regions_peak_bytes) return;
  h.row.regions_peak_bytes = h.live_bytes;
  h.row.regions_peak_count = h.live_count;
  h.row.peak_time_ns = t_ns;
  // The largest gap between this heap's regions at its peak (regions of one heap never overlap).
  uint64_t at = h.row.address, largest = 0;
  for (auto it = regions_.lower_bound(h.row.address); it != regions_.end(); ++it) {
    if (it->first - h.row.address >= h.row.bytes) break;
    if (it->second.heap != key) continue;
    if (it->first > at) largest = std::max(largest, it->first - at);
    at = std::max(at, it->first + it->second.bytes);
  }
  const uint64_t end = h.row.address + h.row.bytes;
  if (end > at) largest = std::max(largest, end - at);
  h.row.largest_free_at_peak_bytes = largest;
}

void NvtxHeaps::region_register(uint64_t heap, uint64_t address, uint64_t bytes, int64_t t_ns) {
  uint64_t key = 0;
  if (!heap_of(heap, address, &key)) return;
  region_unregister(address, t_ns);  // an address registered twice: the newer region counts
  regions_[address] = {key, bytes};
  Heap& h = heaps_.at(key);
  h.live_bytes += bytes;
  ++h.live_count;
  ++h.row.regions_registered;
  changed(h, key, t_ns);
}

void NvtxHeaps::region_resize(uint64_t address, uint64_t bytes, int64_t t_ns) {
  auto r = regions_.find(address);
  if (r == regions_.end()) return;
  Heap& h = heaps_.at(r->second.heap);
  h.live_bytes = h.live_bytes - r->second.bytes + bytes;
  r->second.bytes = bytes;
  changed(h, r->second.heap, t_ns);
}

void NvtxHeaps::region_unregister(uint64_t address, int64_t t_ns) {
  auto r = regions_.find(address);
  if (r == regions_.end()) return;
  Heap& h = heaps_.at(r->second.heap);
  h.live_bytes -= r->second.bytes;
  --h.live_count;
  const uint64_t key = r->second.heap;
  regions_.erase(r);
  changed(h, key, t_ns);
}

void NvtxHeaps::drop_regions(uint64_t key, int64_t t_ns) {
  for (auto r = regions_.begin(); r != regions_.end();)
    r = r->second.heap == key ? regions_.erase(r) : std::next(r);
  Heap& h = heaps_.at(key);
  h.live_bytes = h.live_count = 0;
  changed(h, key, t_ns);
}

void NvtxHeaps::heap_reset(uint64_t heap, int64_t t_ns) {
  auto id = open_ids_.find(heap);
  if (id != open_ids_.end()) drop_regions(id->second, t_ns);
}

void NvtxHeaps::heap_unregister(uint64_t heap, int64_t t_ns) {
  auto id = open_ids_.find(heap);
  if (id == open_ids_.end()) return;
  drop_regions(id->second, t_ns);
  Heap& h = heaps_.at(id->second);
  h.open = false;
  h.row.end_ns = t_ns;
  open_ids_.erase(id);
}

std::vector<NvtxHeapRow> NvtxHeaps::rows(int device, const Attribution& strings) const {
  std::vector<NvtxHeapRow> rows;
  for (const auto& [key, h] : heaps_) {
    if (h.device != device) continue;
    NvtxHeapRow row = h.row;
    row.domain = h.domain != 0 ? strings.string_or_id(h.domain) : "";
    row.closed = !h.open;
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace gpumem::analyzer
