// The analysis model: what `gpumem report` knows about a set of traces once it has read them.
// Renderers (JSON, text, HTML, Perfetto) only read these structs; Analysis (analysis.h) fills
// them. Every number is defined, with its formula, in docs/report-schema.md.
//
// Times are nanoseconds relative to the trace's Header::clock_base_ns (the moment the trace was
// opened), as int64 so that a record stamped before the base stays representable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gpumem::analyzer {

// A group of live allocations: one call site (stack id), or one power-of-two size class.
struct GroupRow {
  bool by_site = false;             // true: site/frames are set; false: min/max_bytes are set
  uint32_t site = 0;                // stack id, 0 = allocations with no recorded stack
  std::vector<std::string> frames;  // innermost first: "function (module+0xoff)" or "0x..."
  uint64_t min_bytes = 0;           // size class bounds, inclusive
  uint64_t max_bytes = 0;
  uint64_t count = 0;
  uint64_t bytes = 0;
  // Python stacks (GPUMEM_STACKS=python|mixed): the innermost Python frame, "function
  // (file:line)", or "[no Python frame] (native thread)"; empty for native-only stacks. Rows are
  // then grouped by it, and `sites` says how many distinct stacks were merged into the row.
  std::string python_line;
  uint64_t sites = 0;
};

struct Peak {
  uint64_t allocated_bytes = 0;           // max over the run of allocated
  int64_t time_ns = 0;                    // when allocated first reached it
  std::optional<std::string> phase;       // the phase of the peak's event (docs/report-schema.md)
  // When that phase is an NVTX push range: its ancestors and itself, outermost first, and the
  // thread that had them open (the allocating thread). Empty / unset otherwise.
  std::vector<std::string> phase_path;
  std::optional<uint32_t> phase_tid;
  uint64_t reserved_at_peak_bytes = 0;    // reserved at that same instant
  uint64_t reserved_bytes = 0;            // max over the run of reserved (may be another instant)
  int64_t reserved_time_ns = 0;
  std::optional<std::string> reserved_phase;
  std::string grouped_by;  // "site", "python_line" or "size_class": how live_at_peak is grouped
  std::vector<GroupRow> live_at_peak;     // sums to allocated_bytes exactly; largest first
  std::vector<GroupRow> live_at_peak_by_size_class;  // always by size class; same sum
};

struct Final {
  uint64_t allocated_bytes = 0;
  uint64_t reserved_bytes = 0;
  uint64_t leaked_allocations = 0;
  uint64_t leaked_bytes = 0;
};

struct Counts {
  uint64_t alloc = 0;
  uint64_t free = 0;
  uint64_t alloc_failed = 0;
  uint64_t free_unknown = 0;
  uint64_t double_free = 0;
  uint64_t segment_reserve = 0;
  uint64_t segment_release = 0;
};

struct Fragmentation {
  double external_at_peak = 0;            // at the peak-allocated instant
  double external_max = 0;                // max over the run
  int64_t external_max_time_ns = 0;
  uint64_t reserved_unallocated_at_peak_bytes = 0;  // reserved - allocated at the peak instant
  std::optional<double> utilization;      // peak allocated / peak reserved; none if no reserve
  uint64_t free_in_segments_at_peak_bytes = 0;
  uint64_t largest_free_block_at_peak_bytes = 0;
};

struct PhasePeak {
  std::string name;
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  bool closed = true;              // false: still open when the trace ended (end_ns = last event)
  uint64_t peak_allocated_bytes = 0;
  int64_t peak_time_ns = 0;
  uint64_t peak_reserved_bytes = 0;
  std::optional<uint32_t> tid;     // an NVTX push/pop range: the thread it nests in
};

// An NVTX memory-extension heap (an allocator's pool inside memory already allocated) and its
// regions (the allocator's sub-allocations), on the device of the allocation holding it.
struct NvtxHeapRow {
  std::string domain;  // the NVTX domain, "" = default
  uint64_t address = 0;
  uint64_t bytes = 0;
  int64_t start_ns = 0;
  int64_t end_ns = 0;  // when unregistered; 0 while still registered at the end
  bool closed = false;
  uint64_t regions_registered = 0;      // regions ever registered in it
  uint64_t regions_peak_bytes = 0;      // max over time of the bytes of its live regions
  uint64_t regions_peak_count = 0;      // live regions then
  int64_t peak_time_ns = 0;
  uint64_t largest_free_at_peak_bytes = 0;  // the largest gap between regions then
  uint64_t regions_final_bytes = 0;     // live region bytes at the end (0 once unregistered)
  // Its allocation was a segment of the device and its regions pooled allocations in it (false:
  // no live device allocation held it, or it was pinned host memory or a block of gpumem's pool).
  bool counted = false;
};

// An instant marker (gpumem_mark, nvtxMark*): its name, time and thread.
struct MarkRow {
  std::string name;
  int64_t t_ns = 0;
  uint32_t tid = 0;
};

struct HistogramBucket {
  uint64_t min_bytes = 0;
  uint64_t max_bytes = 0;
  uint64_t count = 0;
  uint64_t bytes = 0;
};

struct Churn {
  double duration_s = 0;            // first to last record of the trace
  double allocs_per_second = 0;     // counts.alloc / duration_s (0 when duration is 0)
  uint64_t short_lived_threshold_ns = 0;
  uint64_t freed = 0;               // allocations freed during the run (matched frees)
  uint64_t short_lived = 0;         // of those, freed less than the threshold after allocation
  double short_lived_share = 0;     // short_lived / freed (0 when freed is 0)
  uint64_t allocated_bytes_total = 0;
};

struct Timeline {
  std::vector<int64_t> t_ns;
  std::vector<uint64_t> allocated;
  std::vector<uint64_t> reserved;
  std::vector<double> fragmentation;
};

// Live bytes over time split by allocation site (the call stacks of GPUMEM_STACKS), on the points
// of DeviceReport::timeline: at every point, other + the sum of the series = timeline.allocated.
struct SiteTimeline {
  std::string grouped_by;        // "python_line" or "site", as the peak's live_at_peak
  std::vector<GroupRow> sites;   // the series: the largest rows of peak.live_at_peak
  std::vector<std::vector<uint64_t>> bytes;  // bytes[k][i]: sites[k]'s live bytes at point i
  std::vector<uint64_t> other;   // every other site's live bytes at point i
};

struct DeviceReport {
  size_t trace_index = 0;  // index into Report::traces of the process this device belongs to
  uint32_t pid = 0;
  int32_t rank = -1;
  int device = 0;
  std::string name;
  uint64_t capacity_bytes = 0;
  uint64_t limit_bytes = 0;
  Peak peak;
  Final final;
  Counts counts;
  Fragmentation fragmentation;
  std::vector<PhasePeak> phases;
  uint64_t phases_omitted = 0;
  std::vector<NvtxHeapRow> nvtx_heaps;
  std::vector<MarkRow> marks;  // the process's markers, in time order (at most 10000)
  uint64_t marks_omitted = 0;
  std::vector<HistogramBucket> size_histogram;
  Churn churn;
  std::vector<GroupRow> leaks;      // grouped like peak.grouped_by; largest first
  Timeline timeline;
  std::optional<SiteTimeline> timeline_by_site;  // when the device's allocations had call sites
};

struct Anomaly {
  // What went wrong. The trace's own codes (trace::AnomalyKind) cover only what the preload sees;
  // the analyzer adds what it finds by replaying (alloc_failed, free_failed, a free it knows to
  // be a double free). Reports name it with kind_name().
  enum class Kind : uint8_t {
    free_unknown,
    double_free,
    null_out_param,
    alloc_failed,
    free_failed,
    unrecognised,  // a trace::AnomalyKind this analyzer does not know: trace_code holds it
  };
  size_t trace_index = 0;  // index into Report::traces (pids repeat across hosts and containers)
  uint32_t pid = 0;
  int device = -1;
  Kind kind = Kind::unrecognised;
  uint64_t trace_code = 0;  // unrecognised only: the record's trace::AnomalyKind value
  std::string api;   // the call that caused it (trace::api_name)
  uint64_t address = 0;
  uint64_t bytes = 0;
  int64_t t_ns = 0;
  std::optional<uint64_t> in_use_bytes;  // alloc_failed only: bytes in use on the device then
  int32_t result = 0;
  uint32_t site = 0;
  std::vector<std::string> frames;  // the site's stack, innermost first (when recorded)
  std::string python_line;          // its innermost Python frame, as GroupRow::python_line
};

// The report's name of an anomaly's kind (docs/report-schema.md, "anomalies").
inline std::string kind_name(const Anomaly& a) {
  switch (a.kind) {
    case Anomaly::Kind::free_unknown:
      return "free_unknown";
    case Anomaly::Kind::double_free:
      return "double_free";
    case Anomaly::Kind::null_out_param:
      return "null_out_param";
    case Anomaly::Kind::alloc_failed:
      return "alloc_failed";
    case Anomaly::Kind::free_failed:
      return "free_failed";
    case Anomaly::Kind::unrecognised:
      break;
  }
  return "anomaly_" + std::to_string(a.trace_code);
}

// OOM forensics (docs/oom.md, docs/report-schema.md "ooms[]"): one failed allocation that ran out
// of memory, from its Op::oom record: the state the preload recorded at the failed call, what was
// live then (the analyzer's replay up to that record), the waste, and what would have fitted.
struct OomModuleShare {
  std::string module;  // the module of the allocating frame ("libcublas.so.12", "python3.11")
  uint64_t count = 0;
  uint64_t bytes = 0;
};

// What replay answers for the trace up to the failure (filled by the CLI: the analyzer does not
// link replay): the smallest cap under which the program, this request included, fits.
struct OomFit {
  std::string policy;                            // "none", "growth", "expandable", "fixed"
  bool fits_at_capacity = false;                 // false: no cap on this device helps
  std::optional<uint64_t> smallest_limit_bytes;  // the smallest cap that fits
  std::optional<uint64_t> safe_limit_bytes;      // from here up every checked cap fits
};

// A setting and the numbers that justify it. Only advice the numbers support is given.
struct OomAdvice {
  std::string scope;    // "gpumem", "pytorch", "tensorflow", "jax"
  std::string setting;  // "GPUMEM_POOL=none GPUMEM_LIMIT=28MiB", "expandable_segments:True"...
  std::string reason;   // the numbers, in words
};

struct Oom {
  size_t trace_index = 0;
  uint32_t pid = 0;
  int32_t rank = -1;
  int device = -1;
  int64_t t_ns = 0;
  uint32_t tid = 0;
  std::string api;
  int32_t result = 0;
  bool pooled = false;     // the request went to a gpumem pool
  std::string refused_by;  // "gpumem" (its cap or pool) or "device"
  // GPUMEM_LIMIT_NAME when the cap was a budget shared with other processes: what would fit is
  // then this process alone (budgets[] has what the others held); empty otherwise.
  std::string budget;
  uint64_t requested_bytes = 0;
  uint64_t capacity_bytes = 0;  // the device's (trace header); 0 = unknown
  uint64_t limit_bytes = 0;     // gpumem's cap; 0 = none
  uint64_t allocated_bytes = 0;
  uint64_t reserved_bytes = 0;
  uint64_t reserved_unallocated_bytes = 0;  // reserved - allocated: cached, unused
  uint64_t largest_free_block_bytes = 0;    // inside the pool's segments
  uint64_t free_in_segments_bytes = 0;      // the analyzer's replay: free bytes in segments
  double external_fragmentation = 0;        // 1 - largest free / free in segments
  // Retried: the same thread's next successful allocation on the device asked for the same
  // bytes (after frees or an empty-cache, as frameworks retry); else final.
  bool retried = false;
  std::optional<int64_t> retry_t_ns;
  uint64_t freed_before_retry_bytes = 0;  // retried: freed on the device in between; else 0
  std::optional<std::string> phase;
  uint32_t site = 0;
  std::vector<std::string> frames;
  std::string python_line;
  std::string grouped_by;                 // "site", "python_line" or "size_class"
  std::vector<GroupRow> live;             // live at the failure; sums to live_bytes
  uint64_t live_bytes = 0;                // the analyzer's allocated at the failure
  std::vector<OomModuleShare> by_module;  // live bytes by allocating module (with stacks)
  std::vector<OomFit> would_fit;
  std::vector<OomAdvice> advice;
};

struct PinnedHost {
  uint64_t peak_bytes = 0;
  uint64_t final_bytes = 0;
  uint64_t alloc = 0;
  uint64_t free = 0;
};

struct TraceSummary {
  std::string path;
  uint32_t pid = 0;
  int32_t rank = -1;
  std::string host;
  std::string command;
  std::string pool;  // the pool that served (the header's)
  // The pool GPUMEM_POOL asked for when another served instead (the expandable pool falls back to
  // the growth pool on a device without virtual memory management); empty otherwise.
  std::string pool_fallback_from;
  bool simulated = false;
  bool stacks = false;
  // GPUMEM_STACKS=python|mixed: "Python 3.11.7" when frames were read, else why not ("off: ...").
  std::string python_frames;
  // gpumem run --tensors: "on", or "on; in the way: ..." naming each framework whose own cache
  // still hides tensors; empty when tensor capture was not asked for.
  std::string tensor_capture;
  uint64_t clock_base_ns = 0;
  uint64_t start_unix_ns = 0;
  uint64_t events = 0;       // records analysed
  uint64_t torn = 0;
  uint64_t records_dropped = 0;    // the writer could not keep them (disk full): incomplete
  uint64_t records_abandoned = 0;  // slots in flight at a clean exit (calls that never returned)
  bool truncated = false;
  std::string truncated_reason;
  int64_t first_ns = 0;
  int64_t last_ns = 0;
  PinnedHost pinned_host;
  // IPC imports (another process's memory): never in a device's allocated, reserved or peaks.
  PinnedHost imported;
  uint64_t anomalies_omitted = 0;
  // A bounded trace (GPUMEM_TRACE_MAX) whose middle was dropped: what went. Peaks, leaks, counts
  // and live sets stay exact (the digest keeps what they need); the timeline is coarse there.
  struct Dropped {
    uint64_t records = 0;  // records dropped from the file
    uint64_t kept = 0;     // of those, kept in its digest and analysed
    int64_t first_ns = 0;  // the span they cover, as first_ns / last_ns
    int64_t last_ns = 0;
  };
  std::optional<Dropped> dropped;
};

struct RankStat {
  uint64_t max_bytes = 0;
  uint64_t min_bytes = 0;
  double mean_bytes = 0;
  double imbalance = 0;  // max / mean - 1
  uint32_t max_pid = 0;
  int32_t max_rank = -1;
  uint32_t min_pid = 0;
  int32_t min_rank = -1;
};

struct RanksSummary {
  uint64_t processes = 0;
  RankStat peak_allocated;  // per process: the largest device peak of that process
  RankStat peak_reserved;
};

// One shared budget (GPUMEM_LIMIT_SCOPE=shared, GPUMEM_LIMIT_NAME) on one device, from the traces
// of its processes (each header names the budget): what they held together over time. A process
// holds what its cap charges to the budget, its reserved bytes (pool segments and unpooled
// allocations), from its first record until its last (at its end the ledger has it back).
struct BudgetShare {
  size_t trace_index = 0;
  uint32_t pid = 0;
  int32_t rank = -1;
  uint64_t bytes_at_peak = 0;  // what it held when the budget's total peaked
  uint64_t peak_bytes = 0;     // its own largest
};

struct BudgetReport {
  std::string name;
  int device = 0;
  uint64_t limit_bytes = 0;
  uint64_t peak_bytes = 0;     // the largest total over its processes
  int64_t peak_time_ns = 0;    // since the first of its traces began (that trace's clock base)
  uint64_t peak_unix_ns = 0;
  // False when a process's changes were more than the analyzer keeps per process (4 Mi): then
  // neighbouring changes were merged keeping the larger, and the peak is an upper bound.
  bool exact = true;
  std::vector<BudgetShare> processes;  // in trace order
  std::vector<int64_t> t_ns;           // the total over time (max-box filter), times as peak_time_ns
  std::vector<uint64_t> total_bytes;
};

struct Report {
  std::vector<TraceSummary> traces;
  std::vector<DeviceReport> devices;
  std::vector<Anomaly> anomalies;
  std::vector<Oom> ooms;    // in trace then record order (at most 100 per trace listed)
  uint64_t ooms_final = 0;  // every failure counted, listed or not
  uint64_t ooms_retried = 0;
  std::optional<RanksSummary> ranks;  // present when two or more traces were analysed
  std::vector<BudgetReport> budgets;  // one per shared budget and device the traces belonged to
};

}  // namespace gpumem::analyzer
