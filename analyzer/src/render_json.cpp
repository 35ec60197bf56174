#include "gpumem/analyzer/render_json.h"

namespace gpumem::analyzer {

namespace {
using Json = nlohmann::ordered_json;

Json optional_string(const std::optional<std::string>& s) {
  return s ? Json(*s) : Json(nullptr);
}

Json rows_json(const std::vector<GroupRow>& rows) {
  Json out = Json::array();
  for (const GroupRow& r : rows) {
    Json j;
    if (r.by_site) {
      j["site"] = r.site;
      j["frames"] = r.frames;
      if (!r.python_line.empty()) {  // Python stacks: grouped by source line (python_lines.h)
        j["python_line"] = r.python_line;
        j["sites"] = r.sites;
      }
    } else {
      j["size_class"] = {{"min_bytes", r.min_bytes}, {"max_bytes", r.max_bytes}};
    }
    j["count"] = r.count;
    j["bytes"] = r.bytes;
    out.push_back(std::move(j));
  }
  return out;
}

Json trace_json(const TraceSummary& t) {
  Json j;
  j["path"] = t.path;
  j["pid"] = t.pid;
  j["host"] = t.host;
  j["rank"] = t.rank;
  j["command"] = t.command;
  j["pool"] = t.pool;
  j["pool_fallback_from"] =
      t.pool_fallback_from.empty() ? Json(nullptr) : Json(t.pool_fallback_from);
  j["simulated"] = t.simulated;
  j["stacks"] = t.stacks;
  j["python_frames"] = t.python_frames.empty() ? Json(nullptr) : Json(t.python_frames);
  j["tensor_capture"] = t.tensor_capture.empty() ? Json(nullptr) : Json(t.tensor_capture);
  j["clock_base_ns"] = t.clock_base_ns;
  j["start_unix_ns"] = t.start_unix_ns;
  j["events"] = t.events;
  j["torn"] = t.torn;
  j["records_dropped"] = t.records_dropped;
  j["records_abandoned"] = t.records_abandoned;
  j["truncated"] = t.truncated;
  j["truncated_reason"] = t.truncated ? Json(t.truncated_reason) : Json(nullptr);
  j["dropped"] = t.dropped ? Json{{"records", t.dropped->records},
                                  {"kept", t.dropped->kept},
                                  {"first_ns", t.dropped->first_ns},
                                  {"last_ns", t.dropped->last_ns}}
                           : Json(nullptr);
  j["first_ns"] = t.first_ns;
  j["last_ns"] = t.last_ns;
  j["pinned_host"] = {{"peak_bytes", t.pinned_host.peak_bytes},
                      {"final_bytes", t.pinned_host.final_bytes},
                      {"alloc", t.pinned_host.alloc},
                      {"free", t.pinned_host.free}};
  j["imported"] = {{"peak_bytes", t.imported.peak_bytes},
                   {"final_bytes", t.imported.final_bytes},
                   {"alloc", t.imported.alloc},
                   {"free", t.imported.free}};
  j["anomalies_omitted"] = t.anomalies_omitted;
  return j;
}

Json device_json(const DeviceReport& d) {
  Json j;
  j["pid"] = d.pid;
  j["rank"] = d.rank;
  j["device"] = d.device;
  j["name"] = d.name;
  j["capacity_bytes"] = d.capacity_bytes;
  j["limit_bytes"] = d.limit_bytes;
  const Peak& p = d.peak;
  j["peak"] = {{"allocated_bytes", p.allocated_bytes},
               {"time_ns", p.time_ns},
               {"phase", optional_string(p.phase)},
               {"reserved_at_peak_bytes", p.reserved_at_peak_bytes},
               {"reserved_bytes", p.reserved_bytes},
               {"reserved_time_ns", p.reserved_time_ns},
               {"reserved_phase", optional_string(p.reserved_phase)},
               {"grouped_by", p.grouped_by},
               {"live_at_peak", rows_json(p.live_at_peak)},
               {"live_at_peak_by_size_class", rows_json(p.live_at_peak_by_size_class)}};
  if (!p.phase_path.empty()) j["peak"]["phase_path"] = p.phase_path;  // NVTX push ranges only
  if (p.phase_tid) j["peak"]["phase_tid"] = *p.phase_tid;
  j["final"] = {{"allocated_bytes", d.final.allocated_bytes},
                {"reserved_bytes", d.final.reserved_bytes},
                {"leaked_allocations", d.final.leaked_allocations},
                {"leaked_bytes", d.final.leaked_bytes}};
  const Counts& c = d.counts;
  j["counts"] = {{"alloc", c.alloc},
                 {"free", c.free},
                 {"alloc_failed", c.alloc_failed},
                 {"free_unknown", c.free_unknown},
                 {"double_free", c.double_free},
                 {"segment_reserve", c.segment_reserve},
                 {"segment_release", c.segment_release}};
  const Fragmentation& f = d.fragmentation;
  j["fragmentation"] = {
      {"external_at_peak", f.external_at_peak},
      {"external_max", f.external_max},
      {"external_max_time_ns", f.external_max_time_ns},
      {"reserved_unallocated_at_peak_bytes", f.reserved_unallocated_at_peak_bytes},
      {"utilization", f.utilization ? Json(*f.utilization) : Json(nullptr)},
      {"free_in_segments_at_peak_bytes", f.free_in_segments_at_peak_bytes},
      {"largest_free_block_at_peak_bytes", f.largest_free_block_at_peak_bytes}};
  Json phases = Json::array();
  for (const PhasePeak& ph : d.phases) {
    phases.push_back({{"name", ph.name},
                      {"start_ns", ph.start_ns},
                      {"end_ns", ph.end_ns},
                      {"closed", ph.closed},
                      {"peak_allocated_bytes", ph.peak_allocated_bytes},
                      {"peak_time_ns", ph.peak_time_ns},
                      {"peak_reserved_bytes", ph.peak_reserved_bytes}});
    if (ph.tid) phases.back()["tid"] = *ph.tid;  // NVTX push/pop ranges only
  }
  j["phases"] = std::move(phases);
  j["phases_omitted"] = d.phases_omitted;
  if (!d.marks.empty()) {  // only for traces with markers (gpumem_mark, nvtxMark*)
    Json marks = Json::array();
    for (const MarkRow& m : d.marks)
      marks.push_back({{"name", m.name}, {"t_ns", m.t_ns}, {"tid", m.tid}});
    j["marks"] = std::move(marks);
    j["marks_omitted"] = d.marks_omitted;
  }
  if (!d.nvtx_heaps.empty()) {  // only for traces with NVTX memory-extension records
    Json heaps = Json::array();
    for (const NvtxHeapRow& h : d.nvtx_heaps)
      heaps.push_back({{"domain", h.domain},
                       {"address", h.address},
                       {"bytes", h.bytes},
                       {"start_ns", h.start_ns},
                       {"end_ns", h.closed ? Json(h.end_ns) : Json(nullptr)},
                       {"regions_registered", h.regions_registered},
                       {"regions_peak_bytes", h.regions_peak_bytes},
                       {"regions_peak_count", h.regions_peak_count},
                       {"peak_time_ns", h.peak_time_ns},
                       {"largest_free_at_peak_bytes", h.largest_free_at_peak_bytes},
                       {"regions_final_bytes", h.regions_final_bytes},
                       {"counted", h.counted}});
    j["nvtx_heaps"] = std::move(heaps);
  }
  Json hist = Json::array();
  for (const HistogramBucket& b : d.size_histogram)
    hist.push_back({{"min_bytes", b.min_bytes},
                    {"max_bytes", b.max_bytes},
                    {"count", b.count},
                    {"bytes", b.bytes}});
  j["size_histogram"] = std::move(hist);
  const Churn& ch = d.churn;
  j["churn"] = {{"duration_s", ch.duration_s},
                {"allocs_per_second", ch.allocs_per_second},
                {"short_lived_threshold_ns", ch.short_lived_threshold_ns},
                {"freed", ch.freed},
                {"short_lived", ch.short_lived},
                {"short_lived_share", ch.short_lived_share},
                {"allocated_bytes_total", ch.allocated_bytes_total}};
  j["leaks"] = rows_json(d.leaks);
  j["timeline"] = {{"t_ns", d.timeline.t_ns},
                   {"allocated", d.timeline.allocated},
                   {"reserved", d.timeline.reserved},
                   {"fragmentation", d.timeline.fragmentation}};
  if (d.timeline_by_site) {  // only when the device's allocations had call sites
    const SiteTimeline& st = *d.timeline_by_site;
    j["timeline_by_site"] = {{"grouped_by", st.grouped_by},
                             {"sites", rows_json(st.sites)},
                             {"bytes", st.bytes},
                             {"other", st.other}};
  }
  return j;
}

Json oom_json(const Oom& o) {
  Json j = {{"trace_index", o.trace_index},
            {"pid", o.pid},
            {"rank", o.rank},
            {"device", o.device},
            {"t_ns", o.t_ns},
            {"tid", o.tid},
            {"api", o.api},
            {"result", o.result},
            {"outcome", o.retried ? "retried" : "final"},
            {"retry_t_ns", o.retry_t_ns ? Json(*o.retry_t_ns) : Json(nullptr)},
            {"freed_before_retry_bytes", o.freed_before_retry_bytes},
            {"refused_by", o.refused_by},
            {"budget", o.budget.empty() ? Json(nullptr) : Json(o.budget)},
            {"pooled", o.pooled},
            {"requested_bytes", o.requested_bytes},
            {"capacity_bytes", o.capacity_bytes},
            {"limit_bytes", o.limit_bytes},
            {"allocated_bytes", o.allocated_bytes},
            {"reserved_bytes", o.reserved_bytes},
            {"reserved_unallocated_bytes", o.reserved_unallocated_bytes},
            {"largest_free_block_bytes", o.largest_free_block_bytes},
            {"free_in_segments_bytes", o.free_in_segments_bytes},
            {"external_fragmentation", o.external_fragmentation},
            {"phase", o.phase ? Json(*o.phase) : Json(nullptr)},
            {"site", o.site},
            {"frames", o.frames},
            {"python_line", o.python_line},
            {"grouped_by", o.grouped_by},
            {"live_bytes", o.live_bytes},
            {"live", rows_json(o.live)}};
  Json modules = Json::array();
  for (const OomModuleShare& m : o.by_module)
    modules.push_back({{"module", m.module}, {"count", m.count}, {"bytes", m.bytes}});
  j["by_module"] = std::move(modules);
  Json fits = Json::array();
  for (const OomFit& f : o.would_fit)
    fits.push_back(
        {{"policy", f.policy},
         {"fits_at_capacity", f.fits_at_capacity},
         {"smallest_limit_bytes",
          f.smallest_limit_bytes ? Json(*f.smallest_limit_bytes) : Json(nullptr)},
         {"safe_limit_bytes", f.safe_limit_bytes ? Json(*f.safe_limit_bytes) : Json(nullptr)}});
  j["would_fit"] = std::move(fits);
  Json advice = Json::array();
  for (const OomAdvice& a : o.advice)
    advice.push_back({{"scope", a.scope}, {"setting", a.setting}, {"reason", a.reason}});
  j["advice"] = std::move(advice);
  return j;
}

Json rank_stat_json(const RankStat& s) {
  return {{"max_bytes", s.max_bytes}, {"min_bytes", s.min_bytes}, {"mean_bytes", s.mean_bytes},
          {"imbalance", s.imbalance}, {"max_pid", s.max_pid},     {"max_rank", s.max_rank},
          {"min_pid", s.min_pid},     {"min_rank", s.min_rank}};
}
}  // namespace

nlohmann::ordered_json report_to_json(const Report& report) {
  Json j;
  j["schema"] = kReportSchema;
  j["traces"] = Json::array();
  for (const TraceSummary& t : report.traces) j["traces"].push_back(trace_json(t));
  j["devices"] = Json::array();
  for (const DeviceReport& d : report.devices) j["devices"].push_back(device_json(d));
  j["anomalies"] = Json::array();
  for (const Anomaly& a : report.anomalies) {
    Json x = {{"pid", a.pid},   {"device", a.device},   {"kind", kind_name(a)},
              {"api", a.api},   {"address", a.address}, {"bytes", a.bytes},
              {"t_ns", a.t_ns}, {"result", a.result},   {"site", a.site}};
    if (a.in_use_bytes) x["in_use_bytes"] = *a.in_use_bytes;
    if (!a.frames.empty()) x["frames"] = a.frames;
    if (!a.python_line.empty()) x["python_line"] = a.python_line;
    j["anomalies"].push_back(std::move(x));
  }
  j["ooms"] = Json::array();
  for (const Oom& o : report.ooms) j["ooms"].push_back(oom_json(o));
  j["oom_counts"] = {{"final", report.ooms_final},
                     {"retried", report.ooms_retried},
                     {"listed", report.ooms.size()}};
  if (report.ranks) {
    j["ranks"] = {{"processes", report.ranks->processes},
                  {"peak_allocated", rank_stat_json(report.ranks->peak_allocated)},
                  {"peak_reserved", rank_stat_json(report.ranks->peak_reserved)}};
  } else {
    j["ranks"] = nullptr;
  }
  j["budgets"] = Json::array();
  for (const BudgetReport& b : report.budgets) {
    Json processes = Json::array();
    for (const BudgetShare& s : b.processes)
      processes.push_back({{"trace_index", s.trace_index},
                           {"pid", s.pid},
                           {"rank", s.rank},
                           {"bytes_at_peak", s.bytes_at_peak},
                           {"peak_bytes", s.peak_bytes}});
    j["budgets"].push_back({{"name", b.name},
                            {"device", b.device},
                            {"limit_bytes", b.limit_bytes},
                            {"peak_bytes", b.peak_bytes},
                            {"peak_time_ns", b.peak_time_ns},
                            {"peak_unix_ns", b.peak_unix_ns},
                            {"exact", b.exact},
                            {"processes", std::move(processes)},
                            {"timeline", {{"t_ns", b.t_ns}, {"total_bytes", b.total_bytes}}}});
  }
  return j;
}

std::string render_json(const Report& report, int indent) {
  // Replace invalid UTF-8 (a command line or a symbol may hold any bytes) instead of throwing.
  return report_to_json(report).dump(indent, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace gpumem::analyzer
