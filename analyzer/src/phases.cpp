#include "phases.h"

#include <algorithm>
#include <iterator>

namespace gpumem::analyzer {

uint64_t Phases::path_key(uint64_t parent, uint64_t name_id, uint32_t tid) {
  auto [it, added] = path_index_.try_emplace({parent, name_id, tid}, kPathKey | paths_.size());
  if (added) paths_.push_back({parent, name_id, tid});
  return it->second;
}

void Phases::open_changed() {
  current_ = 0;
  for (auto p = open_.rbegin(); p != open_.rend(); ++p)
    if (p->tid == 0) {
      current_ = p->name_id + 1;
      break;
    }
}

// A damaged trace's name id + 1 may have the path bit set too: only an index we made is a path.
bool Phases::is_path(uint64_t key) const {
  return (key & kPathKey) != 0 && (key & ~kPathKey) < paths_.size();
}

std::optional<std::string> Phases::name(uint64_t key, const Attribution& strings) const {
  if (key == 0) return std::nullopt;
  if (!is_path(key)) return strings.string_or_id(key - 1);
  return strings.string_or_id(paths_[key & ~kPathKey].name_id);
}

std::vector<std::string> Phases::path(uint64_t key, const Attribution& strings) const {
  std::vector<std::string> names;
  for (; is_path(key); key = paths_[key & ~kPathKey].parent)
    names.insert(names.begin(), strings.string_or_id(paths_[key & ~kPathKey].name_id));
  return names;
}

std::optional<uint32_t> Phases::thread(uint64_t key) const {
  if (!is_path(key)) return std::nullopt;
  return paths_[key & ~kPathKey].tid;
}

void Phases::begin(uint64_t name_id, int64_t t_ns, const Devices& devices, uint64_t range_id,
                   uint32_t tid) {
  if (open_.size() >= kMaxOpen) {  // begins that never end: forget the oldest
    open_.erase(open_.begin());
    ++omitted_;
  }
  Open p{name_id, t_ns, {}, range_id, tid, 0};
  if (tid != 0) {
    auto top = thread_top_.find(tid);
    p.path_key = path_key(top != thread_top_.end() ? top->second : 0, name_id, tid);
    thread_top_[tid] = p.path_key;
  }
  devices.for_each([&](int ordinal, const DeviceState& d) {
    p.peaks.push_back({ordinal, d.allocated(), t_ns, d.reserved()});
  });
  open_.push_back(std::move(p));
  open_changed();
}

void Phases::end(uint64_t name_id, int64_t t_ns, uint64_t range_id) {
  if (open_.empty()) return;
  auto it = open_.end() - 1;  // unknown name (0): the most recently begun phase
  if (range_id != 0) {
    auto p = std::find_if(open_.rbegin(), open_.rend(),
                          [&](const Open& o) { return o.range_id == range_id; });
    if (p == open_.rend()) return;  // its begin was forgotten (kMaxOpen) or is not in the trace
    it = std::prev(p.base());
  } else if (name_id != 0) {
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
  const uint32_t tid = it->tid;
  open_.erase(it);
  if (tid != 0) {  // the thread's innermost range still open, whatever order pops came in
    auto p = std::find_if(open_.rbegin(), open_.rend(), [&](const Open& o) { return o.tid == tid; });
    if (p != open_.rend())
      thread_top_[tid] = p->path_key;
    else
      thread_top_.erase(tid);
  }
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
  if (p.phase.tid != 0) row.tid = p.phase.tid;
  for (const auto& e : p.phase.peaks) {
    if (e.device != ordinal) continue;
    row.peak_allocated_bytes = e.allocated;
    row.peak_time_ns = e.t_ns;
    row.peak_reserved_bytes = e.reserved;
  }
  return row;
}

std::vector<MarkRow> Phases::mark_rows(const Attribution& strings) const {
  std::vector<MarkRow> rows;
  for (const Mark& m : marks_) rows.push_back({strings.string_or_id(m.name_id), m.t_ns, m.tid});
  return rows;
}

}  // namespace gpumem::analyzer
