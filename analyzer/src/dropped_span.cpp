// add_dropped_span (dropped_span.h).
#include "dropped_span.h"

namespace gpumem::analyzer {

void add_dropped_span(const trace::DroppedSpan& span, uint64_t clock_base_ns,
                      TraceSummary* summary, DeviceReport* devices, size_t device_count) {
  TraceSummary::Dropped d;
  d.records = span.records;
  d.kept = span.kept;
  d.first_ns = static_cast<int64_t>(static_cast<uint64_t>(span.first_t_ns) - clock_base_ns);
  d.last_ns = static_cast<int64_t>(static_cast<uint64_t>(span.last_t_ns) - clock_base_ns);
  summary->dropped = d;
  for (const trace::DroppedSpan::Omitted& row : span.omitted) {
    DeviceReport* dev = nullptr;
    for (size_t i = 0; i < device_count; ++i)
      if (devices[i].device == row.device) dev = &devices[i];
    if (dev == nullptr) continue;  // host records (pinned memory, marks): counted in no device
    Counts& c = dev->counts;
    switch (static_cast<trace::Op>(row.op)) {
      case trace::Op::alloc:
        c.alloc += row.count;
        dev->churn.allocated_bytes_total += row.bytes;
        break;
      case trace::Op::free:
        c.free += row.count;
        dev->churn.freed += row.count;
        break;
      case trace::Op::alloc_failed: c.alloc_failed += row.count; break;
      case trace::Op::segment_reserve: c.segment_reserve += row.count; break;
      case trace::Op::segment_release: c.segment_release += row.count; break;
      case trace::Op::anomaly:
        if (row.aux == static_cast<uint32_t>(trace::AnomalyKind::free_unknown))
          c.free_unknown += row.count;
        else if (row.aux == static_cast<uint32_t>(trace::AnomalyKind::double_free))
          c.double_free += row.count;
        break;
      default:
        break;
    }
  }
  for (size_t i = 0; i < device_count; ++i) {
    Churn& ch = devices[i].churn;
    ch.allocs_per_second =
        ch.duration_s > 0 ? static_cast<double>(devices[i].counts.alloc) / ch.duration_s : 0;
  }
}

}  // namespace gpumem::analyzer
