// Streaming analysis: feed it the events of one trace after another and it builds the Report.
// It never needs the whole trace: memory grows with the allocations live at a time, the distinct
// call stacks and strings, and the (capped) phase and anomaly lists, never with the event count.
//
//   Analysis a;
//   a.begin_trace(reader->header(), reader->path());
//   trace::Batch b;
//   while (reader->next_batch(&b)) a.feed(b);     // or: while (reader->next(&ev)) a.feed(ev);
//   a.end_trace(reader->stats());
//   Report r = a.finish();
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "gpumem/analyzer/model.h"
#include "gpumem/trace/format.h"
#include "gpumem/trace/reader.h"

namespace gpumem::analyzer {

struct AnalysisOptions {
  size_t max_points = 2000;                 // timeline points per device (max-box filter)
  uint64_t short_lived_ns = 1'000'000;      // churn: freed within 1 ms counts as short-lived
  size_t max_anomalies_per_trace = 1000;    // listed; all are counted
  size_t max_phases_per_device = 10000;     // listed; the rest counted in phases_omitted
  size_t max_frames = 32;                   // frames kept per call site row
  // Reports carry timeline_by_site. gpumem top shows none, and building it at every refresh was
  // a good part of a snapshot's cost.
  bool site_series = true;
};

class Analysis {
 public:
  explicit Analysis(AnalysisOptions options = {});
  ~Analysis();
  Analysis(const Analysis&) = delete;
  Analysis& operator=(const Analysis&) = delete;

  void begin_trace(const trace::Header& header, const std::string& path);
  void feed(const trace::Event& event);
  void feed(const trace::Batch& batch);
  // `stats` says how reading ended (truncated, torn records); may be a default ReadStats.
  void end_trace(const trace::ReadStats& stats);
  // Adds the cross-process summary and hands over the report. Call once, after the last trace.
  Report finish();
  // The report finish() would give if the current trace ended here, without ending it: feeding
  // goes on after it, and the final report is the same as without it (gpumem top follows growing
  // traces this way). Traces already ended are not in it. OOMs are counted (ooms_final,
  // ooms_retried) but not listed in ooms[].
  Report snapshot(const trace::ReadStats& stats);

  const AnalysisOptions& options() const { return options_; }

 private:
  class TraceState;
  struct Budgets;  // the shared-budget members of the traces ended so far (budget.h)
  AnalysisOptions options_;
  std::unique_ptr<TraceState> current_;
  std::unique_ptr<Budgets> budgets_;
  Report report_;
};

}  // namespace gpumem::analyzer
