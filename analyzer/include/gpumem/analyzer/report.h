// `gpumem report`: read traces (files or directories of *.trace), analyse them in one streaming
// pass each, and write the JSON report and/or the terminal summary. Also the entry point for
// `gpumem run --report DIR` (inputs = the run's trace files, json_path = DIR/report.json).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "gpumem/analyzer/analysis.h"
#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

struct ReportOptions {
  std::vector<std::string> inputs;  // trace files and directories (every *.trace inside)
  // Files read before report_main, which no output may name either: the snapshots and RMM logs
  // the CLI converted into the temporary traces that `inputs` then names.
  std::vector<std::string> converted_from;
  std::string json_path;            // "" = none, "-" = stdout
  bool text = false;                // print the terminal summary (also when no output is named)
  std::string html_path;            // "" = none, "-" = stdout: the self-contained HTML page
  std::string perfetto_path;        // "" = none, "-" = stdout: Trace Event Format JSON
  size_t points = 2000;             // timeline points per device
  bool progress = true;             // progress on stderr, only when it is a terminal
  // Called once the analysis is done, before anything is rendered: the CLI completes each OOM's
  // what-would-fit and advice there (cli/oom_explain.h; the analyzer does not link replay).
  std::function<void(Report&)> complete;
};

// Runs the whole command; returns the exit status (0 ok, 1 nothing could be read or written).
// Messages go to stderr, the summary (and "-" JSON) to stdout.
int report_main(const ReportOptions& options);

// Expands directories into their *.trace files (sorted). Missing paths are reported in *errors.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs,
                                       std::vector<std::string>* errors);

// Analyses the given trace files. Files that cannot be opened are skipped with a message in
// *errors. Returns the number of traces analysed.
size_t analyze_files(const std::vector<std::string>& files, Analysis& analysis,
                     std::vector<std::string>* errors, bool progress);

}  // namespace gpumem::analyzer
