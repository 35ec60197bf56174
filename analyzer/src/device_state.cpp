#include "device_state.h"
#include "time_span.h"

#include "gpumem/trace_format.h"

namespace gpumem::analyzer {

DeviceState::DeviceState(int device, const AnalysisOptions& options)
    : device_(device), options_(options), timeline_(options.max_points) {}

void DeviceState::snapshot_if_pending() {
  if (!snapshot_pending_) return;
  snapshot_pending_ = false;
  peak_sites_.clear();
  for (const auto& [site, agg] : live_by_site_)
    if (agg.count != 0) peak_sites_.emplace(site, agg);
  peak_classes_ = live_by_class_;
}

void DeviceState::after_change(int64_t t_ns, uint64_t phase) {
  uint64_t res = reserved();
  double frag = segments_.external_fragmentation();
  if (allocated_ > peak_allocated_ || (!has_peak_ && allocated_ > 0)) {
    has_peak_ = true;
    snapshot_pending_ = true;
    peak_allocated_ = allocated_;
    peak_t_ = t_ns;
    peak_phase_ = phase;
    reserved_at_peak_ = res;
    frag_at_peak_ = frag;
    free_at_peak_ = segments_.total_free();
    largest_at_peak_ = segments_.largest_free();
  }
  if (res > peak_reserved_) {
    peak_reserved_ = res;
    peak_reserved_t_ = t_ns;
    peak_reserved_phase_ = phase;
  }
  if (frag > frag_max_) {
    frag_max_ = frag;
    frag_max_t_ = t_ns;
  }
  timeline_.add(t_ns, allocated_, res, frag);
}

Aggregate& DeviceState::site_aggregate(uint32_t site) {
  // Entries are never erased and unordered_map nodes never move: the pointer stays valid.
  if (last_site_agg_ == nullptr || last_site_ != site) {
    last_site_ = site;
    last_site_agg_ = &live_by_site_[site];
  }
  return *last_site_agg_;
}

void DeviceState::alloc(uint64_t address, LiveAlloc& a, bool pooled,
                        uint64_t phase) {
  // A zero-byte allocation changes the live set without raising the total: not a new peak.
  if (a.bytes == 0) snapshot_if_pending();
  ++counts_.alloc;
  histogram_[size_class(a.bytes)].add(a.bytes);
  bytes_total_ += a.bytes;
  allocated_ += a.bytes;
  site_aggregate(a.site).add(a.bytes);
  live_by_class_[size_class(a.bytes)].add(a.bytes);
  a.segment_id = pooled ? segments_.take(address, a.bytes) : 0;
  if (a.segment_id == 0) outside_bytes_ += a.bytes;
  after_change(a.t_ns, phase);
}

void DeviceState::free(uint64_t address, const LiveAlloc& a, int64_t t_ns, uint64_t phase) {
  snapshot_if_pending();
  ++counts_.free;
  ++freed_;
  if (span_ns(a.t_ns, t_ns) < static_cast<int64_t>(options_.short_lived_ns)) ++short_lived_;
  allocated_ -= a.bytes;
  // Emptied sites stay (count 0, skipped by every reader of the map): erasing and re-inserting
  // the same site on every alloc/free pair would allocate a node each time. Sites are interned
  // call stacks, so the map stays as small as the set of stacks.
  site_aggregate(a.site).remove(a.bytes);
  live_by_class_[size_class(a.bytes)].remove(a.bytes);
  if (a.segment_id == 0 || !segments_.give_back(address, a.bytes, a.segment_id))
    outside_bytes_ -= a.bytes;
  after_change(t_ns, phase);
}

void DeviceState::segment_reserve(uint64_t address, uint64_t bytes, int64_t t_ns,
                                  uint64_t phase) {
  ++counts_.segment_reserve;
  if (segments_.reserve(address, bytes) != 0) segment_bytes_ += bytes;
  after_change(t_ns, phase);
}

void DeviceState::segment_release(uint64_t address, int64_t t_ns, uint64_t phase) {
  ++counts_.segment_release;
  uint64_t bytes = 0, used = 0;
  if (segments_.release(address, &bytes, &used)) {
    segment_bytes_ -= bytes;
    // Allocations still inside a released segment now hold their memory by themselves; their
    // free will find the segment gone and take them out of outside_bytes_.
    outside_bytes_ += used;
  }
  after_change(t_ns, phase);
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
  c.allocs_per_second = duration_s > 0 ? static_cast<double>(counts_.alloc) / duration_s : 0;
  c.short_lived_threshold_ns = options_.short_lived_ns;
  c.freed = freed_;
  c.short_lived = short_lived_;
  c.short_lived_share =
      freed_ > 0 ? static_cast<double>(short_lived_) / static_cast<double>(freed_) : 0;
  c.allocated_bytes_total = bytes_total_;
  out->timeline = timeline_.points();
}

}  // namespace gpumem::analyzer
