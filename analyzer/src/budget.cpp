#include "budget.h"

#include <algorithm>
#include <map>
#include <utility>

#include "timeline.h"

namespace gpumem::analyzer {

void ReservedLog::coarsen() {
  exact_ = false;
  size_t out = 0;
  for (size_t i = 0; i < points_.size(); i += 2) {
    Point p = points_[i];
    if (i + 1 < points_.size() && points_[i + 1].bytes > p.bytes) p = points_[i + 1];
    points_[out++] = p;
  }
  points_.resize(out);
}

namespace {

struct Change {
  uint64_t at;    // monotonic ns
  size_t member;  // index into the budget's members
  uint64_t bytes;
};

BudgetReport sweep(const std::vector<const BudgetMember*>& ms, size_t max_points) {
  BudgetReport b;
  b.name = ms[0]->name;
  b.device = ms[0]->device;
  const BudgetMember* first = ms[0];
  for (const BudgetMember* m : ms) {
    b.limit_bytes = std::max(b.limit_bytes, m->limit_bytes);
    b.exact = b.exact && m->exact;
    if (m->clock_base_ns < first->clock_base_ns) first = m;
  }
  const uint64_t base = first->clock_base_ns;
  uint64_t window_end = 0;  // just after the budget's last record
  for (const BudgetMember* m : ms)
    window_end = std::max(window_end, m->clock_base_ns + static_cast<uint64_t>(m->last_ns) + 1);
  std::vector<Change> changes;
  for (size_t k = 0; k < ms.size(); ++k) {
    const BudgetMember& m = *ms[k];
    BudgetShare s;
    s.trace_index = m.trace_index;
    s.pid = m.pid;
    s.rank = m.rank;
    for (const ReservedLog::Point& p : m.points) {
      changes.push_back({m.clock_base_ns + static_cast<uint64_t>(std::max<int64_t>(p.t_ns, 0)), k,
                         p.bytes});
      s.peak_bytes = std::max(s.peak_bytes, p.bytes);
    }
    // The process ends: the ledger has its bytes back.
    const uint64_t last = m.clock_base_ns + static_cast<uint64_t>(m.last_ns) + 1;
    const uint64_t end = m.clock_base_ns + static_cast<uint64_t>(std::max<int64_t>(m.end_ns, 0));
    changes.push_back({std::max(last, std::min(end, window_end)), k, 0});
    b.processes.push_back(s);
  }
  std::stable_sort(changes.begin(), changes.end(),
                   [](const Change& x, const Change& y) { return x.at < y.at; });
  std::vector<uint64_t> now(ms.size(), 0), at_peak(ms.size(), 0);
  uint64_t total = 0;
  bool peaked = false;
  MaxBoxTimeline timeline(max_points);
  for (size_t i = 0; i < changes.size();) {
    const uint64_t at = changes[i].at;
    for (; i < changes.size() && changes[i].at == at; ++i) {  // simultaneous changes: one step
      total = total - now[changes[i].member] + changes[i].bytes;
      now[changes[i].member] = changes[i].bytes;
    }
    const int64_t t = static_cast<int64_t>(at - base);
    timeline.add(t, total, total, 0.0);
    if (total > b.peak_bytes || (!peaked && total > 0)) {
      peaked = true;
      b.peak_bytes = total;
      b.peak_time_ns = t;
      at_peak = now;
    }
  }
  for (size_t k = 0; k < ms.size(); ++k) b.processes[k].bytes_at_peak = at_peak[k];
  b.peak_unix_ns = first->start_unix_ns + static_cast<uint64_t>(b.peak_time_ns);
  const Timeline points = timeline.points();
  b.t_ns = points.t_ns;
  b.total_bytes = points.allocated;
  return b;
}

}  // namespace

std::vector<BudgetReport> summarize_budgets(std::vector<BudgetMember>& members, size_t max_points) {
  std::vector<std::pair<std::string, int>> order;
  std::map<std::pair<std::string, int>, std::vector<const BudgetMember*>> groups;
  for (const BudgetMember& m : members) {
    auto key = std::make_pair(m.name, m.device);
    auto [it, inserted] = groups.try_emplace(key);
    if (inserted) order.push_back(key);
    it->second.push_back(&m);
  }
  std::vector<BudgetReport> out;
  for (const auto& key : order) out.push_back(sweep(groups[key], max_points));
  return out;
}

}  // namespace gpumem::analyzer
