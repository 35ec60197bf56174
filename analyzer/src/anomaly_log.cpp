#include "anomaly_log.h"

namespace gpumem::analyzer {

bool AnomalyLog::repeats(const trace::Record& r, Kind kind, uint64_t index) {
  if (kind != Kind::free_unknown && kind != Kind::double_free) return false;
  const bool repeat =
      last_free_index_ + 1 == index && last_free_address_ == r.address && last_free_tid_ == r.tid;
  last_free_index_ = index;
  last_free_address_ = r.address;
  last_free_tid_ = r.tid;
  return repeat;
}

Anomaly* AnomalyLog::add(const trace::Record& r, int64_t t_ns, Kind kind) {
  if (listed_.size() >= max_listed_) {
    ++omitted_;
    return nullptr;
  }
  Anomaly& a = listed_.emplace_back();
  a.trace_index = trace_index_;
  a.pid = pid_;
  a.device = r.device;
  a.kind = kind;
  if (kind == Kind::unrecognised) a.trace_code = r.aux;
  a.api = trace::api_name(static_cast<trace::Api>(r.api));
  a.address = r.address;
  a.bytes = r.bytes;
  a.t_ns = t_ns;
  a.result = r.result;
  a.site = r.site;
  return &a;
}

void AnomalyLog::move_to(std::vector<Anomaly>& out, const Attribution& attribution) {
  for (Anomaly& a : listed_) {
    attribution.add_frames(a);
    out.push_back(std::move(a));
  }
  listed_.clear();
}

}  // namespace gpumem::analyzer
