#include "metrics.h"

#include <algorithm>
#include <map>

namespace gpumem::analyzer {

namespace {
void sort_rows(std::vector<GroupRow>& rows) {
  std::stable_sort(rows.begin(), rows.end(),
                   [](const GroupRow& a, const GroupRow& b) { return a.bytes > b.bytes; });
}
}  // namespace

std::vector<GroupRow> rows_by_site(const SiteAggregates& sites) {
  std::vector<GroupRow> rows;
  std::map<uint32_t, Aggregate> ordered(sites.begin(), sites.end());
  for (const auto& [site, agg] : ordered) {
    if (agg.count == 0) continue;
    GroupRow row;
    row.by_site = true;
    row.site = site;
    row.count = agg.count;
    row.bytes = agg.bytes;
    rows.push_back(std::move(row));
  }
  sort_rows(rows);
  return rows;
}

std::vector<GroupRow> rows_by_class(const ClassAggregates& classes) {
  std::vector<GroupRow> rows;
  for (int k = 0; k < kSizeClasses; ++k) {
    if (classes[k].count == 0) continue;
    GroupRow row;
    row.min_bytes = size_class_min(k);
    row.max_bytes = size_class_max(k);
    row.count = classes[k].count;
    row.bytes = classes[k].bytes;
    rows.push_back(row);
  }
  sort_rows(rows);
  return rows;
}

std::vector<HistogramBucket> histogram_rows(const ClassAggregates& classes) {
  std::vector<HistogramBucket> out;
  for (int k = 0; k < kSizeClasses; ++k) {
    if (classes[k].count == 0) continue;
    out.push_back({size_class_min(k), size_class_max(k), classes[k].count, classes[k].bytes});
  }
  return out;
}

namespace {
struct ProcessPeak {
  uint32_t pid;
  int32_t rank;
  uint64_t allocated = 0;
  uint64_t reserved = 0;
};

template <class Get>
RankStat stat_over(const std::vector<ProcessPeak>& procs, Get get) {
  RankStat s;
  if (procs.empty()) return s;
  double sum = 0;
  const ProcessPeak* max = &procs[0];
  const ProcessPeak* min = &procs[0];
  for (const auto& p : procs) {
    sum += static_cast<double>(get(p));
    if (get(p) > get(*max)) max = &p;
    if (get(p) < get(*min)) min = &p;
  }
  s.max_bytes = get(*max);
  s.min_bytes = get(*min);
  s.mean_bytes = sum / static_cast<double>(procs.size());
  s.imbalance = s.mean_bytes > 0 ? static_cast<double>(s.max_bytes) / s.mean_bytes - 1.0 : 0.0;
  s.max_pid = max->pid;
  s.max_rank = max->rank;
  s.min_pid = min->pid;
  s.min_rank = min->rank;
  return s;
}
}  // namespace

RanksSummary summarize_ranks(const Report& report) {
  // One entry per trace, in trace order; devices are matched to their trace by (pid, rank) in
  // the order the analysis appended them, which is trace order.
  std::vector<ProcessPeak> procs;
  size_t d = 0;
  for (size_t t = 0; t < report.traces.size(); ++t) {
    ProcessPeak p{report.traces[t].pid, report.traces[t].rank};
    for (; d < report.devices.size() && report.devices[d].trace_index == t; ++d) {
      p.allocated = std::max(p.allocated, report.devices[d].peak.allocated_bytes);
      p.reserved = std::max(p.reserved, report.devices[d].peak.reserved_bytes);
    }
    procs.push_back(p);
  }
  RanksSummary out;
  out.processes = procs.size();
  out.peak_allocated = stat_over(procs, [](const ProcessPeak& p) { return p.allocated; });
  out.peak_reserved = stat_over(procs, [](const ProcessPeak& p) { return p.reserved; });
  return out;
}

}  // namespace gpumem::analyzer
