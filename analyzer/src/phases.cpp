#include "phases.h"

#include <algorithm>
#include <iterator>

namespace gpumem::analyzer {

void Phases::begin(uint64_t name_id, int64_t t_ns, const Devices& devices) {
  if (open_.size() >= kMaxOpen) {  // begins that never end: forget the oldest
    open_.erase(open_.begin());
    ++omitted_;
  }
  Open p{name_id, t_ns, {}};
  devices.for_each([&](int ordinal, const DeviceState& d) {
    p.peaks.push_back({ordinal, d.allocated(), t_ns, d.reserved()});
  });
  open_.push_back(std::move(p));
  open_changed();
}

void Phases::end(uint64_t name_id, int64_t t_ns) {
  if (open_.empty()) return;
  auto it = open_.end() - 1;  // unknown name (0): the most recently begun phase
  if (name_id != 0) {
    for (auto p = open_.rbegin(); p != open_.rend(); ++p)
      if (p->name_id == name_id) {
        it = std::prev(p.base());
        break;
      }
  }
  if (closed_.size() < max_closed_)
    closed_.push_back({std::move(*it), t_ns, true});
  else
    ++omitted_;
  open_.erase(it);
  open_changed();
}

void Phases::raise_peaks(const DeviceState& d, int64_t t_ns) {
  const int ordinal = d.device();
  for (Open& p : open_) {
    DevicePeak* peak = nullptr;
    for (auto& e : p.peaks)
      if (e.device == ordinal) peak = &e;
    if (peak == nullptr) {
      p.peaks.push_back({ordinal, 0, t_ns, 0});
      peak = &p.peaks.back();
    }
    if (d.allocated() > peak->allocated) {
      peak->allocated = d.allocated();
      peak->t_ns = t_ns;
    }
    peak->reserved = std::max(peak->reserved, d.reserved());
  }
}

std::vector<PhasePeak> Phases::rows(int ordinal, int64_t last_ns,
                                    const Attribution& strings) const {
  std::vector<PhasePeak> rows;
  for (const Closed& p : closed_) rows.push_back(row(p, ordinal, strings));
  for (const Open& p : open_) rows.push_back(row({p, last_ns, false}, ordinal, strings));
  return rows;
}

PhasePeak Phases::row(const Closed& p, int ordinal, const Attribution& strings) {
  PhasePeak row;
  row.name = strings.string_or_id(p.phase.name_id);
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

}  // namespace gpumem::analyzer
