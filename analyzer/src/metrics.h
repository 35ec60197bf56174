// Small pure helpers behind the numbers: power-of-two size classes, grouping live allocations
// into rows, the size histogram, and the cross-process (ranks) summary.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

// Class k holds sizes in [2^(k-1), 2^k - 1]; class 0 holds only 0 bytes. 65 classes in all.
inline constexpr int kSizeClasses = 65;
inline int size_class(uint64_t bytes) { return std::bit_width(bytes); }
inline uint64_t size_class_min(int k) { return k == 0 ? 0 : uint64_t{1} << (k - 1); }
inline uint64_t size_class_max(int k) {
  return k == 0 ? 0 : (k == 64 ? UINT64_MAX : (uint64_t{1} << k) - 1);
}

struct Aggregate {
  uint64_t count = 0;
  uint64_t bytes = 0;
  void add(uint64_t b) { ++count, bytes += b; }
  void remove(uint64_t b) { --count, bytes -= b; }
};
using SiteAggregates = std::unordered_map<uint32_t, Aggregate>;
using ClassAggregates = std::array<Aggregate, kSizeClasses>;

// Rows with count > 0, largest bytes first (ties: smaller site / class first). Frames are left
// empty: the caller knows the stacks.
std::vector<GroupRow> rows_by_site(const SiteAggregates& sites);
std::vector<GroupRow> rows_by_class(const ClassAggregates& classes);
// Non-empty classes, smallest first.
std::vector<HistogramBucket> histogram_rows(const ClassAggregates& classes);

// Per process: the largest peak over its devices; then max, min, mean and imbalance over
// processes (traces). Imbalance = max / mean - 1 (0 when mean is 0).
RanksSummary summarize_ranks(const Report& report);

}  // namespace gpumem::analyzer
