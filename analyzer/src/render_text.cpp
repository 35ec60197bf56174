#include "gpumem/analyzer/render_text.h"

#include <algorithm>

#include <fmt/format.h>

#include "gpumem/units.h"
#include "gpumem/visible_text.h"
#include "time_span.h"

namespace gpumem::analyzer {

namespace {
std::string human(uint64_t bytes) {
  char buf[32];
  return format_bytes(bytes, buf, sizeof buf);
}

// Trace-relative times in the unit that keeps them readable: 12.345 s, 12.345 ms, 12.345 us.
std::string seconds(int64_t ns) {
  double v = static_cast<double>(ns);
  double a = v < 0 ? -v : v;
  if (a >= 1e9) return fmt::format("{:.3f} s", v / 1e9);
  if (a >= 1e6) return fmt::format("{:.3f} ms", v / 1e6);
  return fmt::format("{:.3f} us", v / 1e3);
}

std::string percent(double share) {
  return fmt::format("{:.1f}%", share * 100.0);
}

std::string row_label(const GroupRow& r, size_t max_frames) {
  if (!r.by_site) return fmt::format("size {} .. {}", human(r.min_bytes), human(r.max_bytes));
  if (r.site == 0) return "(no call stack recorded)";
  if (r.frames.empty()) return fmt::format("site {} (stack not in trace)", r.site);
  std::string out;
  size_t first = 0;
  if (!r.python_line.empty()) {
    // Grouped by Python line: that line, then its callers (the frames after it in the stack).
    auto at = std::find(r.frames.begin(), r.frames.end(), r.python_line);
    first = at != r.frames.end() ? static_cast<size_t>(at - r.frames.begin()) : r.frames.size();
    out = visible(r.python_line);
    if (r.sites > 1) out += fmt::format("  [{} stacks]", r.sites);
    for (size_t i = first + 1; i < r.frames.size() && i <= first + max_frames; ++i)
      out += "\n            from " + visible(r.frames[i]);
    return out;
  }
  for (size_t i = 0; i < r.frames.size() && i < max_frames; ++i) {
    if (i) out += "\n          ";
    out += (i ? "  from " : "") + visible(r.frames[i]);
  }
  return out;
}

void rows(std::string& out, const std::vector<GroupRow>& rs, const TextOptions& o) {
  size_t shown = std::min(rs.size(), o.top_rows);
  for (size_t i = 0; i < shown; ++i)
    out += fmt::format("  {:>12} in {:>6} allocs  {}\n", human(rs[i].bytes), rs[i].count,
                       row_label(rs[i], o.max_frames));
  if (rs.size() > shown) {
    uint64_t bytes = 0, count = 0;
    for (size_t i = shown; i < rs.size(); ++i) bytes += rs[i].bytes, count += rs[i].count;
    out += fmt::format("  {:>12} in {:>6} allocs  ({} more rows)\n", human(bytes), count,
                       rs.size() - shown);
  }
}

void device_section(std::string& out, const DeviceReport& d, const TextOptions& o) {
  out += fmt::format("\n== pid {}{} device {}{}{}\n", d.pid,
                     d.rank >= 0 ? fmt::format(" rank {}", d.rank) : "", d.device,
                     d.name.empty() ? "" : " (" + visible(d.name) + ")",
                     d.capacity_bytes ? ", capacity " + human(d.capacity_bytes) : "");
  if (d.limit_bytes) out += fmt::format("limit: {}\n", human(d.limit_bytes));
  const Peak& p = d.peak;
  std::string in_phase = p.phase ? " in phase \"" + visible(*p.phase) + "\"" : "";
  if (p.phase_path.size() > 1 || p.phase_tid) {  // an NVTX range: its ancestors and thread
    std::string path;
    for (const auto& name : p.phase_path) path += (path.empty() ? "" : " > ") + visible(name);
    in_phase += fmt::format(" ({}thread {})", p.phase_path.size() > 1 ? path + ", " : "",
                            p.phase_tid.value_or(0));
  }
  out += fmt::format("peak allocated: {} at {}{}\n", human(p.allocated_bytes), seconds(p.time_ns),
                     in_phase);
  out += fmt::format("peak reserved:  {} at {}{}\n", human(p.reserved_bytes),
                     seconds(p.reserved_time_ns),
                     p.reserved_phase ? " in phase \"" + visible(*p.reserved_phase) + "\"" : "");
  if (p.allocated_bytes > 0) {
    out += fmt::format("live at peak ({}):\n", p.grouped_by == "site"          ? "by call site"
                                               : p.grouped_by == "python_line" ? "by Python line"
                                                                               : "by size class");
    rows(out, p.live_at_peak, o);
  }
  const Fragmentation& f = d.fragmentation;
  out += fmt::format(
      "fragmentation: external {} at peak, {} max; reserved but unallocated at peak {}; "
      "utilization {}\n",
      percent(f.external_at_peak), percent(f.external_max),
      human(f.reserved_unallocated_at_peak_bytes),
      f.utilization ? percent(*f.utilization) : std::string("n/a"));
  const Counts& c = d.counts;
  out += fmt::format("calls: {} allocs, {} frees, {} failed, {} unknown frees, {} double frees\n",
                     c.alloc, c.free, c.alloc_failed, c.free_unknown, c.double_free);
  out += fmt::format("churn: {:.1f} allocs/s, {} of {} freed allocations lived < {}\n",
                     d.churn.allocs_per_second, percent(d.churn.short_lived_share), d.churn.freed,
                     seconds(static_cast<int64_t>(d.churn.short_lived_threshold_ns)));
  if (!d.phases.empty()) {
    // Training loops repeat the same phases thousands of times: one row per phase name (how
    // often it ran, its largest peak, where that peak was, its total time), largest peak first.
    struct ByName {
      std::string name;
      size_t count = 0;
      const PhasePeak* largest = nullptr;
      double total_ns = 0;  // double: garbage timestamps must not overflow the sum
      bool open = false;
    };
    std::vector<ByName> names;
    for (const auto& x : d.phases) {
      auto it = std::find_if(names.begin(), names.end(),
                             [&](const ByName& n) { return n.name == x.name; });
      if (it == names.end()) it = names.insert(names.end(), ByName{x.name});
      ++it->count;
      // An end recorded before its begin (records of two threads slightly out of order) lasted
      // nothing, as in the Perfetto export, rather than taking time off the others.
      it->total_ns +=
          std::max(0.0, static_cast<double>(x.end_ns) - static_cast<double>(x.start_ns));
      it->open |= !x.closed;
      if (!it->largest || x.peak_allocated_bytes > it->largest->peak_allocated_bytes)
        it->largest = &x;
    }
    std::stable_sort(names.begin(), names.end(), [](const ByName& a, const ByName& b) {
      return a.largest->peak_allocated_bytes > b.largest->peak_allocated_bytes;
    });
    out += fmt::format("phases ({} ranges{}, {} names), largest peak first:\n", d.phases.size(),
                       d.phases_omitted ? fmt::format(" + {} omitted", d.phases_omitted) : "",
                       names.size());
    for (size_t i = 0; i < names.size() && i < o.max_phases; ++i) {
      const ByName& n = names[i];
      out += fmt::format("  {:>12}  {:<16} {:>6}x  {:>10} in all, largest at {}{}\n",
                         human(n.largest->peak_allocated_bytes), visible(n.name), n.count,
                         seconds(static_cast<int64_t>(std::clamp(n.total_ns, -9e18, 9e18))),
                         seconds(n.largest->peak_time_ns), n.open ? " (one never ended)" : "");
    }
  }
  for (const NvtxHeapRow& h : d.nvtx_heaps)  // an allocator's own pool (NVTX memory extension)
    out += fmt::format(
        "NVTX heap {}{:#x}: {}, regions peak {} in {} ({}), largest free gap then {}, "
        "{} registered{}{}\n",
        h.domain.empty() ? "" : visible(h.domain) + " ", h.address, human(h.bytes),
        human(h.regions_peak_bytes), h.regions_peak_count,
        h.bytes ? percent(static_cast<double>(h.regions_peak_bytes) / static_cast<double>(h.bytes))
                : std::string("n/a"),
        human(h.largest_free_at_peak_bytes), h.regions_registered,
        h.closed ? ""
                 : fmt::format(", {} still in regions at the end", human(h.regions_final_bytes)),
        h.counted ? "" : " (not in the device numbers: see nvtx_heaps[].counted)");
  if (d.final.leaked_allocations > 0) {
    out += fmt::format("leaked at exit: {} in {} allocations\n", human(d.final.leaked_bytes),
                       d.final.leaked_allocations);
    rows(out, d.leaks, o);
  } else {
    out += "leaked at exit: nothing\n";
  }
}
// Failed allocations summed by the Python line that asked for them (Python stacks only).
void failed_by_python_line(std::string& out, const std::vector<Anomaly>& anomalies,
                           const TextOptions& o) {
  std::vector<GroupRow> by_line;
  for (const Anomaly& a : anomalies) {
    if (a.kind != Anomaly::Kind::alloc_failed || a.python_line.empty()) continue;
    auto it = std::find_if(by_line.begin(), by_line.end(),
                           [&](const GroupRow& r) { return r.python_line == a.python_line; });
    if (it == by_line.end()) {
      GroupRow r;
      r.by_site = true;
      r.site = a.site;
      r.frames = a.frames;
      r.python_line = a.python_line;
      by_line.push_back(std::move(r));
      it = by_line.end() - 1;
    }
    it->count += 1;
    it->bytes += a.bytes;
  }
  if (by_line.empty()) return;
  std::stable_sort(by_line.begin(), by_line.end(),
                   [](const GroupRow& a, const GroupRow& b) { return a.bytes > b.bytes; });
  out += "failed allocations by Python line (bytes asked for):\n";
  TextOptions one_frame = o;
  one_frame.max_frames = 1;
  rows(out, by_line, one_frame);
}

}  // namespace

std::string render_oom_text(const Oom& x, const TextOptions& o) {
  std::string out;
  const std::string where = x.python_line.empty() ? (x.frames.empty() ? "" : visible(x.frames[0]))
                                                  : visible(x.python_line);
  const std::string refused =
      x.refused_by == "gpumem"
          ? (x.limit_bytes ? "gpumem's cap of " + human(x.limit_bytes)
                           : std::string("gpumem's pool"))
          : "the device" +
                (x.capacity_bytes ? " (capacity " + human(x.capacity_bytes) + ")" : std::string());
  out += fmt::format(
      "OUT OF MEMORY ({}): {} of {} ({} B) on device {} (pid {}) at {}{}, refused by {}\n",
      x.retried ? "retried and succeeded" : "final", visible(x.api), human(x.requested_bytes),
      x.requested_bytes, x.device, x.pid, seconds(x.t_ns),
      x.phase ? " in phase \"" + visible(*x.phase) + "\"" : "", refused);
  if (!where.empty()) out += "  at " + where + "\n";
  if (x.retried)
    out += fmt::format("  retried: the same request succeeded {} later, after {} were freed\n",
                       seconds(span_ns(x.t_ns, x.retry_t_ns.value_or(x.t_ns))),
                       human(x.freed_before_retry_bytes));
  out += fmt::format("  allocated {}, reserved {}: {} reserved but unallocated (cached, unused)\n",
                     human(x.allocated_bytes), human(x.reserved_bytes),
                     human(x.reserved_unallocated_bytes));
  if (x.pooled || x.free_in_segments_bytes > 0)
    out += fmt::format(
        "  pool: {} free inside its segments, largest free block {} (external fragmentation "
        "{})\n",
        human(x.free_in_segments_bytes), human(x.largest_free_block_bytes),
        percent(x.external_fragmentation));
  if (!x.live.empty()) {
    out += fmt::format("  live at the failure ({}):\n", x.grouped_by == "site" ? "by call site"
                                                        : x.grouped_by == "python_line"
                                                            ? "by Python line"
                                                            : "by size class");
    std::string rs;
    rows(rs, x.live, o);
    for (size_t at = 0; at < rs.size();) {  // indented one more step under the OOM
      const size_t end = rs.find('\n', at);
      out += "  " + rs.substr(at, end - at + 1);
      at = end + 1;
    }
  }
  if (!x.by_module.empty()) {
    out += "  by module:\n";
    for (const OomModuleShare& m : x.by_module)
      out += fmt::format("    {:>12} in {:>6} allocs  {}\n", human(m.bytes), m.count,
                         visible(m.module));
  }
  if (!x.would_fit.empty()) {
    if (x.budget.empty())
      out += "  what would fit (replay of the trace up to this request):\n";
    else  // a shared budget: the replay cannot know what the other processes held
      out += fmt::format(
          "  what would fit (replay of this process alone, up to this request; its cap is the "
          "budget {} shared with other processes, whose bytes the caps below leave out: see the "
          "budget's section):\n",
          visible(x.budget));
    for (const OomFit& f : x.would_fit) {
      if (!f.fits_at_capacity || !f.smallest_limit_bytes)
        out += fmt::format("    pool {}: does not fit on this device at any cap\n", f.policy);
      else
        out += fmt::format("    pool {}: fits under a cap of {} ({} B){}\n", f.policy,
                           human(*f.smallest_limit_bytes), *f.smallest_limit_bytes,
                           f.safe_limit_bytes && *f.safe_limit_bytes != *f.smallest_limit_bytes
                               ? ", every cap from " + human(*f.safe_limit_bytes)
                               : "");
    }
  }
  for (const OomAdvice& a : x.advice)
    out += fmt::format("  advice ({}): {}\n    because {}\n", a.scope, visible(a.setting),
                       visible(a.reason));
  return out;
}

std::string render_text(const Report& report, const TextOptions& o) {
  std::string out;
  if (report.ooms_final + report.ooms_retried > 0) {
    out += fmt::format("{} allocation(s) ran out of memory: {} final, {} retried and succeeded\n",
                       report.ooms_final + report.ooms_retried, report.ooms_final,
                       report.ooms_retried);
    for (const Oom& x : report.ooms) out += render_oom_text(x, o);
    out += "\n";
  }
  for (const TraceSummary& t : report.traces) {
    // Everything a trace holds is escaped (gpumem/visible_text.h): a phase name, command line or
    // host with escape sequences must not reach the terminal raw.
    // A trace converted from a snapshot or an RMM log has no pid or host: nothing said of them.
    std::string who = t.pid != 0 ? fmt::format("pid {}", t.pid) : "";
    if (t.rank >= 0) who += fmt::format("{}rank {}", who.empty() ? "" : " ", t.rank);
    if (!t.host.empty()) who += fmt::format("{}on {}", who.empty() ? "" : " ", visible(t.host));
    out += fmt::format("trace {}: {}{} events{}\n", visible(t.path), who.empty() ? "" : who + ", ",
                       t.events, t.truncated ? " — TRUNCATED: " + visible(t.truncated_reason) : "");
    if (t.records_dropped > 0 && t.dropped)
      out += fmt::format(
          "  INCOMPLETE: {} records dropped (the trace could not stay within GPUMEM_TRACE_MAX: "
          "more allocations live across its dropped middle than an eighth of the bound holds, "
          "or the disk is full); every number below misses them: raise GPUMEM_TRACE_MAX, then "
          "run again\n",
          t.records_dropped);
    else if (t.records_dropped > 0)
      out += fmt::format(
          "  INCOMPLETE: {} records dropped (the trace file could not grow: disk full or file-size "
          "limit); every number below misses them: free disk space or set GPUMEM_TRACE to a "
          "larger volume, then run again\n",
          t.records_dropped);
    if (t.dropped)
      out += fmt::format(
          "  bounded (GPUMEM_TRACE_MAX): {} records from {:.3f} s to {:.3f} s dropped ({} of them "
          "kept in its digest); peaks, leaks, live sets and counts cover the whole run, the "
          "timeline is coarse in that span\n",
          t.dropped->records, static_cast<double>(t.dropped->first_ns) / 1e9,
          static_cast<double>(t.dropped->last_ns) / 1e9, t.dropped->kept);
    if (!t.command.empty()) out += fmt::format("  command: {}\n", visible(t.command));
    if (!t.pool_fallback_from.empty())
      out += fmt::format("  pool: {}, in place of GPUMEM_POOL={}{}\n", visible(t.pool),
                         visible(t.pool_fallback_from),
                         t.pool_fallback_from == "expandable"
                             ? " (the device has no virtual memory management)"
                             : "");
    if (!t.python_frames.empty())
      out += fmt::format("  Python frames: {}\n", visible(t.python_frames));
    if (!t.tensor_capture.empty())
      out += fmt::format("  tensor capture (--tensors): {}\n", visible(t.tensor_capture));
    if (t.pinned_host.alloc > 0)
      out += fmt::format("  pinned host memory: peak {}, {} at exit\n",
                         human(t.pinned_host.peak_bytes), human(t.pinned_host.final_bytes));
    if (t.imported.alloc > 0)
      out += fmt::format(
          "  imported memory (IPC or shareable handle), another process's: peak {}, {} at exit\n",
          human(t.imported.peak_bytes), human(t.imported.final_bytes));
  }
  if (report.devices.empty()) out += "\nno device allocations recorded\n";
  for (const DeviceReport& d : report.devices) device_section(out, d, o);
  if (!report.anomalies.empty()) {
    out += fmt::format("\nanomalies ({} listed):\n", report.anomalies.size());
    for (size_t i = 0; i < report.anomalies.size() && i < o.max_anomalies; ++i) {
      const Anomaly& a = report.anomalies[i];
      out +=
          fmt::format("  {:<14} pid {} device {} at {}: address {:#x}, {}", visible(kind_name(a)),
                      a.pid, a.device, seconds(a.t_ns), a.address, human(a.bytes));
      if (a.in_use_bytes) out += fmt::format(" ({} in use)", human(*a.in_use_bytes));
      if (a.kind == Anomaly::Kind::free_failed)
        out += fmt::format(" ({} failed with {}; still allocated)", visible(a.api), a.result);
      if (!a.python_line.empty())
        out += " at " + visible(a.python_line);
      else if (!a.frames.empty())
        out += " at " + visible(a.frames[0]);
      out += "\n";
    }
    failed_by_python_line(out, report.anomalies, o);
  }
  if (report.ranks) {
    const RankStat& s = report.ranks->peak_allocated;
    out += fmt::format(
        "\nacross {} processes, peak allocated: max {} (pid {}, rank {}), min {} (pid {}, rank "
        "{}), mean {}, imbalance {}\n",
        report.ranks->processes, human(s.max_bytes), s.max_pid, s.max_rank, human(s.min_bytes),
        s.min_pid, s.min_rank,
        // A mean of peaks near 2^64 may round to 2^64, which no uint64 holds: shown as the max.
        human(s.mean_bytes < 0x1p64 ? static_cast<uint64_t>(s.mean_bytes) : UINT64_MAX),
        percent(s.imbalance));
  }
  for (const BudgetReport& b : report.budgets) {
    out += fmt::format("\nshared budget {} on device {}: limit {}, {} processes\n",
                       visible(b.name), b.device, human(b.limit_bytes), b.processes.size());
    out += fmt::format("  peak of the total: {}{} at {} after the first process began\n",
                       b.exact ? "" : "at most ", human(b.peak_bytes), seconds(b.peak_time_ns));
    for (const BudgetShare& s : b.processes)
      out += fmt::format("    pid {:<8} {:>12} at that peak ({} of it), its own peak {}\n", s.pid,
                         human(s.bytes_at_peak),
                         percent(b.peak_bytes == 0 ? 0.0
                                                   : static_cast<double>(s.bytes_at_peak) /
                                                         static_cast<double>(b.peak_bytes)),
                         human(s.peak_bytes));
  }
  return out;
}

}  // namespace gpumem::analyzer
