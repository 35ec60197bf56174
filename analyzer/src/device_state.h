// The replayed state of one device in one process: what is allocated and reserved now, the
// pool's segments, and every running metric (peaks, fragmentation, histogram, churn, timeline).
// The trace-level code (analysis.cpp) owns the address -> allocation map and calls in here.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "address_map.h"
#include "gpumem/analyzer/analysis.h"
#include "gpumem/analyzer/model.h"
#include "gpumem/trace/format.h"
#include "metrics.h"
#include "segment_space.h"
#include "site_timeline.h"
#include "time_span.h"
#include "timeline.h"

namespace gpumem::analyzer {

// One live device allocation, as the trace-level map keeps it.
struct LiveAlloc {
  uint64_t bytes = 0;
  int64_t t_ns = 0;
  uint64_t segment_id = 0;  // SegmentSpace id when it lives inside a pool segment, else 0
  uint32_t site = 0;
  int16_t device = -1;
  uint8_t kind = 0;    // trace::MemKind
  bool freed = false;  // the map keeps freed addresses a while, to tell a double free
};

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
  // The fast path: replays records from the first while each is a plain allocation or free of
  // this device (outside any pool segment, not pinned host memory, not zero bytes, freeing a
  // live allocation of this device of a non-zero size) and no phase is open; stops at the first
  // other record without touching it. Nearly every record of a trace is such, and here the
  // running numbers stay in registers for the whole run. Equivalent to alloc()/free() record by
  // record (analyzer.Batch.* compares the reports).
  // Once the device's allocations have call sites (timeline_by_site is kept), a second copy of
  // the loop runs: one without them pays nothing for it.
  size_t plain_run(const trace::Record* records, size_t count, uint64_t clock_base,
                   AddressMap<LiveAlloc>& live, PlainRunTotals* totals) {
    return site_series_ ? plain_run_impl<true>(records, count, clock_base, live, totals)
                        : plain_run_impl<false>(records, count, clock_base, live, totals);
  }
  void segment_reserve(uint64_t address, uint64_t bytes, int64_t t_ns, uint64_t phase);
  void segment_release(uint64_t address, int64_t t_ns, uint64_t phase);
  void count_failed() { ++counts_.alloc_failed; }
  void count_free_unknown() { ++counts_.free_unknown; }
  void count_double_free() { ++counts_.double_free; }

  uint64_t allocated() const { return allocated_; }
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
  template <bool kSites>
  inline size_t plain_run_impl(const trace::Record* records, size_t count, uint64_t clock_base,
                               AddressMap<LiveAlloc>& live, PlainRunTotals* totals);
  // The first allocation with a call site: from now on the live bytes by site are logged for
  // timeline_by_site. Until now everything live was site 0's (see SiteCapture::breakdown).
  [[gnu::cold, gnu::noinline]] void start_site_series() {
    site_series_ = true;
    sites_.start();
  }
  // Forced inline, so that alloc() and free() stay small enough to inline into feed(Event),
  // which is not flattened as feed(Batch) is.
  [[gnu::always_inline]] void timeline_add(int64_t t_ns, uint64_t allocated, uint64_t reserved) {
    if (site_series_)
      sites_.after(timeline_.add_tracked(t_ns, allocated, reserved, fragmentation_), timeline_);
    else
      timeline_.add(t_ns, allocated, reserved, fragmentation_);
  }
  [[gnu::always_inline]] void site_changed(uint32_t site, uint64_t delta) {
    if (site_series_) sites_.changed(site_aggregate(site), delta);
  }
  void snapshot_if_pending() {
    if (snapshot_pending_) take_peak_snapshot();
  }
  [[gnu::cold]] void take_peak_snapshot();
  inline void after_change(int64_t t_ns, uint64_t phase);
  // After a free outside any pool segment: allocated and reserved only went down and the
  // segments did not change, so no maximum can be new; only the timeline may be in a new box.
  void after_plain_free(int64_t t_ns) { timeline_add(t_ns, allocated_, reserved()); }
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
    if (last_site_agg_ == nullptr || last_site_ != site) switch_site(site);
    return *last_site_agg_;
  }
  // Entries are never erased and unordered_map nodes never move: the pointer stays valid.
  [[gnu::noinline, gnu::cold]] void switch_site(uint32_t site) {
    last_site_ = site;
    auto [it, inserted] = live_by_site_.try_emplace(site);
    if (inserted) sites_.add_site(site, it->second);
    last_site_agg_ = &it->second;
  }

  int device_;
  const AnalysisOptions& options_;
  uint64_t allocated_ = 0;
  uint64_t segment_bytes_ = 0;  // live pool segments
  // Live allocations not inside a pool segment (reserved by themselves).
  uint64_t outside_bytes_ = 0;
  SegmentSpace segments_;
  double fragmentation_ = 0;     // segments_.external_fragmentation(), kept up to date
  SiteAggregates live_by_site_;  // emptied sites stay, with count 0
  uint32_t last_site_ = 0;
  Aggregate* last_site_agg_ = nullptr;  // &live_by_site_[last_site_]
  // What is live by size class is histogram_ minus freed_by_class_ (take_peak_snapshot): an
  // allocation then updates one class array, not two.
  ClassAggregates freed_by_class_{};

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
  bool site_series_ = false;  // an allocation had a call site: sites_ is kept
  SiteCapture sites_;
};

void DeviceState::after_change(int64_t t_ns, uint64_t phase) {
  const uint64_t res = reserved();
  if (allocated_ > peak_allocated_ || (!has_peak_ && allocated_ > 0))
    new_peak(t_ns, phase, allocated_, res);
  if (res > peak_reserved_) {
    peak_reserved_ = res;
    peak_reserved_t_ = t_ns;
    peak_reserved_phase_ = phase;
  }
  timeline_add(t_ns, allocated_, res);
}

void DeviceState::alloc(uint64_t address, LiveAlloc& a, bool pooled, uint64_t phase) {
  // A zero-byte allocation changes the live set without raising the total: not a new peak.
  if (a.bytes == 0) snapshot_if_pending();
  // counts.alloc and the bytes allocated in all are the histogram's sums (report()).
  const int cls = size_class(a.bytes);
  histogram_[cls].add(a.bytes);
  allocated_ += a.bytes;
  if (a.site != 0 && !site_series_) start_site_series();
  site_aggregate(a.site).add(a.bytes);
  site_changed(a.site, a.bytes);
  a.segment_id = 0;
  if (pooled) {
    a.segment_id = segments_.take(address, a.bytes);
    segments_changed(a.t_ns);
  }
  if (a.segment_id == 0) outside_bytes_ += a.bytes;
  after_change(a.t_ns, phase);
}

void DeviceState::free(uint64_t address, const LiveAlloc& a, int64_t t_ns, uint64_t phase) {
  snapshot_if_pending();
  ++counts_.free;
  if (span_ns(a.t_ns, t_ns) < static_cast<int64_t>(options_.short_lived_ns)) ++short_lived_;
  allocated_ -= a.bytes;
  // Emptied sites stay (count 0, skipped by every reader of the map): erasing and re-inserting
  // the same site on every alloc/free pair would allocate a node each time. Sites are interned
  // call stacks, so the map stays as small as the set of stacks.
  site_aggregate(a.site).remove(a.bytes);
  site_changed(a.site, 0 - a.bytes);
  freed_by_class_[size_class(a.bytes)].add(a.bytes);
  if (a.segment_id == 0) {
    outside_bytes_ -= a.bytes;
    after_plain_free(t_ns);
    return;
  }
  if (!segments_.give_back(address, a.bytes, a.segment_id)) outside_bytes_ -= a.bytes;
  segments_changed(t_ns);
  after_change(t_ns, phase);
}

template <bool kSites>
size_t DeviceState::plain_run_impl(const trace::Record* records, size_t count, uint64_t clock_base,
                                   AddressMap<LiveAlloc>& live, PlainRunTotals* totals) {
  constexpr uint16_t kAlloc = static_cast<uint16_t>(trace::Op::alloc);
  constexpr uint16_t kFree = static_cast<uint16_t>(trace::Op::free);
  constexpr uint8_t kPinned = static_cast<uint8_t>(trace::MemKind::pinned_host);
  constexpr size_t kPrefetchAhead = 8;  // records; 4 and 16 measured no better
  // The numbers every record changes, in registers: stores to the aggregates below could alias
  // members, which would then be reloaded after each. The rest stay members (few registers).
  uint64_t allocated = allocated_, outside = outside_bytes_, peak = peak_allocated_;
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
      if (r.device != device_ || (r.flags & trace::kFlagPooled) != 0 ||
          (r.flags & trace::kFlagKindMask) == kPinned || r.bytes == 0 ||
          (!kSites && (r.site != last_site_ || last_site_agg_ == nullptr)))
        break;
      bool inserted = false;
      LiveAlloc& a = live.find_or_insert(r.address, &inserted);
      if (!inserted && !a.freed) break;  // the previous owner's free was lost: alloc() closes it
      if (!inserted) --freed_change;
      a.bytes = r.bytes;
      a.t_ns = t;
      a.segment_id = 0;
      a.site = r.site;
      a.device = r.device;
      a.kind = static_cast<uint8_t>(r.flags & trace::kFlagKindMask);
      a.freed = false;
      const int cls = size_class(r.bytes);
      histogram_[cls].add(r.bytes);
      Aggregate& site = kSites ? site_aggregate(r.site) : *last_site_agg_;
      site.add(r.bytes);
      if constexpr (kSites) sites_.changed(site, r.bytes);
      allocated += r.bytes;
      outside += r.bytes;
      const uint64_t res = segment_bytes_ + outside;
      if (allocated > peak || !has_peak_) {
        new_peak(t, 0, allocated, res);  // no phase is open
        peak = allocated;
      }
      if (res > peak_reserved_) {
        peak_reserved_ = res;
        peak_reserved_t_ = t;
        peak_reserved_phase_ = 0;
      }
      if constexpr (kSites)
        sites_.after(timeline_.add_tracked(t, allocated, res, fragmentation_), timeline_);
      else
        timeline_.add(t, allocated, res, fragmentation_);
    } else if (r.op == kFree) {
      LiveAlloc* a = r.address != 0 ? live.find(r.address) : nullptr;
      if (a == nullptr || a->freed || a->device != device_ || a->kind == kPinned ||
          a->segment_id != 0 || a->bytes == 0)
        break;
      snapshot_if_pending();
      ++counts_.free;
      if (span_ns(a->t_ns, t) < static_cast<int64_t>(options_.short_lived_ns)) ++short_lived_;
      allocated -= a->bytes;
      outside -= a->bytes;
      Aggregate& site = site_aggregate(a->site);
      site.remove(a->bytes);
      if constexpr (kSites) sites_.changed(site, 0 - a->bytes);
      freed_by_class_[size_class(a->bytes)].add(a->bytes);
      if constexpr (kSites)
        sites_.after(
            timeline_.add_lower_tracked(t, allocated, segment_bytes_ + outside, fragmentation_),
            timeline_);
      else
        timeline_.add_lower(t, allocated, segment_bytes_ + outside, fragmentation_);
      a->freed = true;
      ++freed_change;
    } else {
      break;
    }
    first = std::min(first, t);
    last = std::max(last, t);
    sites |= r.site;
  }
  allocated_ = allocated;
  outside_bytes_ = outside;
  totals->first_ns = first;
  totals->last_ns = last;
  totals->sites = sites;
  totals->freed_entries += freed_change;
  return i;
}

}  // namespace gpumem::analyzer
