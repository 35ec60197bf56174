// The replayed state of one device in one process: what is allocated and reserved now, the
// pool's segments, and every running metric (peaks, fragmentation, histogram, churn, timeline).
// The trace-level code (analysis.cpp) owns the address -> allocation map and calls in here.
#pragma once

#include <cstdint>
#include <vector>

#include "gpumem/analyzer/analysis.h"
#include "gpumem/analyzer/model.h"
#include "metrics.h"
#include "segment_space.h"
#include "timeline.h"

namespace gpumem::analyzer {

// One live device allocation, as the trace-level map keeps it.
struct LiveAlloc {
  uint64_t bytes = 0;
  int64_t t_ns = 0;
  uint64_t segment_id = 0;  // SegmentSpace id when it lives inside a pool segment, else 0
  uint32_t site = 0;
  int16_t device = -1;
  uint8_t kind = 0;         // trace::MemKind
};

class DeviceState {
 public:
  DeviceState(int device, const AnalysisOptions& options);

  // `phase` is the string id of the current phase (0 = none), kept for the peak.
  void alloc(uint64_t address, LiveAlloc& a, bool pooled, uint64_t phase);
  void free(uint64_t address, const LiveAlloc& a, int64_t t_ns, uint64_t phase);
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
  uint64_t peak_reserved_phase_id() const { return peak_reserved_phase_; }

 private:
  void snapshot_if_pending();
  void after_change(int64_t t_ns, uint64_t phase);
  Aggregate& site_aggregate(uint32_t site);

  int device_;
  const AnalysisOptions& options_;
  uint64_t allocated_ = 0;
  uint64_t segment_bytes_ = 0;  // live pool segments
  uint64_t outside_bytes_ = 0;  // live allocations not inside a pool segment (reserved by themselves)
  SegmentSpace segments_;
  SiteAggregates live_by_site_;  // emptied sites stay, with count 0
  uint32_t last_site_ = 0;
  Aggregate* last_site_agg_ = nullptr;  // &live_by_site_[last_site_]
  ClassAggregates live_by_class_{};

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
  uint64_t bytes_total_ = 0;
  uint64_t freed_ = 0;
  uint64_t short_lived_ = 0;
  MaxBoxTimeline timeline_;
};

}  // namespace gpumem::analyzer
