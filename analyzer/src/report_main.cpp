#include "gpumem/analyzer/report.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "gpumem/analyzer/render_json.h"
#include "gpumem/analyzer/render_text.h"
#include "gpumem/regular_file.h"
#include "gpumem/same_file.h"
#include "gpumem/trace/reader.h"
#include "gpumem/visible_text.h"
#include "render_html.h"
#include "render_perfetto.h"

namespace gpumem::analyzer {

namespace fs = std::filesystem;

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs,
                                       std::vector<std::string>* errors) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::directory_iterator(in, ec)) {
        if (entry.path().extension() != ".trace") continue;
        struct stat st {};
        if (::stat(entry.path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
          found.push_back(entry.path().string());
        } else if (!S_ISDIR(st.st_mode)) {  // a FIFO would block the reader for ever: skipped
          errors->push_back(fmt::format(
              "{}: skipped: {}; only regular *.trace files are read", entry.path().string(),
              st.st_mode != 0 ? std::string(file_kind(st.st_mode)) + ", not a regular file"
                              : std::string(std::strerror(errno))));
        }
      }
      std::sort(found.begin(), found.end());
      if (found.empty())
        errors->push_back(
            fmt::format("{}: directory holds no *.trace files; pass trace files or "
                        "the directory the traces were written to",
                        in));
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(in, ec)) {
      files.push_back(in);
    } else {
      errors->push_back(fmt::format("{}: no such file or directory; check the path", in));
    }
  }
  return files;
}

namespace {
// Progress on stderr, only when it is a terminal and the analysis has run for a second.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled && isatty(STDERR_FILENO)) {}
  ~Progress() {
    if (shown_) std::fprintf(stderr, "\r%60s\r", "");
  }
  void update(const std::string& path, uint64_t done, uint64_t total) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - start_ < std::chrono::seconds(1) || now - last_ < std::chrono::milliseconds(200))
      return;
    last_ = now;
    shown_ = true;
    double pct = total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 0;
    std::fprintf(stderr, "\ranalysing %s: %.0f%%   ",
                 visible(fs::path(path).filename().string()).c_str(), pct);
  }

 private:
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
};
}  // namespace

size_t analyze_files(const std::vector<std::string>& files, Analysis& analysis,
                     std::vector<std::string>* errors, bool progress) {
  Progress bar(progress);
  size_t analysed = 0;
  for (const std::string& path : files) {
    std::string error;
    auto reader = trace::Reader::open(path, &error);
    if (!reader) {
      errors->push_back(error.empty() ? path + ": cannot read this trace" : error);
      continue;
    }
    analysis.begin_trace(reader->header(), path);
    trace::Batch batch;
    uint64_t n = 0;
    while (reader->next_batch(&batch)) {
      analysis.feed(batch);
      if ((++n & 0xFFF) == 0) bar.update(path, reader->stats().bytes_read, reader->file_size());
    }
    analysis.end_trace(reader->stats());
    ++analysed;
  }
  return analysed;
}

namespace {
bool write_file(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return true;
    std::fprintf(stderr,
                 "gpumem report: cannot write the report to standard output (%s); check where "
                 "it goes (a full disk, a closed pipe), or name a file instead of -\n",
                 std::strerror(errno));
    return false;
  }
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::fprintf(stderr, "gpumem report: cannot write %s: it is a directory; name a file in it\n",
                 visible(path).c_str());
    return false;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    std::fprintf(stderr,
                 "gpumem report: cannot write %s; check that its directory exists and is "
                 "writable\n",
                 visible(path).c_str());
    return false;
  }
  return true;
}
}  // namespace

int report_main(const ReportOptions& options) {
  std::vector<std::string> errors;
  std::vector<std::string> files = expand_inputs(options.inputs, &errors);
  // An output naming a trace it reads (by any spelling) would overwrite that trace once the
  // report is written: the recorded run would be lost.
  const std::pair<const char*, const std::string*> outputs[] = {
      {"--json", &options.json_path},
      {"--html", &options.html_path},
      {"--perfetto", &options.perfetto_path}};
  std::vector<std::string> read = files;
  read.insert(read.end(), options.converted_from.begin(), options.converted_from.end());
  for (const auto& [flag, path] : outputs) {
    if (!output_is_an_input(*path, read)) continue;
    std::fprintf(stderr,
                 "gpumem report: %s %s names a file this report reads; writing there would "
                 "destroy it: give the output another file\n",
                 flag, visible(*path).c_str());
    return 1;
  }
  AnalysisOptions analysis_options;
  analysis_options.max_points = std::max<size_t>(options.points, 1);
  Analysis analysis(analysis_options);
  size_t analysed = analyze_files(files, analysis, &errors, options.progress);
  // Errors name files and echo trace bytes: escaped, one line each.
  for (const std::string& e : errors)
    std::fprintf(stderr, "gpumem report: %s\n", visible(e).c_str());
  if (analysed == 0) {
    std::fprintf(stderr,
                 "gpumem report: no trace could be read; pass gpumem trace files (written by "
                 "`gpumem run`, default name gpumem-<pid>.trace) or directories holding them\n");
    return 1;
  }
  Report report = analysis.finish();
  if (options.complete) options.complete(report);
  bool ok = true;
  if (!options.json_path.empty()) ok = write_file(options.json_path, render_json(report)) && ok;
  if (!options.html_path.empty()) ok = write_file(options.html_path, render_html(report)) && ok;
  if (!options.perfetto_path.empty())
    ok = write_file(options.perfetto_path, render_perfetto(report)) && ok;
  bool text = options.text || (options.json_path.empty() && options.html_path.empty() &&
                               options.perfetto_path.empty());
  if (text) {
    // With JSON on stdout, the summary goes to stderr so the JSON stays parseable.
    std::string summary = render_text(report);
    bool stdout_taken =
        options.json_path == "-" || options.html_path == "-" || options.perfetto_path == "-";
    std::FILE* out = stdout_taken ? stderr : stdout;
    std::fwrite(summary.data(), 1, summary.size(), out);
    if (out == stdout && (std::fflush(stdout) != 0 || std::ferror(stdout))) {
      std::fprintf(stderr,
                   "gpumem report: cannot write the summary to standard output (%s); check where "
                   "it goes (a full disk, a closed pipe), or write it with --json FILE\n",
                   std::strerror(errno));
      ok = false;
    }
  }
  return ok ? 0 : 1;
}

}  // namespace gpumem::analyzer
