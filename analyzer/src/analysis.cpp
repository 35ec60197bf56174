// One trace's replay: each record goes to the part it concerns (live allocations, devices,
// phases, anomalies, attribution: a class each, in their own files), and at the end the parts'
// numbers become the trace's rows of the report.
#include "gpumem/analyzer/analysis.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "anomaly_log.h"
#include "attribution.h"
#include "budget.h"
#include "devices.h"
#include "dropped_span.h"
#include "live_allocations.h"
#include "metrics.h"
#include "nvtx_heaps.h"
#include "phases.h"
#include "python_lines.h"

namespace gpumem::analyzer {

namespace {
constexpr size_t kSiteSeries = 10;  // timeline_by_site: the largest sites at the peak, then other
constexpr size_t kMaxOomsListed = 100;  // per trace; every failure is still counted

// The module of the allocating code: the first native frame's "(module+0xoff)" part; Python frames
// ("function (file:line)") and unsymbolized addresses have none.
std::string module_of(const std::vector<std::string>& frames) {
  if (frames.empty()) return "[no stack recorded]";
  for (const std::string& f : frames) {
    const size_t open = f.rfind(" (");
    if (open == std::string::npos) continue;
    const size_t plus = f.find("+0x", open);
    if (plus == std::string::npos) continue;
    return f.substr(open + 2, plus - open - 2);
  }
  return "[unknown module]";
}

std::string bounded_string(const char* text, size_t capacity) {
  return std::string(text, strnlen(text, capacity));
}

// The value of "KEY=VALUE" among the header's configuration lines; empty when absent.
std::string config_value(const std::string& config, const std::string& key) {
  const std::string prefix = key + "=";
  size_t at = 0;
  while (at < config.size()) {
    size_t end = config.find('\n', at);
    if (end == std::string::npos) end = config.size();
    if (config.compare(at, prefix.size(), prefix) == 0)
      return config.substr(at + prefix.size(), end - at - prefix.size());
    at = end + 1;
  }
  return {};
}

TraceSummary summary_of(const trace::Header& header, const std::string& path) {
  TraceSummary s;
  s.path = path;
  s.pid = header.pid;
  s.rank = header.rank;
  s.host = bounded_string(header.host, sizeof header.host);
  s.command = bounded_string(header.command, sizeof header.command);
  s.pool = bounded_string(header.pool, sizeof header.pool);
  s.simulated = (header.flags & trace::kHeaderSimulated) != 0;
  s.stacks = (header.flags & trace::kHeaderStacks) != 0;
  const std::string config = bounded_string(header.config, sizeof header.config);
  s.python_frames = config_value(config, "python_frames");
  s.tensor_capture = config_value(config, "GPUMEM_TENSORS");
  if (const std::string asked = config_value(config, "GPUMEM_POOL");
      !asked.empty() && asked != s.pool)
    s.pool_fallback_from = asked;
  s.clock_base_ns = header.clock_base_ns;
  s.start_unix_ns = header.start_unix_ns;
  return s;
}
}  // namespace

class Analysis::TraceState {
  using Kind = Anomaly::Kind;

 public:
  TraceState(const AnalysisOptions& options, const trace::Header& header, const std::string& path,
             size_t trace_index)
      : trace_index_(trace_index),
        site_series_(options.site_series),
        clock_base_(header.clock_base_ns),
        summary_(summary_of(header, path)),
        devices_(options),
        attribution_(options.max_frames),
        phases_(options.max_phases_per_device),
        heaps_(live_, devices_, phases_),
        anomalies_(options.max_anomalies_per_trace, header.pid, trace_index) {
    const std::string config = bounded_string(header.config, sizeof header.config);
    if (config_value(config, "GPUMEM_LIMIT_SCOPE") == "shared")
      budget_ = config_value(config, "GPUMEM_LIMIT_NAME");
    if (!budget_.empty()) devices_.log_reserved();
    for (int d = 0; d < trace::kMaxDevices; ++d) {
      const trace::DeviceInfo& info = header.devices[d];
      if (info.present)
        devices_.info(d) = {bounded_string(info.name, sizeof info.name), info.capacity_bytes,
                            info.limit_bytes};
    }
  }

  void feed(const trace::Record& r, std::string_view payload) {
    if (r.device < -1 || r.device >= trace::kMaxDevices) [[unlikely]] {
      // The writer never names such a device (the header describes 64): a damaged record. Each
      // device the analysis meets costs a DeviceState of some KiB, so taking them would let a
      // damaged trace of 65536 ordinals cost about a GiB.
      if (names_a_device(static_cast<trace::Op>(r.op))) {
        ++bad_device_records_;
        return;
      }
    }
    const int64_t t = static_cast<int64_t>(r.t_ns - clock_base_);
    first_ns_ = std::min(first_ns_, t);
    last_ns_ = std::max(last_ns_, t);
    saw_site_ |= r.site != 0;
    dispatch(r, t, payload);
  }

  // The same for a run of records. Runs of plain allocations and frees go to the device's fast
  // path (DeviceState::plain_run); whatever it stops at takes the general path, one record.
  void feed(const trace::Record* records, size_t count, std::string_view payload) {
    size_t i = 0;
    while (i < count) {
      if (!phases_.any_open() && pending_ooms_.empty() && devices_.last() != nullptr) {
        PlainRunTotals run;
        run.first_ns = first_ns_;
        run.last_ns = last_ns_;
        const size_t n = devices_.last()->plain_run(
            records + i, std::min(count - i, live_.run_room()), clock_base_, live_.map(), &run);
        if (n > 0) {
          index_ += n;
          first_ns_ = run.first_ns;
          last_ns_ = run.last_ns;
          saw_site_ |= run.sites != 0;
          live_.after_run(run.freed_entries);
          i += n;
          if (i == count) break;
        }
      }
      feed(records[i], payload);
      ++i;
    }
  }

  void finish(const trace::ReadStats& stats, Report* report);
  // The shared budget's members among this trace's devices (those with a cap), once finished.
  void take_budget_members(std::vector<BudgetMember>* out);
  // finish()'s numbers without ending the trace (Analysis::snapshot).
  void snapshot(const trace::ReadStats& stats, Report* report);

 private:
  void dispatch(const trace::Record& r, int64_t t, std::string_view payload) {
    ++index_;
    switch (static_cast<trace::Op>(r.op)) {
      case trace::Op::alloc:
        on_alloc(r, t);
        break;
      case trace::Op::free:
        on_free(r, t);
        break;
      case trace::Op::alloc_failed:
        on_failed(r, t);
        break;
      case trace::Op::segment_reserve: {
        DeviceState& d = devices_.get(r.device);
        d.segment_reserve(r.address, r.bytes, trace::mem_kind(r) == trace::MemKind::physical, t,
                          phases_.current(r.tid));
        phases_.device_changed(d, t);
        break;
      }
      case trace::Op::segment_release: {
        DeviceState& d = devices_.get(r.device);
        d.segment_release(r.address, r.bytes, trace::mem_kind(r) == trace::MemKind::physical, t,
                          phases_.current(r.tid));
        phases_.device_changed(d, t);
        break;
      }
      case trace::Op::mark_begin:
        if (r.api == static_cast<uint16_t>(trace::Api::nvtx))
          phases_.begin(r.aux, t, devices_, r.address,
                        (r.flags & trace::kFlagProcessRange) != 0 ? 0 : std::max(r.tid, 1u));
        else
          phases_.begin(r.aux, t, devices_);
        break;
      case trace::Op::mark_end:
        phases_.end(r.aux, t, r.api == static_cast<uint16_t>(trace::Api::nvtx) ? r.address : 0);
        break;
      case trace::Op::anomaly:
        on_anomaly(r, t);
        break;
      case trace::Op::free_failed:
        on_free_failed(r, t);
        break;
      case trace::Op::string:
        attribution_.add_string(r.aux, payload);
        break;
      case trace::Op::stack:
        attribution_.add_stack(static_cast<uint32_t>(r.aux), payload);
        break;
      case trace::Op::symbol:
        attribution_.add_symbol(r.address, r.aux);
        break;
      case trace::Op::device_info:
        if (r.device >= 0) {
          Devices::Info& info = devices_.info(r.device);
          info.capacity = r.bytes;
          info.limit = r.aux;
        }
        break;
      case trace::Op::mark:
        phases_.mark(r.aux, t, r.tid);
        break;
      case trace::Op::heap_register:
        heaps_.heap_register(r.aux, r.address, r.bytes, r.stream, t, phases_.current(r.tid));
        break;
      case trace::Op::heap_unregister:
        heaps_.heap_unregister(r.aux, t, phases_.current(r.tid));
        break;
      case trace::Op::heap_reset:
        heaps_.heap_reset(r.aux, t, phases_.current(r.tid));
        break;
      case trace::Op::region_register:
        heaps_.region_register(r.aux, r.address, r.bytes, r.site, t, phases_.current(r.tid));
        break;
      case trace::Op::region_resize:
        heaps_.region_resize(r.address, r.bytes, t, phases_.current(r.tid));
        break;
      case trace::Op::region_unregister:
        heaps_.region_unregister(r.address, t, phases_.current(r.tid));
        break;
      case trace::Op::oom:
        on_oom(r, t);
        break;
      default:
        break;  // meminfo, map, unmap, trim: no effect on the numbers
    }
  }

  static bool names_a_device(trace::Op op) {
    switch (op) {
      case trace::Op::alloc:
      case trace::Op::free:
      case trace::Op::alloc_failed:
      case trace::Op::segment_reserve:
      case trace::Op::segment_release:
      case trace::Op::anomaly:
      case trace::Op::free_failed:
      case trace::Op::device_info:
      case trace::Op::oom:
        return true;
      default:
        return false;
    }
  }

  // The per-event handlers are forced inline into feed(): a call each costs about as much as the
  // work it does (docs/performance.md has the instruction counts).
  [[gnu::always_inline]] void release(uint64_t address, LiveAlloc& a, int64_t t, uint32_t tid) {
    if (!pending_ooms_.empty()) [[unlikely]]
      freed_while_pending(a);
    if (a.kind == static_cast<uint8_t>(trace::MemKind::pinned_host)) {
      pinned_.free(a.bytes);
    } else if (a.kind == static_cast<uint8_t>(trace::MemKind::imported)) [[unlikely]] {
      imported_.free(a.bytes);
    } else {
      DeviceState& d = devices_.get(a.device);
      if (a.segment_id >= kNvtxHeapSegment) [[unlikely]]  // an NVTX heap's: its regions go too
        heaps_.allocation_freed(address, a, t, phases_.current(tid));
      else
        d.free(address, a, t, phases_.current(tid));
      phases_.device_changed(d, t);
    }
  }

  [[gnu::always_inline]] void on_alloc(const trace::Record& r, int64_t t) {
    bool was_live = false;
    LiveAlloc& a = live_.claim(r.address, &was_live);  // not touched by what follows
    // The free of the previous owner of this address was lost (torn record): close it here.
    if (was_live) release(r.address, a, t, r.tid);
    if (!pending_ooms_.empty()) [[unlikely]]
      resolve_retry(r, t);
    a = LiveAlloc{};
    a.bytes = r.bytes;
    a.t_ns = t;
    a.site = r.site;
    a.device = r.device;
    a.kind = static_cast<uint8_t>(trace::mem_kind(r));
    if (trace::mem_kind(r) == trace::MemKind::pinned_host) {
      pinned_.alloc(r.bytes);
    } else if (trace::mem_kind(r) == trace::MemKind::imported) [[unlikely]] {
      imported_.alloc(r.bytes);  // another process's memory: not this device's allocated
    } else {
      DeviceState& d = devices_.get(r.device);
      d.alloc(r.address, a, (r.flags & trace::kFlagPooled) != 0, phases_.current(r.tid));
      phases_.device_changed(d, t);
    }
  }

  [[gnu::always_inline]] void on_free(const trace::Record& r, int64_t t) {
    if (r.address == 0) return;  // cudaFree(nullptr) is a valid no-op
    LiveAlloc* a = live_.find(r.address);
    if (a != nullptr && !a->freed) {
      release(r.address, *a, t, r.tid);
      live_.mark_freed(*a);
      return;
    }
    add_anomaly(r, t, a != nullptr ? Kind::double_free : Kind::free_unknown);
  }

  void on_failed(const trace::Record& r, int64_t t) {
    if (trace::mem_kind(r) != trace::MemKind::pinned_host) devices_.get(r.device).count_failed();
    if (Anomaly* a = add_anomaly(r, t, Kind::alloc_failed)) a->in_use_bytes = r.aux;
  }

  // A failed allocation that ran out of memory (Op::oom): the recorded state, and what this replay
  // has live on the device at that record. It stays pending (the fast path is off meanwhile) until
  // its thread allocates on that device again: the same bytes = retried, else final.
  [[gnu::cold, gnu::noinline]] void on_oom(const trace::Record& r, int64_t t) {
    end_pending(r.tid, r.device, nullptr, 0);  // this thread's earlier failure: its retry failed
    PendingOom p{r.tid, r.device, r.bytes, SIZE_MAX, 0};
    if (ooms_.size() < kMaxOomsListed) {
      DeviceState& d = devices_.get(r.device);
      ListedOom l;
      Oom& o = l.oom;
      o.trace_index = trace_index_;
      o.pid = summary_.pid;
      o.rank = summary_.rank;
      o.device = r.device;
      o.t_ns = t;
      o.tid = r.tid;
      o.api = trace::api_name(static_cast<trace::Api>(r.api));
      o.result = r.result;
      o.pooled = (r.flags & trace::kFlagPooled) != 0;
      o.refused_by = (r.flags & trace::kFlagOomByGpumem) != 0 ? "gpumem" : "device";
      o.requested_bytes = r.bytes;
      o.allocated_bytes = r.address;
      o.reserved_bytes = r.stream;
      o.reserved_unallocated_bytes = r.stream > r.address ? r.stream - r.address : 0;
      o.free_in_segments_bytes = d.free_in_segments();
      // Under the expandable pool the figure is this replay's: the largest free extent in its
      // mapped granules, what a block gets without mapping more (docs/report-schema.md).
      o.largest_free_block_bytes = d.has_granules() ? d.largest_free_in_segments() : r.aux;
      if (o.free_in_segments_bytes > 0)
        o.external_fragmentation = 1.0 - static_cast<double>(d.largest_free_in_segments()) /
                                             static_cast<double>(o.free_in_segments_bytes);
      o.site = r.site;
      o.live_bytes = d.allocated();
      l.phase = phases_.current(r.tid);
      l.by_site = d.live_rows(true);
      l.by_class = d.live_rows(false);
      p.listed = ooms_.size();
      ooms_.push_back(std::move(l));
    }
    pending_ooms_.push_back(p);
  }

  // An allocation while failures are pending: resolves its thread's failure on its device.
  void resolve_retry(const trace::Record& r, int64_t t) {
    if (trace::mem_kind(r) == trace::MemKind::pinned_host) return;
    end_pending(r.tid, r.device, &r, t);
  }

  // Ends the pending failure of (tid, device): retried when `next` asks for the same bytes.
  void end_pending(uint32_t tid, int device, const trace::Record* next, int64_t t) {
    for (size_t i = 0; i < pending_ooms_.size(); ++i) {
      const PendingOom& p = pending_ooms_[i];
      if (p.tid != tid || p.device != device) continue;
      const bool retried = next != nullptr && next->bytes == p.bytes;
      ++(retried ? ooms_retried_ : ooms_final_);
      if (retried && p.listed != SIZE_MAX) {
        ooms_[p.listed].oom.retried = true;
        ooms_[p.listed].oom.retry_t_ns = t;
        ooms_[p.listed].oom.freed_before_retry_bytes = p.freed;
      }
      pending_ooms_.erase(pending_ooms_.begin() + static_cast<ptrdiff_t>(i));
      return;
    }
  }

  void freed_while_pending(const LiveAlloc& a) {
    if (a.kind == static_cast<uint8_t>(trace::MemKind::pinned_host)) return;
    for (PendingOom& p : pending_ooms_)
      if (p.device == a.device) p.freed += a.bytes;
  }

  // The OOMs of this trace, completed (frames, live rows, module shares, counts) into the report.
  void finish_ooms(Report* report);

  // The real free after an Op::free failed: the allocation is live again (revived from the
  // freed entry the free left), and the failure is listed with its API and code.
  void on_free_failed(const trace::Record& r, int64_t t) {
    LiveAlloc* a = live_.find(r.address);
    if (a != nullptr && a->freed) {
      live_.revive(*a);
      // aux: the time of the free record it cancels (the preload's), else this record's.
      const int64_t free_t = r.aux != 0 ? static_cast<int64_t>(r.aux - clock_base_) : t;
      if (a->kind == static_cast<uint8_t>(trace::MemKind::pinned_host)) {
        pinned_.unfree(a->bytes);
      } else if (a->kind == static_cast<uint8_t>(trace::MemKind::imported)) {
        imported_.unfree(a->bytes);
      } else {
        DeviceState& d = devices_.get(a->device);
        d.unfree(r.address, *a, free_t, t, phases_.current(r.tid));
        phases_.device_changed(d, t);
      }
    }
    add_anomaly(r, t, Kind::free_failed);
  }

  void on_anomaly(const trace::Record& r, int64_t t) {
    switch (static_cast<trace::AnomalyKind>(r.aux)) {
      case trace::AnomalyKind::free_unknown: {
        // The preload knows only its live allocations; an address this trace shows freed and
        // not allocated again since is freed twice.
        const LiveAlloc* a = live_.find(r.address);
        add_anomaly(r, t, a != nullptr && a->freed ? Kind::double_free : Kind::free_unknown);
        break;
      }
      case trace::AnomalyKind::double_free:
        add_anomaly(r, t, Kind::double_free);
        break;
      case trace::AnomalyKind::null_out_param:
        add_anomaly(r, t, Kind::null_out_param);
        break;
      default:
        add_anomaly(r, t, Kind::unrecognised);
        break;
    }
  }

  // Counts one anomaly (on its device too, for the free kinds) and lists it; nullptr when it
  // repeats the one before or the list is full.
  Anomaly* add_anomaly(const trace::Record& r, int64_t t, Kind kind) {
    if (anomalies_.repeats(r, kind, index_)) return nullptr;
    if (r.device >= 0 || devices_.has(r.device)) {
      if (kind == Kind::free_unknown) devices_.get(r.device).count_free_unknown();
      if (kind == Kind::double_free) devices_.get(r.device).count_double_free();
    }
    return anomalies_.add(r, t, kind);
  }

  DeviceReport device_report(int ordinal, DeviceState& state, bool by_site, double duration_s,
                             std::pair<SiteAggregates, ClassAggregates>* leaks) const;

  size_t trace_index_;
  bool site_series_;  // AnalysisOptions::site_series
  uint64_t clock_base_;
  TraceSummary summary_;
  std::string budget_;  // GPUMEM_LIMIT_NAME of a shared budget, else empty
  LiveAllocations live_;
  Devices devices_;
  PinnedHostCount pinned_;
  PinnedHostCount imported_;  // IPC imports (MemKind::imported), counted like pinned memory
  Attribution attribution_;
  Phases phases_;
  NvtxHeaps heaps_;
  AnomalyLog anomalies_;
  struct PendingOom {
    uint32_t tid;
    int device;
    uint64_t bytes;
    size_t listed;   // index into ooms_, SIZE_MAX when not listed
    uint64_t freed;  // bytes freed on the device since the failure
  };
  struct ListedOom {
    Oom oom;
    uint64_t phase = 0;
    std::vector<GroupRow> by_site;
    std::vector<GroupRow> by_class;
  };
  std::vector<PendingOom> pending_ooms_;
  std::vector<ListedOom> ooms_;
  uint64_t ooms_final_ = 0;
  uint64_t ooms_retried_ = 0;
  uint64_t index_ = 0;            // records seen
  uint64_t bad_device_records_ = 0;  // skipped: their device is outside -1 .. kMaxDevices - 1
  int64_t first_ns_ = INT64_MAX;  // earliest and latest event time (records may be out of order)
  int64_t last_ns_ = INT64_MIN;
  bool saw_site_ = false;
};

void Analysis::TraceState::finish(const trace::ReadStats& stats, Report* report) {
  summary_.events = index_;
  if (index_ > 0) summary_.first_ns = first_ns_, summary_.last_ns = last_ns_;
  summary_.torn = stats.torn;
  summary_.records_dropped = stats.dropped;
  summary_.records_abandoned = stats.abandoned;
  summary_.truncated = stats.truncated;
  summary_.truncated_reason = stats.reason;
  if (bad_device_records_ > 0) {
    summary_.truncated = true;
    summary_.truncated_reason += summary_.truncated_reason.empty() ? "" : "; ";
    summary_.truncated_reason += std::to_string(bad_device_records_) +
                                 " damaged record(s) skipped: they name a device outside -1.." +
                                 std::to_string(trace::kMaxDevices - 1);
  }
  summary_.pinned_host = pinned_.report();
  summary_.imported = imported_.report();
  summary_.anomalies_omitted = anomalies_.omitted();
  // In double: a corrupt trace's timestamps may be so far apart that their int64 difference
  // overflows.
  const double duration_s =
      (static_cast<double>(summary_.last_ns) - static_cast<double>(summary_.first_ns)) / 1e9;
  const bool by_site = summary_.stacks || saw_site_;
  auto leaks = live_.leaks_by_device();
  heaps_.add_leaks(leaks);
  const size_t first_device = report->devices.size();
  devices_.for_each([&](int ordinal, DeviceState& state) {
    auto it = leaks.find(ordinal);
    report->devices.push_back(device_report(ordinal, state, by_site, duration_s,
                                            it != leaks.end() ? &it->second : nullptr));
  });
  if (stats.dropped_span != nullptr)
    add_dropped_span(*stats.dropped_span, summary_.clock_base_ns, &summary_,
                     report->devices.data() + first_device, report->devices.size() - first_device);
  anomalies_.move_to(report->anomalies, attribution_);
  finish_ooms(report);
  report->traces.push_back(std::move(summary_));
}

void Analysis::TraceState::snapshot(const trace::ReadStats& stats, Report* report) {
  // finish() moves the summary, anomalies and OOMs out; here they are copied (OOMs only counted),
  // and what device_report() changes (a pending peak snapshot, the site series' pending point)
  // it would take at the next record anyway.
  const TraceSummary kept = summary_;
  const std::vector<PendingOom> pending = pending_ooms_;
  std::vector<ListedOom> ooms;
  ooms.swap(ooms_);
  const uint64_t final_before = ooms_final_;
  AnomalyLog anomalies = anomalies_;
  finish(stats, report);
  summary_ = kept;
  pending_ooms_ = pending;
  ooms_.swap(ooms);
  ooms_final_ = final_before;
  anomalies_ = std::move(anomalies);
}

void Analysis::TraceState::finish_ooms(Report* report) {
  // Failures still pending at the end of the trace (the program stopped, or crashed) are final.
  ooms_final_ += pending_ooms_.size();
  pending_ooms_.clear();
  report->ooms_final += ooms_final_;
  report->ooms_retried += ooms_retried_;
  const bool by_site = summary_.stacks || saw_site_;
  for (ListedOom& l : ooms_) {
    Oom& o = l.oom;
    o.budget = budget_;
    if (const Devices::Info* info = devices_.find_info(o.device)) {
      o.capacity_bytes = info->capacity;
      o.limit_bytes = info->limit;
    }
    o.phase = phases_.name(l.phase, attribution_);
    std::vector<GroupRow> self(1);
    self[0].by_site = true;
    self[0].site = o.site;
    attribution_.add_frames(self);
    o.frames = std::move(self[0].frames);
    o.python_line = std::move(self[0].python_line);
    if (by_site) {
      attribution_.add_frames(l.by_site);
      std::map<std::string, OomModuleShare> modules;
      for (const GroupRow& row : l.by_site) {
        OomModuleShare& m = modules[module_of(row.frames)];
        m.count += row.count;
        m.bytes += row.bytes;
      }
      for (auto& [name, m] : modules) {
        m.module = name;
        o.by_module.push_back(std::move(m));
      }
      std::stable_sort(
          o.by_module.begin(), o.by_module.end(),
          [](const OomModuleShare& a, const OomModuleShare& b) { return a.bytes > b.bytes; });
      o.grouped_by = merge_by_python_line(l.by_site) ? "python_line" : "site";
      o.live = std::move(l.by_site);
    } else {
      o.grouped_by = "size_class";
      o.live = std::move(l.by_class);
    }
    report->ooms.push_back(std::move(o));
  }
  ooms_.clear();
}

DeviceReport Analysis::TraceState::device_report(
    int ordinal, DeviceState& state, bool by_site, double duration_s,
    std::pair<SiteAggregates, ClassAggregates>* leaks) const {
  DeviceReport d;
  d.trace_index = trace_index_;
  d.pid = summary_.pid;
  d.rank = summary_.rank;
  state.report(&d, by_site, duration_s);
  if (const Devices::Info* info = devices_.find_info(ordinal)) {
    d.name = info->name;
    d.capacity_bytes = info->capacity;
    d.limit_bytes = info->limit;
  }
  d.peak.phase = phases_.name(state.peak_phase_id(), attribution_);
  d.peak.phase_path = phases_.path(state.peak_phase_id(), attribution_);
  d.peak.phase_tid = phases_.thread(state.peak_phase_id());
  d.peak.reserved_phase = phases_.name(state.peak_reserved_phase_id(), attribution_);
  attribution_.add_frames(d.peak.live_at_peak);
  if (merge_by_python_line(d.peak.live_at_peak)) d.peak.grouped_by = "python_line";
  if (site_series_)
    d.timeline_by_site = state.site_timeline(
        d, [this](uint32_t site) { return attribution_.python_line_of(site); }, kSiteSeries);
  if (leaks != nullptr) {
    d.leaks = by_site ? rows_by_site(leaks->first) : rows_by_class(leaks->second);
    attribution_.add_frames(d.leaks);
    merge_by_python_line(d.leaks);
  }
  for (const GroupRow& row : d.leaks) {
    d.final.leaked_allocations += row.count;
    d.final.leaked_bytes += row.bytes;
  }
  d.phases_omitted = phases_.omitted();
  d.phases = phases_.rows(ordinal, summary_.last_ns, attribution_);
  d.nvtx_heaps = heaps_.rows(ordinal, attribution_);
  d.marks = phases_.mark_rows(attribution_);
  d.marks_omitted = phases_.marks_omitted();
  return d;
}

void Analysis::TraceState::take_budget_members(std::vector<BudgetMember>* out) {
  if (budget_.empty()) return;
  devices_.for_each([&](int ordinal, DeviceState& state) {
    ReservedLog* log = state.reserved_log();
    if (log == nullptr) return;
    BudgetMember m;
    m.name = budget_;
    m.device = ordinal;
    if (const Devices::Info* info = devices_.find_info(ordinal)) m.limit_bytes = info->limit;
    m.trace_index = trace_index_;
    m.pid = summary_.pid;
    m.rank = summary_.rank;
    m.clock_base_ns = summary_.clock_base_ns;
    m.start_unix_ns = summary_.start_unix_ns;
    m.last_ns = std::max<int64_t>(last_ns_, 0);
    m.end_ns = m.last_ns + 1;
    // The trace's last write: its close at a clean exit. The header's two clocks were read at
    // the same moment, so the file's wall-clock time converts to this trace's clock.
    struct stat st;
    if (::stat(summary_.path.c_str(), &st) == 0) {
      const uint64_t mtime = static_cast<uint64_t>(st.st_mtim.tv_sec) * 1'000'000'000ull +
                             static_cast<uint64_t>(st.st_mtim.tv_nsec);
      if (mtime > summary_.start_unix_ns)
        m.end_ns = std::max<int64_t>(m.end_ns,
                                     static_cast<int64_t>(mtime - summary_.start_unix_ns));
    }
    m.exact = log->exact();
    m.points = log->take_points();
    out->push_back(std::move(m));
  });
}

struct Analysis::Budgets {
  std::vector<BudgetMember> members;
};

Analysis::Analysis(AnalysisOptions options)
    : options_(options), budgets_(std::make_unique<Budgets>()) {}
Analysis::~Analysis() = default;

void Analysis::begin_trace(const trace::Header& header, const std::string& path) {
  if (current_) end_trace(trace::ReadStats{});
  current_ = std::make_unique<TraceState>(options_, header, path, report_.traces.size());
}

void Analysis::feed(const trace::Event& event) {
  if (current_) current_->feed(event.rec, event.payload);
}

// Flattened: the whole per-event path (handlers, device state, timeline, address map) inlined
// into this loop, with the rare paths kept out of line by noinline (docs/performance.md).
[[gnu::flatten]] void Analysis::feed(const trace::Batch& batch) {
  if (!current_) return;
  current_->feed(batch.records, batch.count, batch.payload);
}

void Analysis::end_trace(const trace::ReadStats& stats) {
  if (!current_) return;
  current_->take_budget_members(&budgets_->members);  // before finish() moves the summary out
  current_->finish(stats, &report_);
  current_.reset();
}

Report Analysis::snapshot(const trace::ReadStats& stats) {
  Report r;
  if (current_) current_->snapshot(stats, &r);
  return r;
}

Report Analysis::finish() {
  if (current_) end_trace(trace::ReadStats{});
  if (report_.traces.size() >= 2) report_.ranks = summarize_ranks(report_);
  report_.budgets = summarize_budgets(budgets_->members, options_.max_points);
  budgets_->members.clear();
  return std::move(report_);
}

}  // namespace gpumem::analyzer
