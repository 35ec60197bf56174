#include "device_state.h"

#include "gpumem/trace/format.h"

namespace gpumem::analyzer {

DeviceState::DeviceState(int device, const AnalysisOptions& options)
    : device_(device), options_(options), timeline_(options.max_points) {}

void DeviceState::take_peak_snapshot() {
  snapshot_pending_ = false;
  peak_sites_.clear();
  for (const auto& [site, agg] : live_by_site_)
    if (agg.count != 0) peak_sites_.emplace(site, agg);
  for (int k = 0; k < kSizeClasses; ++k) {
    peak_classes_[k].count =
        histogram_[k].count - freed_by_class_[k].count + resized_by_class_[k].count;
    peak_classes_[k].bytes =
        histogram_[k].bytes - freed_by_class_[k].bytes + resized_by_class_[k].bytes;
  }
}

std::vector<GroupRow> DeviceState::live_rows(bool by_site) const {
  if (by_site) return rows_by_site(live_by_site_);
  ClassAggregates live{};
  for (int k = 0; k < kSizeClasses; ++k) {
    live[k].count = histogram_[k].count - freed_by_class_[k].count + resized_by_class_[k].count;
    live[k].bytes = histogram_[k].bytes - freed_by_class_[k].bytes + resized_by_class_[k].bytes;
  }
  return rows_by_class(live);
}

// The live set itself is copied later, by take_peak_snapshot(): see peak_sites_. `allocated` is
// passed in: plain_run() holds it in a register meanwhile.
void DeviceState::new_peak(int64_t t_ns, uint64_t phase, uint64_t allocated, uint64_t reserved) {
  has_peak_ = true;
  snapshot_pending_ = true;
  peak_allocated_ = allocated;
  peak_t_ = t_ns;
  peak_phase_ = phase;
  reserved_at_peak_ = reserved;
  frag_at_peak_ = fragmentation_;
  free_at_peak_ = segments_.total_free();
  largest_at_peak_ = segments_.largest_free();
}

void DeviceState::unfree(uint64_t address, LiveAlloc& a, int64_t free_t_ns, int64_t t_ns,
                         uint64_t phase) {
  // As alloc(): more bytes are a new peak anyway (unless they wrap the sum).
  if (a.bytes == 0 || wraps(allocated_, a.bytes)) snapshot_if_pending();
  --counts_.free;
  if (span_ns(a.t_ns, free_t_ns) < static_cast<int64_t>(options_.short_lived_ns)) --short_lived_;
  freed_by_class_[size_class(a.bytes)].remove(a.bytes);
  // Back into its pool segment when it had one and the segment is still reserved.
  const bool pooled = a.segment_id != 0;
  a.segment_id = 0;
  if (pooled) {
    a.segment_id = segments_.take(address, a.bytes);
    segments_changed(t_ns);
  }
  Running n = running();
  add_live(n, a.bytes, site_aggregate(a.site), a.segment_id == 0, site_series_);
  after_change(n, t_ns, phase, site_series_);
  store(n);
}

void DeviceState::segment_reserve(uint64_t address, uint64_t bytes, bool granule, int64_t t_ns,
                                  uint64_t phase) {
  ++counts_.segment_reserve;
  has_granules_ |= granule;
  if (segments_.reserve(address, bytes, granule) != 0) segment_bytes_ += bytes;
  segments_changed(t_ns);
  after_change(t_ns, phase);
}

void DeviceState::segment_release(uint64_t address, uint64_t bytes, bool granule, int64_t t_ns,
                                  uint64_t phase) {
  ++counts_.segment_release;
  uint64_t used = 0;
  if (granule ? segments_.release_part(address, bytes, &used)
                        : segments_.release(address, &bytes, &used)) {
    segment_bytes_ -= bytes;
    // Allocations still inside a released segment now hold their memory by themselves; their
    // free will find the segment gone and take them out of outside_bytes_.
    outside_bytes_ += used;
  }
  segments_changed(t_ns);
  after_change(t_ns, phase);
}

bool DeviceState::heap_segment_begin(uint64_t address, LiveAlloc& a, int64_t t_ns, uint64_t phase) {
  if (a.bytes == 0 || a.segment_id != 0) return false;
  const uint64_t id = segments_.reserve(address, a.bytes);
  if (id == 0) return false;
  snapshot_if_pending();  // allocated goes down: the state before may be the peak
  a.segment_id = kNvtxHeapSegment | id;
  segment_bytes_ += a.bytes;
  segments_changed(t_ns);
  Running n = running();
  n.allocated -= a.bytes;
  n.outside -= a.bytes;
  Aggregate& site = site_aggregate(a.site);
  site.remove(a.bytes);
  if (site_series_) sites_.changed(site, 0 - a.bytes);
  freed_by_class_[size_class(a.bytes)].add(a.bytes);
  after_change(n, t_ns, phase, site_series_);
  store(n);
  return true;
}

void DeviceState::heap_segment_end(uint64_t address, LiveAlloc& a, int64_t t_ns, uint64_t phase,
                                   bool then_free) {
  // The allocation is counted again: allocated only goes up, unless the sum wraps (as alloc()).
  if (then_free || wraps(allocated_, a.bytes)) snapshot_if_pending();
  uint64_t bytes = 0, used = 0;
  // Gone already when a pool's segment_release named the same address (a corrupt trace): then
  // the allocation holds its memory by itself again, as below.
  if (segments_.release(address, &bytes, &used)) {
    segment_bytes_ -= bytes;
    outside_bytes_ += used;  // regions still inside (none: NvtxHeaps frees them first)
  }
  a.segment_id = 0;
  segments_changed(t_ns);
  Running n = running();
  n.allocated += a.bytes;
  n.outside += a.bytes;
  Aggregate& site = site_aggregate(a.site);
  site.add(a.bytes);
  if (site_series_) sites_.changed(site, a.bytes);
  freed_by_class_[size_class(a.bytes)].remove(a.bytes);
  if (then_free) {
    count_free(n, a.bytes, a.t_ns, site, t_ns, site_series_);
    n.outside -= a.bytes;
  }
  after_change(n, t_ns, phase, site_series_);
  store(n);
}

bool DeviceState::region_alloc(uint64_t address, LiveAlloc& r, uint64_t phase) {
  const uint64_t id = segments_.take(address, r.bytes);
  if (id == 0) return false;
  if (r.site != 0 && !has_sites_) start_site_series();
  r.segment_id = id;
  segments_changed(r.t_ns);
  Running n = running();
  count_alloc(n, r.bytes, site_aggregate(r.site), false, r.t_ns, phase, site_series_);
  store(n);
  return true;
}

bool DeviceState::region_resize(uint64_t address, LiveAlloc& r, uint64_t bytes, int64_t t_ns,
                                uint64_t phase) {
  const uint64_t old = r.bytes;
  if (bytes == 0 || r.segment_id == 0) return false;
  if (bytes == old) return true;
  if (bytes > old) {
    // The bytes after the region, in its own segment (extents never span two).
    const uint64_t id = segments_.take(address + old, bytes - old);
    if (id != r.segment_id) {
      if (id != 0) segments_.give_back(address + old, bytes - old, id);
      return false;
    }
    if (wraps(allocated_, bytes - old)) snapshot_if_pending();
  } else {
    snapshot_if_pending();  // allocated goes down
    segments_.give_back(address + bytes, old - bytes, r.segment_id);
  }
  segments_changed(t_ns);
  Running n = running();
  n.allocated += bytes - old;  // modulo 2^64: either way
  Aggregate& site = site_aggregate(r.site);
  site.bytes += bytes - old;
  if (site_series_) sites_.changed(site, bytes - old);
  resized_by_class_[size_class(old)].remove(old);
  resized_by_class_[size_class(bytes)].add(bytes);
  r.bytes = bytes;
  after_change(n, t_ns, phase, site_series_);
  store(n);
  return true;
}

void DeviceState::report(DeviceReport* out, bool grouped_by_site, double duration_s) {
  snapshot_if_pending();
  out->device = device_;
  Peak& p = out->peak;
  p.allocated_bytes = peak_allocated_;
  p.time_ns = peak_t_;
  p.reserved_at_peak_bytes = reserved_at_peak_;
  p.reserved_bytes = peak_reserved_;
  p.reserved_time_ns = peak_reserved_t_;
  p.grouped_by = grouped_by_site ? "site" : "size_class";
  p.live_at_peak_by_size_class = rows_by_class(peak_classes_);
  p.live_at_peak = grouped_by_site ? rows_by_site(peak_sites_) : p.live_at_peak_by_size_class;

  out->final.allocated_bytes = allocated_;
  out->final.reserved_bytes = reserved();
  out->counts = counts_;
  uint64_t bytes_total = 0;
  for (const Aggregate& k : histogram_) {
    out->counts.alloc += k.count;
    bytes_total += k.bytes;
  }

  Fragmentation& f = out->fragmentation;
  f.external_at_peak = frag_at_peak_;
  f.external_max = frag_max_;
  f.external_max_time_ns = frag_max_t_;
  f.reserved_unallocated_at_peak_bytes = reserved_at_peak_ - peak_allocated_;
  if (peak_reserved_ > 0)
    f.utilization = static_cast<double>(peak_allocated_) / static_cast<double>(peak_reserved_);
  f.free_in_segments_at_peak_bytes = free_at_peak_;
  f.largest_free_block_at_peak_bytes = largest_at_peak_;

  out->size_histogram = histogram_rows(histogram_);
  Churn& c = out->churn;
  c.duration_s = duration_s;
  c.allocs_per_second = duration_s > 0 ? static_cast<double>(out->counts.alloc) / duration_s : 0;
  c.short_lived_threshold_ns = options_.short_lived_ns;
  c.freed = counts_.free;
  c.short_lived = short_lived_;
  c.short_lived_share =
      counts_.free > 0 ? static_cast<double>(short_lived_) / static_cast<double>(counts_.free) : 0;
  c.allocated_bytes_total = bytes_total;
  out->timeline = timeline_.points();
  if (site_series_) sites_.flush();
}

std::optional<SiteTimeline> DeviceState::site_timeline(
    const DeviceReport& report, const std::function<std::string(uint32_t)>& python_line_of,
    size_t max_series) const {
  return build_site_timeline(site_series_ ? &sites_ : nullptr, timeline_.point_details(),
                             report.timeline, report.peak, python_line_of, max_series);
}

}  // namespace gpumem::analyzer
