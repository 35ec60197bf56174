// Shared budgets across traces (GPUMEM_LIMIT_SCOPE=shared): each member device keeps the changes
// of its reserved bytes (ReservedLog); once every trace is read, summarize_budgets sweeps the
// members of each budget in time and finds the peak of their sum (BudgetReport, model.h).
// Processes of one budget share a machine, so their monotonic clocks (clock base + t) agree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

// Reserved bytes over time, one point per change, in record order (times made non-decreasing).
// Past `cap` points, neighbouring pairs merge keeping the larger value: the log stays bounded and
// says it is no longer exact.
class ReservedLog {
 public:
  struct Point {
    int64_t t_ns;
    uint64_t bytes;
  };
  explicit ReservedLog(size_t cap = size_t{1} << 22) : cap_(cap < 2 ? 2 : cap) {}
  void add(int64_t t_ns, uint64_t bytes) {
    if (bytes == last_) return;
    last_ = bytes;
    if (!points_.empty() && t_ns < points_.back().t_ns) t_ns = points_.back().t_ns;
    if (points_.size() == cap_) coarsen();
    points_.push_back({t_ns, bytes});
  }
  const std::vector<Point>& points() const { return points_; }
  std::vector<Point> take_points() { return std::move(points_); }
  bool exact() const { return exact_; }

 private:
  void coarsen();

  size_t cap_;
  uint64_t last_ = 0;
  bool exact_ = true;
  std::vector<Point> points_;
};

// One process's device in a budget, handed over when its trace ends.
struct BudgetMember {
  std::string name;
  int device = 0;
  uint64_t limit_bytes = 0;
  size_t trace_index = 0;
  uint32_t pid = 0;
  int32_t rank = -1;
  uint64_t clock_base_ns = 0;
  uint64_t start_unix_ns = 0;
  int64_t last_ns = 0;  // its last record (relative to its clock base)
  // When the process ended: after it the ledger has its bytes back. Its trace file's last
  // modification (a clean close is at exit; file system timestamps may be a few ms coarse), never
  // before its last record; the sweep takes it no later than the budget's last record (a trace
  // copied without its times must not hold its bytes past the others' records).
  int64_t end_ns = 0;
  bool exact = true;
  std::vector<ReservedLog::Point> points;
};

// One BudgetReport per (name, device), in the order of their first member; timelines of at most
// `max_points` points.
std::vector<BudgetReport> summarize_budgets(std::vector<BudgetMember>& members, size_t max_points);

}  // namespace gpumem::analyzer
