#include "render_perfetto.h"
#include "time_span.h"

#include <algorithm>
#include <numeric>
#include <set>

#include <fmt/format.h>

namespace gpumem::analyzer {

namespace {
using Json = nlohmann::json;

constexpr int kCounterTid = 0;
constexpr int kFirstPhaseTid = 1;
// Where a thread whose id is a phase track's (or the counters') goes: above Linux's largest
// thread id (2^22).
constexpr int64_t kMovedThreadTid = int64_t{1} << 30;

// One event with its time still in report nanoseconds (trace-relative); placed on the common
// timeline once the origin is known.
struct Pending {
  Json event;
  int64_t ns = 0;
  int64_t dur_ns = -1;  // >= 0 for complete ("X") events
};

// A trace's time on the common timeline. A corrupt trace's times may be anywhere: saturate
// rather than overflow (a wrapped time would put the event before the start).
int64_t shifted(int64_t offset, int64_t t_ns) {
  int64_t out = 0;
  if (__builtin_add_overflow(offset, t_ns, &out)) return t_ns > 0 ? INT64_MAX : INT64_MIN;
  return out;
}

// Perfetto wants microseconds; keep nanosecond precision with a fractional part.
double micros(int64_t ns) {
  return static_cast<double>(ns) / 1000.0;
}

std::string device_label(const DeviceReport& d) {
  return fmt::format("GPU {}", d.device);
}

// Processes of one host share CLOCK_MONOTONIC, so their clock bases line them up exactly;
// across hosts only the wall clock at trace start is comparable.
std::vector<int64_t> trace_offsets(const std::vector<TraceSummary>& traces) {
  bool one_host = std::all_of(traces.begin(), traces.end(),
                              [&](const TraceSummary& t) { return t.host == traces[0].host; });
  std::vector<int64_t> offsets;
  for (const TraceSummary& t : traces)
    offsets.push_back(static_cast<int64_t>(one_host ? t.clock_base_ns : t.start_unix_ns));
  if (!offsets.empty()) {
    int64_t low = *std::min_element(offsets.begin(), offsets.end());
    for (int64_t& o : offsets) o = span_ns(low, o);
  }
  return offsets;
}

// The pid shown for each trace: its own, unless two traces share one (different hosts).
std::vector<uint32_t> trace_pids(const std::vector<TraceSummary>& traces) {
  std::set<uint32_t> seen;
  bool unique = true;
  for (const TraceSummary& t : traces) unique = seen.insert(t.pid).second && unique;
  std::vector<uint32_t> pids;
  for (size_t i = 0; i < traces.size(); ++i)
    pids.push_back(unique ? traces[i].pid : static_cast<uint32_t>(i + 1));
  return pids;
}

std::string process_name(const TraceSummary& t) {
  std::string name =
      t.rank >= 0 ? fmt::format("rank {} (pid {})", t.rank, t.pid) : fmt::format("pid {}", t.pid);
  if (!t.host.empty()) name += " on " + t.host;
  return name;
}
}  // namespace

std::vector<int> phase_tracks(const std::vector<PhasePeak>& phases) {
  std::vector<size_t> order(phases.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Outer phases first: earlier start, then the longer one.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (phases[a].start_ns != phases[b].start_ns) return phases[a].start_ns < phases[b].start_ns;
    return phases[a].end_ns > phases[b].end_ns;
  });
  std::vector<std::vector<int64_t>> open_ends;  // per track: ends of the slices still open
  std::vector<int> track(phases.size(), 0);
  for (size_t i : order) {
    const PhasePeak& p = phases[i];
    int64_t end = std::max(p.end_ns, p.start_ns);
    size_t k = 0;
    for (;; ++k) {
      if (k == open_ends.size()) open_ends.emplace_back();
      std::vector<int64_t>& stack = open_ends[k];
      while (!stack.empty() && stack.back() <= p.start_ns) stack.pop_back();
      if (stack.empty() || stack.back() >= end) break;  // disjoint, or nested inside the top
    }
    open_ends[k].push_back(end);
    track[i] = static_cast<int>(k);
  }
  return track;
}

Json perfetto_json(const Report& report) {
  std::vector<int64_t> offsets = trace_offsets(report.traces);
  std::vector<uint32_t> pids = trace_pids(report.traces);
  std::vector<Json> metadata;
  std::vector<Pending> timed;

  for (size_t i = 0; i < report.traces.size(); ++i)
    metadata.push_back({{"ph", "M"},
                        {"pid", pids[i]},
                        {"tid", kCounterTid},
                        {"name", "process_name"},
                        {"args", {{"name", process_name(report.traces[i])}}}});

  std::set<size_t> phases_done;  // phases belong to the trace: emit them once per process
  for (const DeviceReport& d : report.devices) {
    size_t ti = d.trace_index < report.traces.size() ? d.trace_index : 0;
    if (report.traces.empty()) break;
    uint32_t pid = pids[ti];
    int64_t off = offsets[ti];
    std::string gpu = device_label(d);
    const Timeline& tl = d.timeline;
    for (size_t k = 0; k < tl.t_ns.size(); ++k) {
      timed.push_back({{{"ph", "C"},
                        {"pid", pid},
                        {"tid", kCounterTid},
                        {"name", gpu + " memory"},
                        {"args", {{"allocated", tl.allocated[k]}, {"reserved", tl.reserved[k]}}}},
                       shifted(off, tl.t_ns[k])});
      double frag = k < tl.fragmentation.size() ? tl.fragmentation[k] : 0.0;
      timed.push_back({{{"ph", "C"},
                        {"pid", pid},
                        {"tid", kCounterTid},
                        {"name", gpu + " fragmentation"},
                        {"args", {{"external", frag}}}},
                       shifted(off, tl.t_ns[k])});
    }
    Json peak_args = {{"allocated_bytes", d.peak.allocated_bytes},
                      {"reserved_bytes", d.peak.reserved_at_peak_bytes}};
    if (d.peak.phase) peak_args["phase"] = *d.peak.phase;
    timed.push_back({{{"ph", "i"},
                      {"s", "p"},
                      {"pid", pid},
                      {"tid", kCounterTid},
                      {"name", gpu + " peak allocated"},
                      {"cat", "peak"},
                      {"args", peak_args}},
                     shifted(off, d.peak.time_ns)});

    if (phases_done.insert(ti).second) {
      // Process-wide phases (no thread) on tracks of their own, laid out first: a thread whose
      // id is one of theirs (a process that is pid 1 in a container has a thread 1) moves to a
      // track above every Linux thread id, so its slices never mix with theirs.
      std::vector<PhasePeak> shared;
      for (const PhasePeak& ph : d.phases)
        if (!ph.tid) shared.push_back(ph);
      const std::vector<int> tracks = phase_tracks(shared);
      const int64_t phase_tids =
          shared.empty() ? 0 : 1 + *std::max_element(tracks.begin(), tracks.end());
      auto track_of = [&](uint32_t tid) {
        const bool taken =
            tid == kCounterTid || (tid >= kFirstPhaseTid && tid < kFirstPhaseTid + phase_tids);
        return taken ? kMovedThreadTid + int64_t{tid} : int64_t{tid};
      };
      // Markers, on their thread's track (a thread of the process, as Nsight shows them).
      std::set<uint32_t> named;
      auto name_thread = [&](uint32_t tid) {
        if (!named.insert(tid).second) return;
        metadata.push_back({{"ph", "M"},
                            {"pid", pid},
                            {"tid", track_of(tid)},
                            {"name", "thread_name"},
                            {"args", {{"name", fmt::format("thread {}", tid)}}}});
      };
      for (const MarkRow& m : d.marks) {
        name_thread(m.tid);
        timed.push_back({{{"ph", "i"},
                          {"s", "t"},
                          {"pid", pid},
                          {"tid", track_of(m.tid)},
                          {"name", m.name},
                          {"cat", "mark"}},
                         shifted(off, m.t_ns)});
      }
      // NVTX push/pop ranges nest on their own thread's track.
      for (const PhasePeak& ph : d.phases) {
        if (!ph.tid) continue;
        name_thread(*ph.tid);
        timed.push_back({{{"ph", "X"},
                          {"pid", pid},
                          {"tid", track_of(*ph.tid)},
                          {"name", ph.name},
                          {"cat", "phase"},
                          {"args", {{"closed", ph.closed}}}},
                         shifted(off, ph.start_ns),
                         std::max<int64_t>(span_ns(ph.start_ns, ph.end_ns), 0)});
      }
      for (int64_t k = 0; k < phase_tids; ++k)
        metadata.push_back(
            {{"ph", "M"},
             {"pid", pid},
             {"tid", kFirstPhaseTid + k},
             {"name", "thread_name"},
             {"args",
              {{"name", k == 0 ? std::string("phases") : fmt::format("phases {}", k + 1)}}}});
      for (size_t k = 0; k < shared.size(); ++k) {
        const PhasePeak& ph = shared[k];
        timed.push_back({{{"ph", "X"},
                          {"pid", pid},
                          {"tid", kFirstPhaseTid + tracks[k]},
                          {"name", ph.name},
                          {"cat", "phase"},
                          {"args", {{"closed", ph.closed}}}},
                         shifted(off, ph.start_ns),
                         std::max<int64_t>(span_ns(ph.start_ns, ph.end_ns), 0)});
      }
    }
  }

  // Failed allocations come from the anomaly list (listed ones; the counts hold them all).
  for (const Anomaly& a : report.anomalies) {
    if (a.kind != Anomaly::Kind::alloc_failed) continue;
    if (a.trace_index >= report.traces.size()) continue;
    const size_t ti = a.trace_index;
    Json args = {{"requested_bytes", a.bytes}, {"result", a.result}};
    if (a.in_use_bytes) args["in_use_bytes"] = *a.in_use_bytes;
    timed.push_back({{{"ph", "i"},
                      {"s", "p"},
                      {"pid", pids[ti]},
                      {"tid", kCounterTid},
                      {"name", fmt::format("GPU {} allocation failed", a.device)},
                      {"cat", "alloc_failed"},
                      {"args", args}},
                     shifted(offsets[ti], a.t_ns)});
  }

  int64_t origin = 0;
  if (!timed.empty())
    origin = std::min_element(timed.begin(), timed.end(), [](const Pending& a, const Pending& b) {
               return a.ns < b.ns;
             })->ns;
  std::stable_sort(timed.begin(), timed.end(),
                   [](const Pending& a, const Pending& b) { return a.ns < b.ns; });

  Json events = Json::array();
  for (Json& m : metadata) events.push_back(std::move(m));
  for (Pending& p : timed) {
    p.event["ts"] = micros(span_ns(origin, p.ns));
    if (p.dur_ns >= 0) p.event["dur"] = micros(p.dur_ns);
    events.push_back(std::move(p.event));
  }
  return {{"displayTimeUnit", "ms"}, {"traceEvents", std::move(events)}};
}

std::string render_perfetto(const Report& report) {
  // A marker or command line may hold any bytes: replace invalid UTF-8 instead of throwing.
  return perfetto_json(report).dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace gpumem::analyzer
