// Trace-level replay: the address -> allocation map, strings, stacks, phases and anomalies of one
// process; per-device numbers live in DeviceState.
#include "gpumem/analyzer/analysis.h"

#include <cstring>
#include <map>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "address_map.h"
#include "device_state.h"
#include "metrics.h"
#include "python_lines.h"

namespace gpumem::analyzer {

namespace {
// Freed addresses stay in the address map, marked freed, to tell a double free from a free of an
// unknown pointer. Bounded so memory never grows with the trace: past this many freed entries they
// are all forgotten, and a double free of an address freed that long ago is reported as
// free_unknown. (Allocators reuse addresses, so a real trace rarely gets near it: every reuse
// turns a freed entry back into a live one.)
constexpr size_t kMaxRememberedFrees = size_t{1} << 18;
constexpr size_t kMaxOpenPhases = 1024;
constexpr size_t kSiteSeries = 10;  // timeline_by_site: the largest sites at the peak, then other

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
}  // namespace

class Analysis::TraceState {
  using Kind = Anomaly::Kind;

 public:
  TraceState(const AnalysisOptions& options, const trace::Header& header, const std::string& path,
             size_t trace_index)
      : options_(options), trace_index_(trace_index), clock_base_(header.clock_base_ns) {
    summary_.path = path;
    summary_.pid = header.pid;
    summary_.rank = header.rank;
    summary_.host = bounded_string(header.host, sizeof header.host);
    summary_.command = bounded_string(header.command, sizeof header.command);
    summary_.pool = bounded_string(header.pool, sizeof header.pool);
    summary_.simulated = (header.flags & trace::kHeaderSimulated) != 0;
    summary_.stacks = (header.flags & trace::kHeaderStacks) != 0;
    const std::string config = bounded_string(header.config, sizeof header.config);
    summary_.python_frames = config_value(config, "python_frames");
    summary_.tensor_capture = config_value(config, "GPUMEM_TENSORS");
    summary_.clock_base_ns = header.clock_base_ns;
    summary_.start_unix_ns = header.start_unix_ns;
    for (int d = 0; d < trace::kMaxDevices; ++d) {
      const trace::DeviceInfo& info = header.devices[d];
      if (!info.present) continue;
      device_info_[d] = {bounded_string(info.name, sizeof info.name), info.capacity_bytes,
                         info.limit_bytes};
    }
  }

  void feed(const trace::Record& r, std::string_view payload) {
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
      if (current_phase_ == 0 && last_device_ != nullptr) {
        PlainRunTotals run;
        run.first_ns = first_ns_;
        run.last_ns = last_ns_;
        // Each record adds at most one freed entry, so a run this long passes the bound, if at
        // all, with its last record; the entries are forgotten right after it, as free() does.
        const size_t room = kMaxRememberedFrees + 1 - freed_entries_;
        const size_t n = last_device_->plain_run(records + i, std::min(count - i, room),
                                                 clock_base_, live_, &run);
        if (n > 0) {
          index_ += n;
          first_ns_ = run.first_ns;
          last_ns_ = run.last_ns;
          saw_site_ |= run.sites != 0;
          freed_entries_ += static_cast<size_t>(run.freed_entries);  // modulo 2^64: may be < 0
          if (freed_entries_ > kMaxRememberedFrees) forget_freed();
          i += n;
          if (i == count) break;
        }
      }
      feed(records[i], payload);
      ++i;
    }
  }

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
      case trace::Op::segment_reserve:
        device(r.device).segment_reserve(r.address, r.bytes, t, current_phase());
        update_phases(r.device, t);
        break;
      case trace::Op::segment_release:
        device(r.device).segment_release(r.address, t, current_phase());
        update_phases(r.device, t);
        break;
      case trace::Op::mark_begin:
        on_mark_begin(r.aux, t);
        break;
      case trace::Op::mark_end:
        on_mark_end(r.aux, t);
        break;
      case trace::Op::anomaly:
        on_anomaly(r, t);
        break;
      case trace::Op::free_failed:
        on_free_failed(r, t);
        break;
      case trace::Op::string:
        strings_[r.aux] = std::string(payload);
        break;
      case trace::Op::stack: {
        std::vector<uint64_t> pcs(payload.size() / sizeof(uint64_t));
        if (!pcs.empty()) std::memcpy(pcs.data(), payload.data(), pcs.size() * 8);
        stacks_[static_cast<uint32_t>(r.aux)] = std::move(pcs);
        break;
      }
      case trace::Op::symbol:
        symbols_[r.address] = r.aux;
        break;
      case trace::Op::device_info:
        if (r.device >= 0) {
          auto& info = device_info_[r.device];
          info.capacity = r.bytes;
          info.limit = r.aux;
        }
        break;
      default:
        break;  // mark, meminfo, map, unmap, trim: no effect on the numbers
    }
  }

  void finish(const trace::ReadStats& stats, Report* report) {
    summary_.events = index_;
    if (index_ > 0) summary_.first_ns = first_ns_, summary_.last_ns = last_ns_;
    summary_.torn = stats.torn;
    summary_.records_dropped = stats.dropped;
    summary_.records_abandoned = stats.abandoned;
    summary_.truncated = stats.truncated;
    summary_.truncated_reason = stats.reason;
    summary_.pinned_host.final_bytes = pinned_live_;
    summary_.anomalies_omitted = anomalies_omitted_;
    // In double: a corrupt trace's timestamps may be so far apart that their int64 difference
    // overflows.
    double duration_s =
        (static_cast<double>(summary_.last_ns) - static_cast<double>(summary_.first_ns)) / 1e9;
    bool by_site = summary_.stacks || saw_site_;

    // Leaks: what is still live, per device.
    std::map<int, std::pair<SiteAggregates, ClassAggregates>> leaks;
    live_.for_each([&](uint64_t /*address*/, const LiveAlloc& a) {
      if (a.freed || a.kind == static_cast<uint8_t>(trace::MemKind::pinned_host)) return;
      auto& [sites, classes] = leaks[a.device];
      sites[a.site].add(a.bytes);
      classes[size_class(a.bytes)].add(a.bytes);
    });

    for (auto& [ordinal, state] : devices_) {
      DeviceReport d;
      d.trace_index = trace_index_;
      d.pid = summary_.pid;
      d.rank = summary_.rank;
      state->report(&d, by_site, duration_s);
      if (auto it = device_info_.find(ordinal); it != device_info_.end()) {
        d.name = it->second.name;
        d.capacity_bytes = it->second.capacity;
        d.limit_bytes = it->second.limit;
      }
      d.peak.phase = phase_name(state->peak_phase_id());
      d.peak.reserved_phase = phase_name(state->peak_reserved_phase_id());
      add_frames(d.peak.live_at_peak);
      if (merge_by_python_line(d.peak.live_at_peak)) d.peak.grouped_by = "python_line";
      d.timeline_by_site = state->site_timeline(
          d, [this](uint32_t site) { return python_line_of(site); }, kSiteSeries);
      if (auto it = leaks.find(ordinal); it != leaks.end()) {
        d.leaks = by_site ? rows_by_site(it->second.first) : rows_by_class(it->second.second);
        add_frames(d.leaks);
        merge_by_python_line(d.leaks);
      }
      for (const GroupRow& row : d.leaks) {
        d.final.leaked_allocations += row.count;
        d.final.leaked_bytes += row.bytes;
      }
      d.phases_omitted = phases_omitted_;
      for (const ClosedPhase& p : phases_) d.phases.push_back(phase_row(p, ordinal, state.get()));
      for (const OpenPhase& p : open_) {
        ClosedPhase still_open{p, summary_.last_ns, false};
        d.phases.push_back(phase_row(still_open, ordinal, state.get()));
      }
      report->devices.push_back(std::move(d));
    }
    for (Anomaly& a : anomalies_) {
      if (a.site != 0) {  // where it happened, in the same terms as the peak's rows
        GroupRow where;
        where.by_site = true;
        where.site = a.site;
        std::vector<GroupRow> one{std::move(where)};
        add_frames(one);
        a.frames = std::move(one[0].frames);
        a.python_line = std::move(one[0].python_line);
      }
      report->anomalies.push_back(std::move(a));
    }
    report->traces.push_back(std::move(summary_));
  }

 private:
  struct DeviceInfoCopy {
    std::string name;
    uint64_t capacity = 0;
    uint64_t limit = 0;
  };
  struct PhaseDevicePeak {
    int device;
    uint64_t allocated;
    int64_t t_ns;
    uint64_t reserved;
  };
  struct OpenPhase {
    uint64_t name_id;
    int64_t start_ns;
    std::vector<PhaseDevicePeak> peaks;
  };
  struct ClosedPhase {
    OpenPhase phase;
    int64_t end_ns;
    bool closed;
  };

  DeviceState& device(int ordinal) {
    // Nearly every record names the same device as the one before it: skip the map lookup.
    if (last_device_ != nullptr && last_ordinal_ == ordinal) [[likely]]
      return *last_device_;
    return find_device(ordinal);
  }

  [[gnu::noinline]] DeviceState& find_device(int ordinal) {
    auto it = devices_.find(ordinal);
    if (it == devices_.end())
      it = devices_.emplace(ordinal, std::make_unique<DeviceState>(ordinal, options_)).first;
    last_ordinal_ = ordinal;
    last_device_ = it->second.get();
    return *last_device_;
  }

  // Phase key of the most recently begun phase still open: its name id + 1, 0 = none.
  uint64_t current_phase() const { return current_phase_; }
  // open_ changed: the phase key every event asks for is kept at hand.
  void phases_changed() { current_phase_ = open_.empty() ? 0 : open_.back().name_id + 1; }

  std::optional<std::string> phase_name(uint64_t key) const {
    if (key == 0) return std::nullopt;
    return string_or_id(key - 1);
  }

  std::string string_or_id(uint64_t id) const {
    auto it = strings_.find(id);
    return it != strings_.end() ? it->second : fmt::format("string#{}", id);
  }

  void update_phases(int ordinal, int64_t t) {
    if (current_phase_ == 0) return;  // no phase open
    const DeviceState& d = device(ordinal);
    for (OpenPhase& p : open_) {
      PhaseDevicePeak* peak = nullptr;
      for (auto& e : p.peaks)
        if (e.device == ordinal) peak = &e;
      if (peak == nullptr) {
        p.peaks.push_back({ordinal, 0, t, 0});
        peak = &p.peaks.back();
      }
      if (d.allocated() > peak->allocated) {
        peak->allocated = d.allocated();
        peak->t_ns = t;
      }
      peak->reserved = std::max(peak->reserved, d.reserved());
    }
  }

  void on_mark_begin(uint64_t name_id, int64_t t) {
    if (open_.size() >= kMaxOpenPhases) {  // begins that never end: forget the oldest
      open_.erase(open_.begin());
      ++phases_omitted_;
    }
    OpenPhase p{name_id, t, {}};
    for (const auto& [ordinal, state] : devices_)
      p.peaks.push_back({ordinal, state->allocated(), t, state->reserved()});
    open_.push_back(std::move(p));
    phases_changed();
  }

  void on_mark_end(uint64_t name_id, int64_t t) {
    if (open_.empty()) return;
    auto it = open_.end() - 1;  // unknown name (0): the most recently begun phase
    if (name_id != 0) {
      for (auto p = open_.rbegin(); p != open_.rend(); ++p)
        if (p->name_id == name_id) {
          it = std::prev(p.base());
          break;
        }
    }
    if (phases_.size() < options_.max_phases_per_device)
      phases_.push_back({std::move(*it), t, true});
    else
      ++phases_omitted_;
    open_.erase(it);
    phases_changed();
  }

  PhasePeak phase_row(const ClosedPhase& p, int ordinal, const DeviceState* /*state*/) const {
    PhasePeak row;
    row.name = string_or_id(p.phase.name_id);
    row.start_ns = p.phase.start_ns;
    row.end_ns = p.end_ns;
    row.closed = p.closed;
    row.peak_time_ns = p.phase.start_ns;
    for (const auto& e : p.phase.peaks) {
      if (e.device != ordinal) continue;
      row.peak_allocated_bytes = e.allocated;
      row.peak_time_ns = e.t_ns;
      row.peak_reserved_bytes = e.reserved;
    }
    return row;
  }

  // The innermost Python frame of a site's stack, named as add_frames names it; "" for none.
  std::string python_line_of(uint32_t site) const {
    auto stack = stacks_.find(site);
    if (stack == stacks_.end()) return {};
    for (uint64_t pc : stack->second) {
      if (!trace::is_python_frame(pc)) continue;
      auto sym = symbols_.find(pc);
      return sym != symbols_.end() ? string_or_id(sym->second) : fmt::format("{:#x}", pc);
    }
    return {};
  }

  void add_frames(std::vector<GroupRow>& rows) const {
    for (GroupRow& row : rows) {
      if (!row.by_site || row.site == 0) continue;
      auto stack = stacks_.find(row.site);
      if (stack == stacks_.end()) continue;
      for (uint64_t pc : stack->second) {
        auto sym = symbols_.find(pc);
        std::string frame =
            sym != symbols_.end() ? string_or_id(sym->second) : fmt::format("{:#x}", pc);
        // The innermost Python frame names the row's source line (python_lines.h).
        if (row.python_line.empty() && trace::is_python_frame(pc)) row.python_line = frame;
        if (row.frames.size() < options_.max_frames) row.frames.push_back(std::move(frame));
      }
    }
  }

  void forget_freed_if_too_many() {
    if (++freed_entries_ > kMaxRememberedFrees) forget_freed();
  }
  [[gnu::noinline]] void forget_freed() {
    live_.retain_if([](uint64_t, const LiveAlloc& a) { return !a.freed; });
    freed_entries_ = 0;
  }

  // The per-event handlers are forced inline into feed(): a call each costs about as much as the
  // work it does (docs/performance.md has the instruction counts).
  [[gnu::always_inline]] void release(uint64_t address, const LiveAlloc& a, int64_t t) {
    if (a.kind == static_cast<uint8_t>(trace::MemKind::pinned_host)) {
      ++summary_.pinned_host.free;
      pinned_live_ -= a.bytes;
    } else {
      device(a.device).free(address, a, t, current_phase());
      update_phases(a.device, t);
    }
  }

  [[gnu::always_inline]] void on_alloc(const trace::Record& r, int64_t t) {
    bool inserted = false;
    LiveAlloc& a = live_.find_or_insert(r.address, &inserted);  // not touched by what follows
    if (!inserted && a.freed) {
      --freed_entries_;
    } else if (!inserted) {
      // The free of the previous owner of this address was lost (torn record): close it here.
      release(r.address, a, t);
    }
    a = LiveAlloc{};
    a.bytes = r.bytes;
    a.t_ns = t;
    a.site = r.site;
    a.device = r.device;
    a.kind = static_cast<uint8_t>(trace::mem_kind(r));
    if (trace::mem_kind(r) == trace::MemKind::pinned_host) {
      ++summary_.pinned_host.alloc;
      pinned_live_ += r.bytes;
      summary_.pinned_host.peak_bytes = std::max(summary_.pinned_host.peak_bytes, pinned_live_);
    } else {
      device(r.device).alloc(r.address, a, (r.flags & trace::kFlagPooled) != 0, current_phase());
      update_phases(r.device, t);
    }
  }

  [[gnu::always_inline]] void on_free(const trace::Record& r, int64_t t) {
    if (r.address == 0) return;  // cudaFree(nullptr) is a valid no-op
    LiveAlloc* a = live_.find(r.address);
    if (a != nullptr && !a->freed) {
      release(r.address, *a, t);
      a->freed = true;
      forget_freed_if_too_many();
      return;
    }
    add_anomaly(r, t, a != nullptr ? Kind::double_free : Kind::free_unknown);
  }

  void on_failed(const trace::Record& r, int64_t t) {
    if (trace::mem_kind(r) != trace::MemKind::pinned_host) device(r.device).count_failed();
    Anomaly& a = add_anomaly(r, t, Kind::alloc_failed);
    a.in_use_bytes = r.aux;
  }

  // The real free after an Op::free failed: the allocation is live again (revived from the
  // freed entry the free left), and the failure is listed with its API and code.
  void on_free_failed(const trace::Record& r, int64_t t) {
    LiveAlloc* a = live_.find(r.address);
    if (a != nullptr && a->freed) {
      a->freed = false;
      --freed_entries_;
      // aux: the time of the free record it cancels (the preload's), else this record's.
      const int64_t free_t = r.aux != 0 ? static_cast<int64_t>(r.aux - clock_base_) : t;
      if (a->kind == static_cast<uint8_t>(trace::MemKind::pinned_host)) {
        --summary_.pinned_host.free;
        pinned_live_ += a->bytes;
        summary_.pinned_host.peak_bytes = std::max(summary_.pinned_host.peak_bytes, pinned_live_);
      } else {
        device(a->device).unfree(r.address, *a, free_t, t, current_phase());
        update_phases(a->device, t);
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

  // Counts and lists one anomaly. A free reported both as an Op::anomaly record and as an
  // Op::free of an unknown pointer, back to back from one thread, is one anomaly.
  Anomaly& add_anomaly(const trace::Record& r, int64_t t, Kind kind) {
    bool free_kind = kind == Kind::free_unknown || kind == Kind::double_free;
    bool duplicate = free_kind && last_free_anomaly_index_ + 1 == index_ &&
                     last_free_anomaly_address_ == r.address && last_free_anomaly_tid_ == r.tid;
    if (free_kind) {
      last_free_anomaly_index_ = index_;
      last_free_anomaly_address_ = r.address;
      last_free_anomaly_tid_ = r.tid;
    }
    if (duplicate) return scratch_;
    if (r.device >= 0 || devices_.count(r.device)) {
      if (kind == Kind::free_unknown) device(r.device).count_free_unknown();
      if (kind == Kind::double_free) device(r.device).count_double_free();
    }
    if (anomalies_.size() >= options_.max_anomalies_per_trace) {
      ++anomalies_omitted_;
      return scratch_;
    }
    Anomaly a;
    a.pid = summary_.pid;
    a.device = r.device;
    a.kind = kind;
    if (kind == Kind::unrecognised) a.trace_code = r.aux;
    a.api = trace::api_name(static_cast<trace::Api>(r.api));
    a.address = r.address;
    a.bytes = r.bytes;
    a.t_ns = t;
    a.result = r.result;
    a.site = r.site;
    anomalies_.push_back(std::move(a));
    return anomalies_.back();
  }

  const AnalysisOptions& options_;
  size_t trace_index_;
  uint64_t clock_base_;
  TraceSummary summary_;
  std::map<int, DeviceInfoCopy> device_info_;
  std::map<int, std::unique_ptr<DeviceState>> devices_;
  AddressMap<LiveAlloc> live_;  // live allocations, and recently freed addresses (a.freed)
  size_t freed_entries_ = 0;
  std::unordered_map<uint64_t, std::string> strings_;
  std::unordered_map<uint32_t, std::vector<uint64_t>> stacks_;
  std::unordered_map<uint64_t, uint64_t> symbols_;  // code address -> string id
  std::vector<OpenPhase> open_;
  uint64_t current_phase_ = 0;  // phase key of open_.back(): its name id + 1, 0 = none open
  std::vector<ClosedPhase> phases_;
  uint64_t phases_omitted_ = 0;
  std::vector<Anomaly> anomalies_;
  uint64_t anomalies_omitted_ = 0;
  Anomaly scratch_;
  uint64_t last_free_anomaly_index_ = 0;
  uint64_t last_free_anomaly_address_ = 0;
  uint32_t last_free_anomaly_tid_ = 0;
  int last_ordinal_ = 0;
  DeviceState* last_device_ = nullptr;
  uint64_t pinned_live_ = 0;
  uint64_t index_ = 0;
  int64_t first_ns_ = INT64_MAX;  // earliest and latest event time (records may be out of order)
  int64_t last_ns_ = INT64_MIN;
  bool saw_site_ = false;
};

Analysis::Analysis(AnalysisOptions options) : options_(options) {}
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
  current_->finish(stats, &report_);
  current_.reset();
}

Report Analysis::finish() {
  if (current_) end_trace(trace::ReadStats{});
  if (report_.traces.size() >= 2) report_.ranks = summarize_ranks(report_);
  return std::move(report_);
}

}  // namespace gpumem::analyzer
