// The anomalies of one trace: listed up to max_anomalies_per_trace, the rest counted. A free
// that the preload reports as an Op::anomaly record and that also arrives as an Op::free of an
// unknown pointer, back to back from one thread, is one anomaly: repeats() tells the second.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "attribution.h"
#include "gpumem/analyzer/model.h"
#include "gpumem/trace/format.h"

namespace gpumem::analyzer {

class AnomalyLog {
 public:
  using Kind = Anomaly::Kind;

  AnomalyLog(size_t max_listed, uint32_t pid, size_t trace_index)
      : max_listed_(max_listed), pid_(pid), trace_index_(trace_index) {}

  // True when `r` (the trace's record number `index`) repeats the free anomaly just before it;
  // it is then neither counted nor listed. Called for every anomaly, in trace order.
  bool repeats(const trace::Record& r, Kind kind, uint64_t index);
  // Lists the anomaly; nullptr when the list is full (it is counted in omitted()).
  Anomaly* add(const trace::Record& r, int64_t t_ns, Kind kind);

  uint64_t omitted() const { return omitted_; }
  // Hands the list over, each with the frames of its site.
  void move_to(std::vector<Anomaly>& out, const Attribution& attribution);

 private:
  size_t max_listed_;
  uint32_t pid_;
  size_t trace_index_;
  std::vector<Anomaly> listed_;
  uint64_t omitted_ = 0;
  // The last free anomaly: record number, address and thread.
  uint64_t last_free_index_ = 0;
  uint64_t last_free_address_ = 0;
  uint32_t last_free_tid_ = 0;
};

}  // namespace gpumem::analyzer
