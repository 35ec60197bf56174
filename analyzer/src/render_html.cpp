#include "render_html.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include <fmt/format.h>

#include "gpumem/analyzer/render_text.h"
#include "gpumem/report_assets.h"  // generated from analyzer/html/ at build time
#include "gpumem/visible_text.h"

namespace gpumem::analyzer {

namespace {
using Json = nlohmann::json;

// Four significant decimals are plenty for a 0..1 share and halve the timeline's size.
double round4(double v) {
  return std::round(v * 10000.0) / 10000.0;
}

Json rows_json(const std::vector<GroupRow>& rows, const HtmlOptions& o) {
  Json out = Json::array();
  for (size_t i = 0; i < rows.size() && i < o.max_rows; ++i) {
    const GroupRow& r = rows[i];
    Json j = {{"count", r.count}, {"bytes", r.bytes}};
    if (r.by_site) {
      j["site"] = r.site;
      std::vector<std::string> frames(
          r.frames.begin(),
          r.frames.begin() + static_cast<std::ptrdiff_t>(std::min(r.frames.size(), o.max_frames)));
      j["frames"] = frames;
      if (!r.python_line.empty()) j["python_line"] = r.python_line;
    } else {
      j["min"] = r.min_bytes;
      j["max"] = r.max_bytes;
    }
    out.push_back(std::move(j));
  }
  return out;
}

// Totals of the rows the page leaves out, so the table can still say what they sum to.
Json rest_json(const std::vector<GroupRow>& rows, size_t shown) {
  uint64_t count = 0, bytes = 0;
  for (size_t i = shown; i < rows.size(); ++i) count += rows[i].count, bytes += rows[i].bytes;
  return {
      {"rows", rows.size() > shown ? rows.size() - shown : 0}, {"count", count}, {"bytes", bytes}};
}

Json phase_json(const PhasePeak& p, int depth) {
  return {{"name", p.name},
          {"start", p.start_ns},
          {"end", p.end_ns},
          {"closed", p.closed},
          {"peak", p.peak_allocated_bytes},
          {"peak_t", p.peak_time_ns},
          {"peak_reserved", p.peak_reserved_bytes},
          {"depth", depth}};
}

// Nesting depth of each phase: how many phases begun earlier are still open when it begins.
// Depth 0 = outermost: those are the timeline's bands; the table indents by depth.
std::vector<int> phase_depths(const std::vector<PhasePeak>& phases) {
  std::vector<size_t> order(phases.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (phases[a].start_ns != phases[b].start_ns) return phases[a].start_ns < phases[b].start_ns;
    return phases[a].end_ns > phases[b].end_ns;
  });
  std::vector<int64_t> open_ends;  // a min-heap of the ends of the phases still open
  std::vector<int> depth(phases.size(), 0);
  for (size_t i : order) {
    while (!open_ends.empty() && open_ends.front() <= phases[i].start_ns) {
      std::pop_heap(open_ends.begin(), open_ends.end(), std::greater<>());
      open_ends.pop_back();
    }
    depth[i] = static_cast<int>(open_ends.size());
    open_ends.push_back(std::max(phases[i].end_ns, phases[i].start_ns));
    std::push_heap(open_ends.begin(), open_ends.end(), std::greater<>());
  }
  return depth;
}

// NVTX push/pop ranges nest per thread: one lane per thread (after a lane for the process-wide
// phases, if any), each with its own depths. Empty when no phase has a thread: one lane, as before.
std::vector<uint32_t> phase_lanes(const std::vector<PhasePeak>& phases) {
  std::vector<uint32_t> lanes;
  bool threads = false, process = false;
  for (const PhasePeak& p : phases) (p.tid ? threads : process) = true;
  if (!threads) return lanes;
  if (process) lanes.push_back(0);
  for (const PhasePeak& p : phases)
    if (p.tid && std::find(lanes.begin(), lanes.end(), *p.tid) == lanes.end()) lanes.push_back(*p.tid);
  return lanes;
}

Json phases_json(const DeviceReport& d, const HtmlOptions& o, Json* bands, Json* lanes_out) {
  const std::vector<uint32_t> lanes = phase_lanes(d.phases);
  std::vector<int> depth = phase_depths(d.phases);
  std::vector<int> lane(d.phases.size(), 0);
  if (!lanes.empty()) {
    *lanes_out = Json::array();
    for (size_t l = 0; l < lanes.size(); ++l) {
      lanes_out->push_back({{"tid", lanes[l] ? Json(lanes[l]) : Json(nullptr)},
                            {"label", lanes[l] ? fmt::format("thread {}", lanes[l]) : "process"}});
      std::vector<size_t> members;
      std::vector<PhasePeak> subset;
      for (size_t i = 0; i < d.phases.size(); ++i)
        if (d.phases[i].tid.value_or(0) == lanes[l]) members.push_back(i), subset.push_back(d.phases[i]);
      const std::vector<int> sub = phase_depths(subset);
      for (size_t k = 0; k < members.size(); ++k) depth[members[k]] = sub[k], lane[members[k]] = int(l);
    }
  }
  auto with_lane = [&](Json j, size_t i) {
    if (!lanes.empty()) j["lane"] = lane[i];
    return j;
  };
  *bands = Json::array();
  for (size_t i = 0; i < d.phases.size() && bands->size() < o.max_phase_bands; ++i)
    if (depth[i] == 0) bands->push_back(with_lane(phase_json(d.phases[i], 0), i));
  std::sort(bands->begin(), bands->end(),
            [](const Json& a, const Json& b) { return a["start"] < b["start"]; });
  // Rows: all phases in time order when they fit, else the largest peaks.
  std::vector<size_t> order(d.phases.size());
  std::iota(order.begin(), order.end(), size_t{0});
  if (order.size() > o.max_phase_rows) {
    // Largest peaks; among equal peaks the outer phases (epochs before their steps).
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      if (d.phases[a].peak_allocated_bytes != d.phases[b].peak_allocated_bytes)
        return d.phases[a].peak_allocated_bytes > d.phases[b].peak_allocated_bytes;
      return depth[a] < depth[b];
    });
    order.resize(o.max_phase_rows);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return d.phases[a].start_ns < d.phases[b].start_ns; });
  Json rows = Json::array();
  for (size_t i : order) rows.push_back(with_lane(phase_json(d.phases[i], depth[i]), i));
  return rows;
}

// timeline_by_site (null when the device's allocations had no call sites: the page hides it).
Json sites_json(const DeviceReport& d, const HtmlOptions& o) {
  if (!d.timeline_by_site) return nullptr;
  const SiteTimeline& st = *d.timeline_by_site;
  Json sites = Json::array();
  for (const GroupRow& r : st.sites) {
    const size_t frames = std::min(r.frames.size(), o.max_frames);
    sites.push_back(
        {{"site", r.site},
         {"python_line", r.python_line},
         {"frames", std::vector<std::string>(
                        r.frames.begin(), r.frames.begin() + static_cast<std::ptrdiff_t>(frames))},
         {"count", r.count},
         {"bytes", r.bytes}});
  }
  return {{"grouped_by", st.grouped_by}, {"sites", sites}, {"s", st.bytes}, {"other", st.other}};
}

Json device_json(const Report& report, const DeviceReport& d, const HtmlOptions& o) {
  Json j;
  const TraceSummary* t =
      d.trace_index < report.traces.size() ? &report.traces[d.trace_index] : nullptr;
  j["pid"] = d.pid;
  j["rank"] = d.rank;
  j["device"] = d.device;
  j["name"] = d.name;
  j["host"] = t ? t->host : "";
  j["first"] = t ? t->first_ns : 0;
  j["last"] = t ? t->last_ns : 0;
  j["capacity"] = d.capacity_bytes;
  j["limit"] = d.limit_bytes;
  j["peak"] = {{"allocated", d.peak.allocated_bytes},
               {"t", d.peak.time_ns},
               {"phase", d.peak.phase ? Json(*d.peak.phase) : Json(nullptr)},
               {"reserved_at_peak", d.peak.reserved_at_peak_bytes},
               {"reserved", d.peak.reserved_bytes},
               {"reserved_t", d.peak.reserved_time_ns},
               {"grouped_by", d.peak.grouped_by}};
  const Fragmentation& f = d.fragmentation;
  j["frag"] = {{"at_peak", f.external_at_peak},
               {"max", f.external_max},
               {"max_t", f.external_max_time_ns},
               {"waste_at_peak", f.reserved_unallocated_at_peak_bytes},
               {"utilization", f.utilization ? Json(*f.utilization) : Json(nullptr)},
               {"free_in_segments", f.free_in_segments_at_peak_bytes},
               {"largest_free", f.largest_free_block_at_peak_bytes}};
  j["final"] = {{"allocated", d.final.allocated_bytes},
                {"reserved", d.final.reserved_bytes},
                {"leaked_allocations", d.final.leaked_allocations},
                {"leaked_bytes", d.final.leaked_bytes}};
  j["counts"] = {{"alloc", d.counts.alloc},
                 {"free", d.counts.free},
                 {"alloc_failed", d.counts.alloc_failed},
                 {"free_unknown", d.counts.free_unknown},
                 {"double_free", d.counts.double_free}};
  j["churn"] = {{"allocs_per_second", d.churn.allocs_per_second},
                {"short_lived_share", d.churn.short_lived_share},
                {"short_lived_threshold_ns", d.churn.short_lived_threshold_ns}};
  std::vector<double> frag;
  for (double v : d.timeline.fragmentation) frag.push_back(round4(v));
  j["timeline"] = {
      {"t", d.timeline.t_ns}, {"a", d.timeline.allocated}, {"r", d.timeline.reserved}, {"f", frag}};
  j["by_site"] = sites_json(d, o);
  Json bands, lanes;
  j["phase_rows"] = phases_json(d, o, &bands, &lanes);
  j["bands"] = std::move(bands);
  if (!lanes.is_null()) j["lanes"] = std::move(lanes);  // NVTX ranges on several threads
  if (!d.marks.empty()) {  // instant markers (gpumem_mark, nvtxMark*), at most max_phase_bands
    Json marks = Json::array();
    for (size_t i = 0; i < d.marks.size() && i < o.max_phase_bands; ++i)
      marks.push_back({{"name", d.marks[i].name}, {"t", d.marks[i].t_ns}, {"tid", d.marks[i].tid}});
    j["marks"] = std::move(marks);
  }
  j["phases_total"] = d.phases.size() + d.phases_omitted;
  j["live"] = rows_json(d.peak.live_at_peak, o);
  j["live_rest"] = rest_json(d.peak.live_at_peak, o.max_rows);
  j["hist"] = Json::array();
  for (const HistogramBucket& b : d.size_histogram)
    j["hist"].push_back(
        {{"min", b.min_bytes}, {"max", b.max_bytes}, {"count", b.count}, {"bytes", b.bytes}});
  j["leaks"] = rows_json(d.leaks, o);
  j["leaks_rest"] = rest_json(d.leaks, o.max_rows);
  Json failed = Json::array();
  for (const Anomaly& a : report.anomalies)
    if (a.kind == Anomaly::Kind::alloc_failed && a.trace_index == d.trace_index &&
        a.device == d.device && failed.size() < o.max_failed_marks)
      failed.push_back({{"t", a.t_ns},
                        {"bytes", a.bytes},
                        {"in_use", a.in_use_bytes ? Json(*a.in_use_bytes) : Json(nullptr)}});
  j["failed"] = std::move(failed);
  // Out-of-memory failures (ooms[]): a mark on the timeline each, explained in the OOM panel.
  Json ooms = Json::array();
  for (const Oom& x : report.ooms) {
    // By trace, not pid: two traces may share a pid (two hosts, two containers).
    if (x.trace_index != d.trace_index || x.device != d.device || ooms.size() >= o.max_failed_marks)
      continue;
    Json advice = Json::array();
    for (const OomAdvice& a : x.advice)
      advice.push_back({{"scope", a.scope}, {"setting", a.setting}, {"reason", a.reason}});
    ooms.push_back({{"t", x.t_ns},
                    {"outcome", x.retried ? "retried" : "final"},
                    {"api", x.api},
                    {"requested", x.requested_bytes},
                    {"allocated", x.allocated_bytes},
                    {"reserved", x.reserved_bytes},
                    {"waste", x.reserved_unallocated_bytes},
                    {"largest_free", x.largest_free_block_bytes},
                    {"refused_by", x.refused_by},
                    {"text", render_oom_text(x)},
                    {"advice", std::move(advice)}});
  }
  j["ooms"] = std::move(ooms);
  return j;
}

Json trace_json(const TraceSummary& t) {
  Json j = {{"path", t.path},           {"pid", t.pid},
            {"rank", t.rank},           {"host", t.host},
            {"command", t.command},     {"pool", t.pool},
            {"simulated", t.simulated}, {"events", t.events},
            {"first", t.first_ns},      {"last", t.last_ns},
            {"truncated", t.truncated}, {"truncated_reason", t.truncated_reason},
            {"torn", t.torn},           {"anomalies_omitted", t.anomalies_omitted}};
  j["records_dropped"] = t.records_dropped;  // > 0: the page says the trace is incomplete
  if (t.dropped)  // a bounded trace: the page says which span went
    j["dropped"] = {{"records", t.dropped->records},
                    {"kept", t.dropped->kept},
                    {"first", t.dropped->first_ns},
                    {"last", t.dropped->last_ns}};
  return j;
}

// The header's strings may hold any bytes: shown as the terminal shows them (control characters
// and bytes that are not UTF-8 as \xNN), so the page stays valid UTF-8 and says what was there.
std::string page_title(const Report& report) {
  if (report.traces.empty()) return "gpumem report";
  std::string cmd = visible(report.traces[0].command);
  if (cmd.size() > 80) {
    size_t cut = 77;
    while (cut > 0 && (static_cast<unsigned char>(cmd[cut]) & 0xC0) == 0x80) --cut;  // whole chars
    cmd = cmd.substr(0, cut) + "...";
  }
  return "gpumem report: " + (cmd.empty() ? visible(report.traces[0].path) : cmd);
}

// Fills the template's {{NAME}} slots in one pass, so text put in a slot is never scanned again.
std::string fill(std::string_view tpl,
                 const std::vector<std::pair<std::string, std::string>>& slots) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t open = tpl.find("{{", pos);
    size_t close = open == std::string_view::npos ? open : tpl.find("}}", open);
    if (close == std::string_view::npos) break;
    std::string_view name = tpl.substr(open + 2, close - open - 2);
    auto slot =
        std::find_if(slots.begin(), slots.end(), [&](const auto& s) { return s.first == name; });
    out.append(tpl.substr(pos, open - pos));
    if (slot != slots.end())
      out += slot->second;
    else
      out.append(tpl.substr(open, close + 2 - open));
    pos = close + 2;
  }
  out.append(tpl.substr(pos));
  return out;
}
}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string json_for_script(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size() + text.size() / 16);
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    // <, > and & only occur inside JSON strings, where \u escapes mean the same characters.
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xE2' && i + 2 < text.size() && text[i + 1] == '\x80' &&
               (text[i + 2] == '\xA8' || text[i + 2] == '\xA9')) {
      out += text[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";  // line/paragraph separators
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

Json html_data(const Report& report, const HtmlOptions& o) {
  Json j;
  j["schema"] = kReportPageSchema;
  j["traces"] = Json::array();
  for (const TraceSummary& t : report.traces) j["traces"].push_back(trace_json(t));
  j["devices"] = Json::array();
  for (const DeviceReport& d : report.devices) j["devices"].push_back(device_json(report, d, o));
  j["anomalies"] = Json::array();
  for (size_t i = 0; i < report.anomalies.size() && i < o.max_anomalies; ++i) {
    const Anomaly& a = report.anomalies[i];
    j["anomalies"].push_back({{"pid", a.pid},
                              {"device", a.device},
                              {"kind", kind_name(a)},
                              {"address", fmt::format("{:#x}", a.address)},
                              {"bytes", a.bytes},
                              {"t", a.t_ns},
                              {"in_use", a.in_use_bytes ? Json(*a.in_use_bytes) : Json(nullptr)},
                              {"result", a.result},
                              {"site", a.site}});
  }
  uint64_t omitted = 0;
  for (const TraceSummary& t : report.traces) omitted += t.anomalies_omitted;
  j["anomalies_total"] = report.anomalies.size() + omitted;
  if (report.ranks) {
    const RanksSummary& r = *report.ranks;
    j["ranks"] = {{"processes", r.processes},
                  {"imbalance_allocated", r.peak_allocated.imbalance},
                  {"imbalance_reserved", r.peak_reserved.imbalance},
                  {"mean_allocated", r.peak_allocated.mean_bytes},
                  {"mean_reserved", r.peak_reserved.mean_bytes}};
  } else {
    j["ranks"] = nullptr;
  }
  j["budgets"] = Json::array();
  for (const BudgetReport& b : report.budgets) {
    Json processes = Json::array();
    for (const BudgetShare& s : b.processes)
      processes.push_back({{"pid", s.pid}, {"at_peak", s.bytes_at_peak}, {"peak", s.peak_bytes}});
    j["budgets"].push_back({{"name", b.name},
                            {"device", b.device},
                            {"limit", b.limit_bytes},
                            {"peak", b.peak_bytes},
                            {"peak_t", b.peak_time_ns},
                            {"exact", b.exact},
                            {"processes", std::move(processes)}});
  }
  return j;
}

std::string render_html(const Report& report, const HtmlOptions& options) {
  std::string command, host;
  if (!report.traces.empty()) {
    command = visible(report.traces[0].command);
    host = visible(report.traces[0].host);
  }
  if (report.traces.size() > 1)
    command += fmt::format("  (and {} more processes)", report.traces.size() - 1);
  return fill(kReportHtmlTemplate, {{"TITLE", html_escape(page_title(report))},
                                    {"COMMAND", html_escape(command)},
                                    {"HOST", html_escape(host)},
                                    {"CSS", std::string(kReportCss)},
                                    {"JS", std::string(kReportJs)},
                                    {"DATA", json_for_script(html_data(report, options))}});
}

}  // namespace gpumem::analyzer
