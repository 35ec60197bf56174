// The replayed state of one device in one process: what is allocated and reserved now, the
// pool's segments, and every running metric (peaks, fragmentation, histogram, churn, timeline).
// The trace level (analysis.cpp) owns the address -> allocation map (live_allocations.h) and
// calls in here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "address_map.h"
#include "budget.h"
#include "gpumem/analyzer/analysis.h"
#include "gpumem/analyzer/model.h"
#include "gpumem/trace/format.h"
#include "live_allocations.h"
#include "metrics.h"
#include "segment_space.h"
#include "site_timeline.h"
#include "time_span.h"
#include "timeline.h"

namespace gpumem::analyzer {

// What plain_run() consumed, for the trace level's own counters.
struct PlainRunTotals {
  int64_t first_ns = INT64_MAX;
  int64_t last_ns = INT64_MIN;
  uint32_t sites = 0;         // OR of the records' sites
  int64_t freed_entries = 0;  // change in the address map's freed entries
};

class DeviceState {
 public:
  DeviceState(int device, const AnalysisOptions& options);

  // `phase` is the string id of the current phase (0 = none), kept for the peak. alloc and free
  // run once per event: they are inline, below.
  inline void alloc(uint64_t address, LiveAlloc& a, bool pooled, uint64_t phase);
  inline void free(uint64_t address, const LiveAlloc& a, int64_t t_ns, uint64_t phase);
  // Undoes free() of `a` (made at free_t_ns) because the real free failed (Op::free_failed): the
  // allocation is live again, neither a new allocation nor a free in any count.
  void unfree(uint64_t address, LiveAlloc& a, int64_t free_t_ns, int64_t t_ns, uint64_t phase);
  // The fast path: replays records from the first while each is a plain or pooled allocation or
  // free of this device (not pinned host memory, not zero bytes, not an NVTX heap's, freeing a
  // live allocation of this device of a non-zero size) and no phase is open; stops at the first
  // other record without touching it. Nearly every record of a trace is such, and here the
  // running numbers stay in registers for the whole run. It counts through the same
  // count_alloc()/count_free() as alloc()/free(); analyzer.Batch.* compares the reports.
  // Once the device's allocations have call sites, another copy of the loop runs (one without
  // them pays nothing for it), and a third where timeline_by_site is not kept (gpumem top).
  size_t plain_run(const trace::Record* records, size_t count, uint64_t clock_base,
                   AddressMap<LiveAlloc>& live, PlainRunTotals* totals) {
    if (!has_sites_) return plain_run_impl<false, false>(records, count, clock_base, live, totals);
    return site_series_ ? plain_run_impl<true, true>(records, count, clock_base, live, totals)
                        : plain_run_impl<true, false>(records, count, clock_base, live, totals);
  }
  // `granule`: the segment is physical memory mapped into a virtual range (the expandable pool's,
  // MemKind::physical), joined with adjacent granules into one segment (segment_space.h), of
  // which a release may give back any part (`bytes`, the record's).
  void segment_reserve(uint64_t address, uint64_t bytes, bool granule, int64_t t_ns,
                       uint64_t phase);
  void segment_release(uint64_t address, uint64_t bytes, bool granule, int64_t t_ns,
                       uint64_t phase);
  // Whether a granule segment was ever reserved: the pool's own largest-free figure then counts
  // its unmapped address space, and free_in_segments() is the measure (docs/report-schema.md).
  bool has_granules() const { return has_granules_; }
  // The process belongs to a shared budget: every change of reserved is logged (budget.h).
  void keep_reserved_log() {
    if (!reserved_log_) reserved_log_ = std::make_unique<ReservedLog>();
  }
  ReservedLog* reserved_log() { return reserved_log_.get(); }
  // NVTX heaps (nvtx_heaps.h), the growth pool's shape inside a program's own pool. The live
  // allocation `a` at `address` (outside any segment) becomes a segment of its size: still
  // reserved, no longer allocated; a.segment_id = kNvtxHeapSegment | the segment's id. False
  // (nothing changes) when it has no bytes, is in a segment already or overlaps one.
  bool heap_segment_begin(uint64_t address, LiveAlloc& a, int64_t t_ns, uint64_t phase);
  // Undoes heap_segment_begin once the heap's regions are freed: `a` is a plain allocation
  // again; with `then_free`, its free (Op::free) is counted in the same step, so the memory is
  // never allocated twice at one instant.
  void heap_segment_end(uint64_t address, LiveAlloc& a, int64_t t_ns, uint64_t phase,
                        bool then_free);
  // A region: a pooled allocation of r.bytes at `address` in a heap's segment (counted as
  // alloc() counts a pooled one). False (nothing changes) when those bytes are not free there.
  bool region_alloc(uint64_t address, LiveAlloc& r, uint64_t phase);
  // The region `r` at `address` now has `bytes` (> 0): allocated and its site change by the
  // difference, not the allocation counts. False (nothing changes) when it would grow into bytes
  // that are not free in its segment. A region's free is free().
  bool region_resize(uint64_t address, LiveAlloc& r, uint64_t bytes, int64_t t_ns, uint64_t phase);
  void count_failed() { ++counts_.alloc_failed; }
  void count_free_unknown() { ++counts_.free_unknown; }
  void count_double_free() { ++counts_.double_free; }

  uint64_t allocated() const { return allocated_; }
  // What is live now, by site (count > 0 only) and by size class (rows largest first), and the
  // free space inside pool segments: for the OOM forensics (docs/oom.md).
  std::vector<GroupRow> live_rows(bool by_site) const;
  uint64_t free_in_segments() const { return segments_.total_free(); }
  uint64_t largest_free_in_segments() { return segments_.largest_free(); }
  uint64_t reserved() const { return segment_bytes_ + outside_bytes_; }
  int device() const { return device_; }

  // Fills everything but identity, phases, leaks and frames (the trace level knows those).
  // `grouped_by_site` picks how live_at_peak is grouped. Phase ids are left in peak_phase_id().
  void report(DeviceReport* out, bool grouped_by_site, double duration_s);
  uint64_t peak_phase_id() const { return peak_phase_; }
  // Live bytes over time by site, on the timeline of `report` (filled by report(), with
  // live_at_peak merged by Python line: site_timeline.h). Nothing when no allocation had a site.
  std::optional<SiteTimeline> site_timeline(
      const DeviceReport& report, const std::function<std::string(uint32_t)>& python_line_of,
      size_t max_series) const;
  uint64_t peak_reserved_phase_id() const { return peak_reserved_phase_; }

 private:
  // The numbers every allocation and free changes, copied out of the members for as long as
  // the caller counts: one record (alloc(), free()) or a whole run (plain_run(), where they then
  // stay in registers; stores to the aggregates could alias members, which would be reloaded
  // after each). Nothing called meanwhile reads allocated_ or outside_bytes_.
  struct Running {
    uint64_t allocated;
    uint64_t outside;  // outside_bytes_
    uint64_t peak;     // peak_allocated_ (written by new_peak(); only read here)
  };
  Running running() const { return {allocated_, outside_bytes_, peak_allocated_}; }
  void store(const Running& n) {
    allocated_ = n.allocated;
    outside_bytes_ = n.outside;
  }

  // What one allocation or free counts, written once for both paths. `sites` is site_series_
  // as the caller knows it: a constant in plain_run(), so each copy of its loop keeps only its
  // half; `site` is the record's site aggregate. Forced inline (see timeline_add()).
  // An allocation, once its place (in a pool segment or outside) is known.
  [[gnu::always_inline]] void count_alloc(Running& n, uint64_t bytes, Aggregate& site, bool outside,
                                          int64_t t_ns, uint64_t phase, bool sites) {
    if (wraps(n.allocated, bytes)) [[unlikely]]
      snapshot_if_pending();
    histogram_[size_class(bytes)].add(bytes);  // counts.alloc and bytes in all are its sums
    add_live(n, bytes, site, outside, sites);
    after_change(n, t_ns, phase, sites);
  }
  // The live numbers of an allocation or of one made live again (unfree()).
  [[gnu::always_inline]] void add_live(Running& n, uint64_t bytes, Aggregate& site, bool outside,
                                       bool sites) {
    n.allocated += bytes;
    site.add(bytes);
    if (sites) sites_.changed(site, bytes);
    if (outside) n.outside += bytes;
  }
  // A free, before the segment (if any) gets the bytes back.
  [[gnu::always_inline]] void count_free(Running& n, uint64_t bytes, int64_t alloc_t_ns,
                                         Aggregate& site, int64_t t_ns, bool sites) {
    snapshot_if_pending();
    ++counts_.free;
    if (span_ns(alloc_t_ns, t_ns) < static_cast<int64_t>(options_.short_lived_ns)) ++short_lived_;
    n.allocated -= bytes;
    // Emptied sites stay (count 0, skipped by every reader of the map): erasing and re-inserting
    // the same site on every alloc/free pair would allocate a node each time. Sites are interned
    // call stacks, so the map stays as small as the set of stacks.
    site.remove(bytes);
    if (sites) sites_.changed(site, 0 - bytes);
    freed_by_class_[size_class(bytes)].add(bytes);
  }
  // The end of a free outside any pool segment: allocated and reserved only went down and the
  // segments did not change, so no maximum can be new; only the timeline may be in a new box.
  // Zero bytes left allocated as it was: then an earlier time (records out of order) still
  // moves the box's time, so the full add.
  [[gnu::always_inline]] void count_free_outside(Running& n, uint64_t bytes, int64_t t_ns,
                                                 bool sites) {
    n.outside -= bytes;
    const uint64_t res = segment_bytes_ + n.outside;
    if (reserved_log_) [[unlikely]]
      reserved_log_->add(t_ns, res);
    if (bytes == 0) [[unlikely]]
      timeline_add(t_ns, n.allocated, res, sites);
    else if (sites)
      sites_.after(timeline_.add_lower_tracked(t_ns, n.allocated, res, fragmentation_), timeline_);
    else
      timeline_.add_lower(t_ns, n.allocated, res, fragmentation_);
  }
  [[gnu::always_inline]] void after_change(Running& n, int64_t t_ns, uint64_t phase, bool sites) {
    const uint64_t res = segment_bytes_ + n.outside;
    if (reserved_log_) [[unlikely]]
      reserved_log_->add(t_ns, res);
    if (n.allocated > n.peak || (!has_peak_ && n.allocated > 0)) {
      new_peak(t_ns, phase, n.allocated, res);
      n.peak = n.allocated;
    }
    if (res > peak_reserved_) {
      peak_reserved_ = res;
      peak_reserved_t_ = t_ns;
      peak_reserved_phase_ = phase;
    }
    timeline_add(t_ns, n.allocated, res, sites);
  }
  // The same after a segment changed.
  void after_change(int64_t t_ns, uint64_t phase) {
    Running n = running();
    after_change(n, t_ns, phase, site_series_);
  }

  // kSites: allocations have call sites (each record's site is looked up); kSeries: the live
  // bytes by site are logged for timeline_by_site (site_series_).
  template <bool kSites, bool kSeries>
  inline size_t plain_run_impl(const trace::Record* records, size_t count, uint64_t clock_base,
                               AddressMap<LiveAlloc>& live, PlainRunTotals* totals);
  // The first allocation with a call site: from now on the live bytes by site are logged for
  // timeline_by_site, unless the report keeps none (AnalysisOptions::site_series: gpumem top).
  // Until now everything live was site 0's (see SiteCapture::breakdown).
  [[gnu::cold, gnu::noinline]] void start_site_series() {
    has_sites_ = true;
    if (!options_.site_series) return;
    site_series_ = true;
    sites_.start();
  }
  // Forced inline, so that alloc() and free() stay small enough to inline into feed(Event),
  // which is not flattened as feed(Batch) is.
  [[gnu::always_inline]] void timeline_add(int64_t t_ns, uint64_t allocated, uint64_t reserved,
                                           bool sites) {
    if (sites)
      sites_.after(timeline_.add_tracked(t_ns, allocated, reserved, fragmentation_), timeline_);
    else
      timeline_.add(t_ns, allocated, reserved, fragmentation_);
  }
  // The live set at the peak is copied lazily, at the next change that may lower allocated. An
  // allocation only raises it, unless a damaged trace's sizes wrap the sum past 2^64: then the
  // copy is taken first, as a free takes it.
  static bool wraps(uint64_t allocated, uint64_t bytes) { return allocated + bytes < bytes; }
  void snapshot_if_pending() {
    if (snapshot_pending_) take_peak_snapshot();
  }
  [[gnu::cold]] void take_peak_snapshot();
  [[gnu::cold]] void new_peak(int64_t t_ns, uint64_t phase, uint64_t allocated, uint64_t reserved);
  // The segment space changed: fragmentation is recomputed (and its maximum kept) only then.
  void segments_changed(int64_t t_ns) {
    fragmentation_ = segments_.external_fragmentation();
    if (fragmentation_ > frag_max_) {
      frag_max_ = fragmentation_;
      frag_max_t_ = t_ns;
    }
  }
  Aggregate& site_aggregate(uint32_t site) {
    if (last_site_agg_ == nullptr || last_site_ != site) [[unlikely]] {
      Aggregate* known = site < site_index_.size() ? site_index_[site] : nullptr;
      if (known == nullptr) [[unlikely]]
        switch_site(site);
      else
        last_site_ = site, last_site_agg_ = known;
    }
    return *last_site_agg_;
  }
  // Entries are never erased and unordered_map nodes never move: the pointer stays valid.
  [[gnu::noinline, gnu::cold]] void switch_site(uint32_t site) {
    last_site_ = site;
    auto [it, inserted] = live_by_site_.try_emplace(site);
    if (inserted) sites_.add_site(site, it->second);
    last_site_agg_ = &it->second;
    if (site < kSiteIndexLimit) {
      if (site >= site_index_.size()) site_index_.resize(site + 1, nullptr);
      site_index_[site] = last_site_agg_;
    }
  }

  int device_;
  const AnalysisOptions& options_;
  bool has_granules_ = false;
  std::unique_ptr<ReservedLog> reserved_log_;  // only in a shared budget's process
  uint64_t allocated_ = 0;
  uint64_t segment_bytes_ = 0;  // live pool segments
  // Live allocations not inside a pool segment (reserved by themselves).
  uint64_t outside_bytes_ = 0;
  SegmentSpace segments_;
  double fragmentation_ = 0;     // segments_.external_fragmentation(), kept up to date
  SiteAggregates live_by_site_;  // emptied sites stay, with count 0
  uint32_t last_site_ = 0;
  Aggregate* last_site_agg_ = nullptr;  // &live_by_site_[last_site_]
  // &live_by_site_[site] by site, for the sites below kSiteIndexLimit seen so far (stack ids are
  // numbered from 1 by the writer): a record of another site than the last costs a load, not
  // a hash lookup.
  static constexpr uint32_t kSiteIndexLimit = 1 << 16;
  std::vector<Aggregate*> site_index_;
  // What is live by size class is histogram_ minus freed_by_class_ plus resized_by_class_
  // (take_peak_snapshot): an allocation then updates one class array, not two. An NVTX heap's
  // allocation counts as freed while it is a segment; resized_by_class_ moves a resized region
  // from the class it was allocated in to that of its new size (modulo 2^64 per class).
  ClassAggregates freed_by_class_{};
  ClassAggregates resized_by_class_{};

  // Peak allocated, and the live set at that instant. The live set is copied lazily: on the
  // first change after a new peak that is not itself a new peak (the state just before it is
  // the peak state), so a steadily growing run copies nothing until it turns.
  bool has_peak_ = false;
  bool snapshot_pending_ = false;
  uint64_t peak_allocated_ = 0;
  int64_t peak_t_ = 0;
  uint64_t peak_phase_ = 0;
  uint64_t reserved_at_peak_ = 0;
  double frag_at_peak_ = 0;
  uint64_t free_at_peak_ = 0;
  uint64_t largest_at_peak_ = 0;
  SiteAggregates peak_sites_;
  ClassAggregates peak_classes_{};

  uint64_t peak_reserved_ = 0;
  int64_t peak_reserved_t_ = 0;
  uint64_t peak_reserved_phase_ = 0;
  double frag_max_ = 0;
  int64_t frag_max_t_ = 0;

  Counts counts_;
  ClassAggregates histogram_{};
  uint64_t short_lived_ = 0;
  MaxBoxTimeline timeline_;
  bool has_sites_ = false;    // an allocation had a call site
  bool site_series_ = false;  // ... and timeline_by_site is kept: sites_ logs the live bytes
  SiteCapture sites_;
};

void DeviceState::alloc(uint64_t address, LiveAlloc& a, bool pooled, uint64_t phase) {
  // A zero-byte allocation changes the live set without raising the total: not a new peak.
  if (a.bytes == 0) snapshot_if_pending();
  if (a.site != 0 && !has_sites_) start_site_series();
  a.segment_id = 0;
  if (pooled) {
    a.segment_id = segments_.take(address, a.bytes);
    segments_changed(a.t_ns);
  }
  Running n = running();
  count_alloc(n, a.bytes, site_aggregate(a.site), a.segment_id == 0, a.t_ns, phase, site_series_);
  store(n);
}

void DeviceState::free(uint64_t address, const LiveAlloc& a, int64_t t_ns, uint64_t phase) {
  Running n = running();
  count_free(n, a.bytes, a.t_ns, site_aggregate(a.site), t_ns, site_series_);
  if (a.segment_id == 0) {
    count_free_outside(n, a.bytes, t_ns, site_series_);
  } else {
    n.outside -= a.bytes - segments_.give_back(address, a.bytes, a.segment_id);
    segments_changed(t_ns);
    after_change(n, t_ns, phase, site_series_);
  }
  store(n);
}

template <bool kSites, bool kSeries>
size_t DeviceState::plain_run_impl(const trace::Record* records, size_t count, uint64_t clock_base,
                                   AddressMap<LiveAlloc>& live, PlainRunTotals* totals) {
  constexpr uint16_t kAlloc = static_cast<uint16_t>(trace::Op::alloc);
  constexpr uint16_t kFree = static_cast<uint16_t>(trace::Op::free);
  constexpr uint8_t kPinned = static_cast<uint8_t>(trace::MemKind::pinned_host);
  constexpr size_t kPrefetchAhead = 8;  // records; 4 and 16 measured no better
  Running n = running();
  int64_t first = totals->first_ns, last = totals->last_ns;
  uint32_t sites = totals->sites;
  int64_t freed_change = 0;
  size_t i = 0;
  for (; i < count; ++i) {
    const trace::Record& r = records[i];
    // The slot of an allocation made some records on is rarely still in cache: start its load.
    if (i + kPrefetchAhead < count) live.prefetch(records[i + kPrefetchAhead].address);
    const int64_t t = static_cast<int64_t>(r.t_ns - clock_base);
    if (r.op == kAlloc) {
      // Without sites so far every allocation is site 0's, the cached one: another site (the
      // first allocation with a call site) leaves, and alloc() starts the series. The test is
      // the one site_aggregate() makes anyway, so a trace without sites pays nothing for it.
      const uint64_t bytes = r.bytes;
      if (r.device != device_ || (r.flags & trace::kFlagKindMask) == kPinned ||
          (r.flags & trace::kFlagKindMask) == static_cast<uint16_t>(trace::MemKind::imported) ||
          bytes == 0 || (!kSites && (r.site != last_site_ || last_site_agg_ == nullptr)))
        break;
      bool inserted = false;
      LiveAlloc& a = live.find_or_insert(r.address, &inserted);
      if (!inserted && !a.freed) break;  // the previous owner's free was lost: alloc() closes it
      if (!inserted) --freed_change;
      // In a pool segment as alloc() places it: its free extents change first.
      uint64_t segment = 0;
      if ((r.flags & trace::kFlagPooled) != 0) {
        segment = segments_.take(r.address, bytes);
        segments_changed(t);
      }
      a = {bytes,  t,        segment,
           r.site, r.device, static_cast<uint8_t>(r.flags & trace::kFlagKindMask),
           false};
      count_alloc(n, bytes, kSites ? site_aggregate(r.site) : *last_site_agg_, segment == 0, t, 0,
                  kSeries);
    } else if (r.op == kFree) {
      // The record names its allocation's device (trace-format.md); one that names another (a
      // damaged record, maybe an impossible device, which feed() skips) takes the general path.
      LiveAlloc* a = r.address != 0 && r.device == device_ ? live.find(r.address) : nullptr;
      if (a == nullptr || a->freed || a->device != device_ || a->kind == kPinned ||
          a->kind == static_cast<uint8_t>(trace::MemKind::imported) ||
          a->segment_id >= kNvtxHeapSegment || a->bytes == 0)
        break;
      const uint64_t bytes = a->bytes;
      count_free(n, bytes, a->t_ns, site_aggregate(a->site), t, kSeries);
      if (a->segment_id == 0) {
        count_free_outside(n, bytes, t, kSeries);
      } else {  // as free() does
        n.outside -= bytes - segments_.give_back(r.address, bytes, a->segment_id);
        segments_changed(t);
        after_change(n, t, 0, kSeries);
      }
      a->freed = true;
      ++freed_change;
    } else {
      break;
    }
    first = std::min(first, t);
    last = std::max(last, t);
    sites |= r.site;
  }
  store(n);
  totals->first_ns = first;
  totals->last_ns = last;
  totals->sites = sites;
  totals->freed_entries += freed_change;
  return i;
}

}  // namespace gpumem::analyzer
