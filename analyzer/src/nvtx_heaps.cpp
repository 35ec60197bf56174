#include "nvtx_heaps.h"

#include <algorithm>

namespace gpumem::analyzer {

void NvtxHeaps::heap_register(uint64_t heap, uint64_t address, uint64_t bytes, uint64_t domain,
                              int64_t t_ns, uint64_t phase) {
  // An id registered again while open (a corrupt trace: the preload never reuses one): the older
  // heap ends here, the newer counts.
  if (auto id = open_ids_.find(heap); id != open_ids_.end()) {
    const uint64_t key = id->second;
    open_ids_.erase(id);
    close(key, t_ns, phase, false);
  }
  Heap h;
  h.row.address = address;
  h.row.bytes = bytes;
  h.row.start_ns = t_ns;
  h.row.peak_time_ns = t_ns;
  h.row.largest_free_at_peak_bytes = bytes;
  h.domain = domain;
  h.end = address + bytes >= address ? address + bytes : UINT64_MAX;
  uint64_t start = 0;
  LiveAlloc* a = live_.holding(address, &start);
  if (a != nullptr) {
    h.device = a->device;
    h.allocation = start;
    h.end = std::min(h.end, start + a->bytes);
    // Device memory only, not pinned host memory nor a block of gpumem's own pool (a segment
    // inside a segment): those heaps keep their row and count nothing.
    if (bytes > 0 && a->kind != static_cast<uint8_t>(trace::MemKind::pinned_host)) {
      if (a->segment_id >= kNvtxHeapSegment) {
        h.segment = true;  // a second heap in the same allocation: the same segment
      } else if (a->segment_id == 0) {
        DeviceState& d = devices_.get(a->device);
        h.segment = d.heap_segment_begin(start, *a, t_ns, phase);
        if (h.segment) phases_.device_changed(d, t_ns);
      }
      if (h.segment) ++segment_heaps_[start];
    }
  }
  h.row.counted = h.segment;
  h.id = heap;
  // A heap no live allocation holds is on no device, so in no device's rows (device -1 is a
  // device too: the records of a trace that did not say which).
  if (a != nullptr && listed_ < kMaxHeaps) h.listed = true, ++listed_;
  open_ids_[heap] = next_key_;
  if (!open_heaps_overlapped_) {
    auto after = open_by_start_.lower_bound(address);
    if (after != open_by_start_.end() && after->first < std::max(h.end, address + 1))
      open_heaps_overlapped_ = true;  // one starts inside the new range (or where it starts)
    if (after != open_by_start_.begin() && heaps_.at(std::prev(after)->second).end > address)
      open_heaps_overlapped_ = true;  // the new range starts inside one
  }
  open_by_start_.emplace(address, next_key_);
  heaps_.emplace(next_key_++, std::move(h));
}

// The open heap a record names; for heap 0 (NVTX's process-wide heap) or an unknown id, the open
// heap whose range holds the address.
bool NvtxHeaps::heap_of(uint64_t heap, uint64_t address, uint64_t* key) const {
  auto id = open_ids_.find(heap);
  if (heap != 0 && id != open_ids_.end()) return *key = id->second, true;
  if (!open_heaps_overlapped_) {
    auto after = open_by_start_.upper_bound(address);
    if (after == open_by_start_.begin()) return false;
    const uint64_t k = std::prev(after)->second;
    return address < heaps_.at(k).end ? (*key = k, true) : false;
  }
  for (const auto& [k, h] : heaps_)
    if (h.open && address >= h.row.address && address < h.end) return *key = k, true;
  return false;
}

void NvtxHeaps::changed(Heap& h, uint64_t key, int64_t t_ns) {
  h.row.regions_final_bytes = h.live_bytes;
  if (h.live_bytes <= h.row.regions_peak_bytes) return;
  h.row.regions_peak_bytes = h.live_bytes;
  h.row.regions_peak_count = h.live_count;
  h.row.peak_time_ns = t_ns;
  h.row.largest_free_at_peak_bytes = largest_gap(h, key);
}

template <class F>
void NvtxHeaps::for_each_region_of(const Heap& h, uint64_t key, F&& f) {
  // A region of no bytes may start at the heap's end.
  for (auto it = regions_.lower_bound(h.row.address); it != regions_.end() && it->first <= h.end;) {
    auto next = std::next(it);  // f may unregister it
    if (it->second.heap == key) f(it->first, it->second);
    it = next;
  }
}

uint64_t NvtxHeaps::largest_gap(Heap& h, uint64_t key) {
  if (!h.gaps && !h.gaps_scanned && h.live_count >= kGapsFrom) {
    h.gaps = std::make_unique<SegmentSpace>();
    h.gaps_id = h.gaps->reserve(h.row.address, h.end - h.row.address);
    if (h.gaps_id == 0) h.gaps_scanned = true;
    for_each_region_of(h, key, [&](uint64_t address, const Region& r) {
      if (!h.gaps_scanned && h.gaps->take(address, r.a.bytes) == 0) h.gaps_scanned = true;
    });
    if (h.gaps_scanned) h.gaps.reset();
  }
  if (h.gaps) return h.gaps->largest_free();
  uint64_t at = h.row.address, largest = 0;
  for_each_region_of(h, key, [&](uint64_t address, const Region& r) {
    if (address >= h.end) return;
    if (address > at) largest = std::max(largest, address - at);
    at = std::max(at, address + r.a.bytes);
  });
  if (h.end > at) largest = std::max(largest, h.end - at);
  return largest;
}

void NvtxHeaps::gaps_take(Heap& h, uint64_t address, uint64_t bytes) {
  if (h.gaps && h.gaps->take(address, bytes) == 0) h.gaps.reset(), h.gaps_scanned = true;
}

void NvtxHeaps::gaps_give_back(Heap& h, uint64_t address, uint64_t bytes) {
  if (h.gaps && h.gaps->give_back(address, bytes, h.gaps_id) == 0)
    h.gaps.reset(), h.gaps_scanned = true;
}

void NvtxHeaps::region_register(uint64_t heap, uint64_t address, uint64_t bytes, uint32_t site,
                                int64_t t_ns, uint64_t phase) {
  uint64_t key = 0;
  if (!heap_of(heap, address, &key)) return;
  // A region outside its heap's range: not the allocator's memory as it described it.
  {
    const Heap& h = heaps_.at(key);
    if (address < h.row.address || address > h.end || bytes > h.end - address) return;
  }
  region_unregister(address, t_ns, phase);  // an address registered twice: the newer region counts
  Heap& h = heaps_.at(key);
  Region region{key, LiveAlloc{}};
  region.a.bytes = bytes;
  region.a.t_ns = t_ns;
  region.a.site = site;
  region.a.device = static_cast<int16_t>(h.device);
  if (h.segment) {
    // Not free in the segment (it overlaps a live region, or has no bytes): not counted.
    DeviceState& d = devices_.get(h.device);
    if (!d.region_alloc(address, region.a, phase)) return;
    phases_.device_changed(d, t_ns);
  }
  regions_[address] = region;
  gaps_take(h, address, bytes);
  h.live_bytes += bytes;
  ++h.live_count;
  ++h.row.regions_registered;
  changed(h, key, t_ns);
}

void NvtxHeaps::region_resize(uint64_t address, uint64_t bytes, int64_t t_ns, uint64_t phase) {
  auto r = regions_.find(address);
  if (r == regions_.end() || bytes == 0) return;  // to 0 bytes: ignored (unregister it instead)
  Heap& h = heaps_.at(r->second.heap);
  if (bytes > h.end - address) return;  // past its heap's end
  const uint64_t old = r->second.a.bytes;
  if (r->second.a.segment_id != 0) {
    DeviceState& d = devices_.get(h.device);
    if (!d.region_resize(address, r->second.a, bytes, t_ns, phase)) return;  // over another
    phases_.device_changed(d, t_ns);
  }
  r->second.a.bytes = bytes;
  gaps_give_back(h, address, old);
  gaps_take(h, address, bytes);
  h.live_bytes = h.live_bytes - old + bytes;
  changed(h, r->second.heap, t_ns);
}

void NvtxHeaps::region_unregister(uint64_t address, int64_t t_ns, uint64_t phase) {
  auto r = regions_.find(address);
  if (r == regions_.end()) return;
  const uint64_t key = r->second.heap;
  Heap& h = heaps_.at(key);
  if (r->second.a.segment_id != 0) {
    DeviceState& d = devices_.get(h.device);
    d.free(address, r->second.a, t_ns, phase);
    phases_.device_changed(d, t_ns);
  }
  gaps_give_back(h, address, r->second.a.bytes);
  h.live_bytes -= r->second.a.bytes;
  --h.live_count;
  regions_.erase(r);
  changed(h, key, t_ns);
}

// Only the heap's range is walked: walking every region of every heap made closing many heaps
// quadratic.
void NvtxHeaps::drop_regions(uint64_t key, int64_t t_ns, uint64_t phase) {
  std::vector<uint64_t> addresses;
  for_each_region_of(heaps_.at(key), key,
                     [&](uint64_t address, const Region&) { addresses.push_back(address); });
  for (uint64_t address : addresses) region_unregister(address, t_ns, phase);
}

void NvtxHeaps::heap_reset(uint64_t heap, int64_t t_ns, uint64_t phase) {
  auto id = open_ids_.find(heap);
  if (id != open_ids_.end()) drop_regions(id->second, t_ns, phase);
}

void NvtxHeaps::close(uint64_t key, int64_t t_ns, uint64_t phase, bool freeing) {
  drop_regions(key, t_ns, phase);
  Heap& h = heaps_.at(key);
  h.open = false;
  for (auto it = open_by_start_.lower_bound(h.row.address);
       it != open_by_start_.end() && it->first == h.row.address; ++it)
    if (it->second == key) {
      open_by_start_.erase(it);
      break;
    }
  h.row.end_ns = t_ns;
  h.gaps.reset();
  if (h.segment) {
    h.segment = false;
    auto s = segment_heaps_.find(h.allocation);
    if (s != segment_heaps_.end() && --s->second == 0) {
      segment_heaps_.erase(s);
      // The last heap in it: the segment is the plain allocation it was.
      LiveAlloc* a = live_.find(h.allocation);
      if (!freeing && a != nullptr && !a->freed && a->segment_id >= kNvtxHeapSegment) {
        DeviceState& d = devices_.get(a->device);
        d.heap_segment_end(h.allocation, *a, t_ns, phase, false);
        phases_.device_changed(d, t_ns);
      }
    }
  }
  if (!h.listed) heaps_.erase(key);
}

void NvtxHeaps::heap_unregister(uint64_t heap, int64_t t_ns, uint64_t phase) {
  auto id = open_ids_.find(heap);
  if (id == open_ids_.end()) return;
  const uint64_t key = id->second;
  open_ids_.erase(id);
  close(key, t_ns, phase, false);
}

void NvtxHeaps::allocation_freed(uint64_t address, LiveAlloc& a, int64_t t_ns, uint64_t phase) {
  std::vector<std::pair<uint64_t, uint64_t>> ending;  // (id, key) of its heaps, in id order
  // Its heaps start inside it.
  for (auto it = open_by_start_.lower_bound(address);
       it != open_by_start_.end() && it->first - address < a.bytes; ++it) {
    const Heap& h = heaps_.at(it->second);
    if (h.segment && h.allocation == address) ending.emplace_back(h.id, it->second);
  }
  std::sort(ending.begin(), ending.end());
  for (const auto& [id, key] : ending) {
    open_ids_.erase(id);
    close(key, t_ns, phase, true);
  }
  segment_heaps_.erase(address);
  devices_.get(a.device).heap_segment_end(address, a, t_ns, phase, true);
}

void NvtxHeaps::add_leaks(std::map<int, std::pair<SiteAggregates, ClassAggregates>>& leaks) const {
  for (const auto& [address, region] : regions_) {
    if (region.a.segment_id == 0) continue;
    auto& [sites, classes] = leaks[region.a.device];
    sites[region.a.site].add(region.a.bytes);
    classes[size_class(region.a.bytes)].add(region.a.bytes);
  }
}

std::vector<NvtxHeapRow> NvtxHeaps::rows(int device, const Attribution& strings) const {
  std::vector<NvtxHeapRow> rows;
  for (const auto& [key, h] : heaps_) {
    if (h.device != device || !h.listed) continue;
    NvtxHeapRow row = h.row;
    row.domain = h.domain != 0 ? strings.string_or_id(h.domain) : "";
    row.closed = !h.open;
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace gpumem::analyzer
