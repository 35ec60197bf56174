// `gpumem report TRACE_OR_DIR... [--json F] [--text] [--html F] [--perfetto F] [--points N]`
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "command.h"
#include "gpumem/analyzer/report.h"
#include "gpumem/formats/convert.h"
#include "gpumem/visible_text.h"
#include "oom_explain.h"

namespace {

// The same trace named twice (twice, spelt differently, or as a file and through its folder) was
// read twice and reported as two processes. Each is read once; a note says which was dropped.
std::vector<std::string> each_once(const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  std::vector<fs::path> folders;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) folders.push_back(fs::weakly_canonical(in, ec));
  }
  std::vector<std::string> kept;
  std::vector<fs::path> seen;
  for (const std::string& in : inputs) {
    std::error_code ec;
    const fs::path path = fs::weakly_canonical(in, ec);
    if (ec || !fs::exists(path, ec)) {  // said missing by the report
      kept.push_back(in);
      continue;
    }
    // A folder's reading takes its regular *.trace files.
    const bool in_folder =
        fs::is_regular_file(path, ec) && path.extension() == ".trace" &&
        std::find(folders.begin(), folders.end(), path.parent_path()) != folders.end();
    if (in_folder || std::find(seen.begin(), seen.end(), path) != seen.end()) {
      std::fprintf(stderr, "gpumem report: %s is named %s: read once\n",
                   gpumem::visible(in).c_str(), in_folder ? "with its folder" : "more than once");
      continue;
    }
    seen.push_back(path);
    kept.push_back(in);
  }
  return kept;
}

void register_report(CLI::App& app, std::function<int()>* run) {
  auto options = std::make_shared<gpumem::analyzer::ReportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "report", "Analyse traces: peak, fragmentation, leaks, phases (terminal summary by default)");
  cmd->add_option("traces", options->inputs,
                  "trace files, directories of *.trace files, PyTorch memory snapshots (pickle) "
                  "or RMM logging-adaptor CSV files (recognised by content)")
      ->required();
  cmd->add_option("--json", options->json_path,
                  "write the JSON report (gpumem.report/1); - = stdout");
  cmd->add_flag("--text", options->text,
                "print the terminal summary (default when no output named)");
  cmd->add_option("--html", options->html_path,
                  "write the self-contained HTML report (opens offline in any browser)");
  cmd->add_option("--perfetto", options->perfetto_path,
                  "write a Trace Event Format JSON file for ui.perfetto.dev");
  cmd->add_option("--points", options->points, "timeline points per device (max-box filter)")
      ->check(CLI::Range(size_t{1}, size_t{1000000}));
  cmd->callback([run, options] {
    *run = [options] {
      // Snapshots and RMM logs become temporary traces, removed when the report is done.
      gpumem::formats::ForeignInputs foreign;
      gpumem::analyzer::ReportOptions o = *options;
      // Two outputs into one file: the second would overwrite the first without a word.
      const std::pair<const char*, const std::string*> outputs[] = {
          {"--json", &o.json_path}, {"--html", &o.html_path}, {"--perfetto", &o.perfetto_path}};
      for (size_t i = 0; i < std::size(outputs); ++i)
        for (size_t j = i + 1; j < std::size(outputs); ++j)
          if (!outputs[i].second->empty() && *outputs[i].second == *outputs[j].second) {
            std::fprintf(
                stderr, "gpumem report: %s and %s both name %s; give each output its own file\n",
                outputs[i].first, outputs[j].first, gpumem::visible(*outputs[i].second).c_str());
            return 2;
          }
      o.inputs = each_once(o.inputs);
      o.converted_from = o.inputs;  // as given: a snapshot or RMM log among them is read too
      std::string error;
      if (!foreign.convert(&o.inputs, &error)) {
        std::fprintf(stderr, "gpumem report: %s\n", gpumem::visible(error).c_str());
        return 1;
      }
      o.complete = [&foreign](gpumem::analyzer::Report& report) {
        for (gpumem::analyzer::TraceSummary& t : report.traces) t.path = foreign.original(t.path);
        std::vector<std::string> notes;
        gpumem::cli::explain_ooms(report, &notes);
        for (const std::string& n : notes)
          std::fprintf(stderr, "gpumem report: %s\n", gpumem::visible(n).c_str());
      };
      return gpumem::analyzer::report_main(o);
    };
  });
}

GPUMEM_COMMAND(register_report);

}  // namespace
