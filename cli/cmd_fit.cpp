// `gpumem fit --limit X --effective-batch N [--batches 1,2,4,8] [--margin 5%] [--accum-rule
// divisor|ceil] [--device sim|real|auto] [--json F] -- CMD ... {batch} ... {accum}`
// Runs CMD under `gpumem run` at a few small micro-batches, fits peak = fixed + per_sample x batch,
// recommends the largest micro-batch (with the accumulation that keeps the effective batch) whose
// predicted peak plus the margin fits under X, and verifies it with one real run under the cap.
// docs/replay-fit.md.
#include "command.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gpumem/analyzer/report.h"
#include "gpumem/replay/fit_model.h"
#include "gpumem/replay/replay.h"
#include "gpumem/units.h"
#include "gpumem/visible_text.h"

namespace {

using gpumem::replay::AccumRule;
using gpumem::replay::LinearFit;
using gpumem::replay::Measurement;
using nlohmann::json;

struct FitOptions {
  std::string limit;
  uint64_t effective_batch = 0;
  std::vector<uint64_t> batches{1, 2, 4, 8};
  std::string margin = "5%";
  std::string accum_rule = "divisor";
  std::string device = "auto";
  std::string json_path;
  std::string dir;
  std::vector<std::string> command;
};

std::string bytes_text(double b) {
  char buf[32];
  return gpumem::format_bytes(static_cast<uint64_t>(std::max(0.0, b)), buf, sizeof buf);
}

std::string substitute(std::string s, uint64_t batch, uint64_t accum) {
  for (auto [key, value] : {std::pair<std::string, uint64_t>{"{batch}", batch}, {"{accum}", accum}})
    for (size_t at; (at = s.find(key)) != std::string::npos;)
      s.replace(at, key.size(), std::to_string(value));
  return s;
}

struct RunResult {
  int status = -1;
  uint64_t peak_reserved = 0;  // the analyzer's peak reserved over the trace (max over devices)
  uint64_t device_charge = 0;  // replay under pool=none: what simcuda charges (2 MiB pages)
  std::string log_tail;
  std::string trace;
};

std::string tail_of(const std::string& path, size_t n) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  return s.size() > n ? s.substr(s.size() - n) : s;
}

// `gpumem run` (this very binary) with the command; the cap, when given, as gpumem's limit and, on
// the simulated device, as the device's capacity too (SIMCUDA_MEMORY), which really fails
// cudaMalloc even where the preload does not enforce GPUMEM_LIMIT.
RunResult run_once(const FitOptions& o, const std::string& tag, uint64_t batch, uint64_t accum,
                   const std::string& cap) {
  RunResult r;
  r.trace = o.dir + "/" + tag + ".trace";
  const std::string log = o.dir + "/" + tag + ".log";
  std::vector<std::string> args{"/proc/self/exe", "run", "--device", o.device, "--trace", r.trace};
  if (!cap.empty()) {
    args.push_back("--limit");
    args.push_back(cap);
  }
  args.push_back("--");
  for (const std::string& a : o.command) args.push_back(substitute(a, batch, accum));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    if (!cap.empty() && o.device == "sim") ::setenv("SIMCUDA_MEMORY", cap.c_str(), 1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int st = 0;
  while (pid > 0 && ::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  r.status = pid < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  r.log_tail = tail_of(log, 600);
  std::vector<std::string> errors;
  gpumem::analyzer::Analysis analysis;
  if (gpumem::analyzer::analyze_files({r.trace}, analysis, &errors, false) == 1) {
    gpumem::analyzer::Report rep = analysis.finish();
    for (const auto& d : rep.devices)
      r.peak_reserved = std::max(r.peak_reserved, d.peak.reserved_bytes);
  }
  std::string error;
  if (auto program = gpumem::replay::load_program(r.trace, &error)) {
    gpumem::replay::ReplayOptions ro;
    ro.capacity = uint64_t{1} << 56;  // measure, never refuse
    ro.metrics = false;
    for (const auto& d : program->devices)
      r.device_charge = std::max(r.device_charge,
                                 gpumem::replay::replay_device(*program, d, ro).device_peak_bytes);
  }
  return r;
}

int fail(const std::string& message, int code) {
  std::fprintf(stderr, "gpumem fit: %s\n", message.c_str());
  return code;
}

int fit_main(FitOptions o) {
  uint64_t limit = 0;
  if (gpumem::parse_size(o.limit.c_str(), &limit) != gpumem::SizeParse::ok || limit == 0)
    return fail(fmt::format("--limit '{}' is not a size; give bytes or a unit such as 512MiB or "
                            "8GiB (a percentage needs a known device: use a size)",
                            o.limit),
                2);
  double margin = 0;
  {
    std::string m = o.margin;
    const bool pct = !m.empty() && m.back() == '%';
    if (pct) m.pop_back();
    char* end = nullptr;
    margin = std::strtod(m.c_str(), &end);
    // !(margin >= 0) also refuses "nan", which every comparison below would let through.
    if (m.empty() || *end != '\0' || !(margin >= 0) || (pct ? margin >= 100 : margin >= 1))
      return fail(fmt::format("--margin '{}' is not a margin; use a percentage such as 5% or a "
                              "fraction such as 0.05",
                              o.margin),
                  2);
    if (pct) margin /= 100;
  }
  AccumRule rule;
  if (!gpumem::replay::parse_accum_rule(o.accum_rule, &rule))
    return fail(fmt::format("--accum-rule '{}' is unknown; use divisor (micro-batches that divide "
                            "N) or ceil (accum = ceil(N / batch))",
                            o.accum_rule),
                2);
  bool has_batch = false, has_accum = false;
  for (const auto& a : o.command) {
    has_batch = has_batch || a.find("{batch}") != std::string::npos;
    has_accum = has_accum || a.find("{accum}") != std::string::npos;
  }
  if (!has_batch)
    return fail(
        "the command has no {batch} placeholder, so fit cannot vary the micro-batch; write "
        "{batch} where it goes and {accum} where the accumulation steps go, e.g. "
        "`gpumem fit --limit 8GiB --effective-batch 512 -- gpumem-train --batch {batch} "
        "--accum {accum}`",
        2);
  if (!has_accum)
    std::fprintf(stderr,
                 "gpumem fit: note: the command has no {accum} placeholder; the effective "
                 "batch will not be kept at %llu\n",
                 static_cast<unsigned long long>(o.effective_batch));
  std::sort(o.batches.begin(), o.batches.end());
  o.batches.erase(std::unique(o.batches.begin(), o.batches.end()), o.batches.end());
  if (o.batches.size() < 2 || o.batches.front() == 0)
    return fail("--batches needs two or more different positive micro-batches, e.g. 1,2,4,8", 2);

  // The temporary directory goes on every way out, a failed run's included.
  struct RemovedAtExit {
    std::string path;
    ~RemovedAtExit() {
      std::error_code ec;
      if (!path.empty()) std::filesystem::remove_all(path, ec);
    }
  } temp_dir;
  if (o.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/gpumem-fit-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr)
      return fail("cannot create a temporary directory; set TMPDIR or give --dir", 1);
    o.dir = templ;
    temp_dir.path = templ;
  } else {
    std::error_code ec;
    std::filesystem::create_directories(o.dir, ec);
    if (ec || !std::filesystem::is_directory(o.dir, ec))
      return fail(fmt::format("--dir '{}' cannot be made a folder: {}; give a folder you can "
                              "write, or leave --dir out (a temporary one)",
                              gpumem::visible(o.dir),
                              ec ? ec.message() : std::string("it is not a directory")),
                  2);
  }
  const bool device_cap = o.device == "sim";

  // 1. Measure, uncapped.
  json measured = json::array();
  std::vector<Measurement> points;
  for (uint64_t b : o.batches) {
    const uint64_t accum = gpumem::replay::accum_for(o.effective_batch, b);
    RunResult r = run_once(o, fmt::format("batch{}", b), b, accum, "");
    if (r.status != 0)
      return fail(fmt::format("the command failed at micro-batch {} (exit status {}) without any "
                              "cap; fit needs the small micro-batches to run. Its output ended "
                              "with:\n{}",
                              b, r.status, r.log_tail),
                  1);
    const uint64_t peak = r.peak_reserved;
    points.push_back({b, peak});
    measured.push_back({{"batch", b},
                        {"accum", accum},
                        {"peak_reserved_bytes", r.peak_reserved},
                        {"device_charge_bytes", r.device_charge},
                        {"peak_bytes", peak}});
  }
  LinearFit fit;
  std::string error;
  if (!gpumem::replay::fit_line(points, &fit, &error)) return fail(error, 2);

  json doc{{"schema", "gpumem.fit/1"},
           {"limit_bytes", limit},
           {"effective_batch", o.effective_batch},
           {"margin", margin},
           {"accum_rule", gpumem::replay::accum_rule_name(rule)},
           {"peak_measure", "peak_reserved"},
           {"warning", nullptr},
           {"measured", measured},
           {"fit",
            {{"fixed_bytes", fit.fixed_bytes},
             {"per_sample_bytes", fit.per_sample_bytes},
             {"max_abs_residual_bytes", fit.max_abs_residual_bytes},
             {"r2", fit.r2}}}};
  // The JSON document, on stdout for "-" (then without the text); a file that cannot be written
  // fails the command.
  auto finish = [&](int code) {
    if (o.json_path == "-") std::printf("%s\n", doc.dump(2).c_str());
    if (o.json_path.empty() || o.json_path == "-") return code;
    std::ofstream f(o.json_path);
    f << doc.dump(2) << "\n";
    f.close();
    if (f) return code;
    std::fprintf(stderr,
                 "gpumem fit: cannot write %s; check that its directory exists and is "
                 "writable\n",
                 gpumem::visible(o.json_path).c_str());
    return code != 0 ? code : 1;
  };

  std::string text =
      fmt::format("gpumem fit: limit {}, effective batch {}, margin {:.1f}%\n",
                  bytes_text(static_cast<double>(limit)), o.effective_batch, margin * 100);
  text += fmt::format("  {:>6} {:>6} {:>14} {:>14} {:>14}\n", "batch", "accum", "peak reserved",
                      "device charge", "fitted");
  for (size_t i = 0; i < points.size(); ++i)
    text += fmt::format("  {:>6} {:>6} {:>14} {:>14} {:>14}\n", points[i].batch,
                        measured[i]["accum"].get<uint64_t>(),
                        bytes_text(measured[i]["peak_reserved_bytes"].get<double>()),
                        bytes_text(measured[i]["device_charge_bytes"].get<double>()),
                        bytes_text(fit.predict(points[i].batch)));
  text +=
      fmt::format("fit (peak reserved): peak = {} + {} x batch; max |residual| {}, R^2 {:.6f}\n",
                  bytes_text(fit.fixed_bytes), bytes_text(fit.per_sample_bytes),
                  bytes_text(fit.max_abs_residual_bytes), fit.r2);

  // 2. Recommend, when the measurements say something: peaks that are all 0 (the command made no
  // GPU allocation) or all equal give a line with no slope, and "the largest micro-batch fits"
  // would then be a guess presented as a measurement.
  const bool all_zero = std::all_of(points.begin(), points.end(),
                                    [](const Measurement& m) { return m.peak_bytes == 0; });
  const bool flat = std::all_of(points.begin(), points.end(), [&](const Measurement& m) {
    return m.peak_bytes == points.front().peak_bytes;
  });
  if (all_zero || flat) {
    const std::string warning =
        all_zero ? fmt::format(
                       "the command allocated no GPU memory at any measured micro-batch "
                       "(every peak is 0 B), so the fit says nothing about its memory; "
                       "check that it runs on the GPU and takes {{batch}}")
                 : fmt::format(
                       "the measured peak is {} at every micro-batch, so the fit cannot "
                       "tell how memory grows with it; measure micro-batches far enough "
                       "apart (--batches) for the peak to change",
                       bytes_text(static_cast<double>(points.front().peak_bytes)));
    doc["recommendation"] = nullptr;
    doc["warning"] = warning;
    text += "warning: " + warning + "; no recommendation\n";
    if (o.json_path != "-") std::fputs(text.c_str(), stdout);
    std::fprintf(stderr, "gpumem fit: warning: %s; no recommendation\n", warning.c_str());
    return finish(4);
  }
  if (fit.fixed_bytes * (1 + margin) > static_cast<double>(limit)) {
    doc["recommendation"] = nullptr;
    if (o.json_path != "-") std::fputs(text.c_str(), stdout);
    std::fprintf(stderr,
                 "gpumem fit: the fixed part alone (%s: parameters, optimizer state, data) exceeds "
                 "the limit %s%s; no micro-batch can fit: try --data stream / --dtype fp16 / a "
                 "larger limit\n",
                 bytes_text(fit.fixed_bytes).c_str(),
                 bytes_text(static_cast<double>(limit)).c_str(),
                 margin > 0 ? fmt::format(" with the {:.1f}% margin", margin * 100).c_str() : "");
    return finish(3);
  }
  auto rec = gpumem::replay::recommend(fit, limit, margin, o.effective_batch, rule);
  if (!rec) {
    doc["recommendation"] = nullptr;
    if (o.json_path != "-") std::fputs(text.c_str(), stdout);
    std::fprintf(stderr,
                 "gpumem fit: even micro-batch 1 is predicted at %s (+margin) over the "
                 "limit %s; no micro-batch can fit: try --data stream / --dtype fp16 / a larger "
                 "limit\n",
                 bytes_text(fit.predict(1)).c_str(),
                 bytes_text(static_cast<double>(limit)).c_str());
    return finish(3);
  }
  // 3. Verify under the cap.
  const std::string cap = std::to_string(limit);
  RunResult v = run_once(o, "verify", rec->batch, rec->accum, cap);
  const uint64_t measured_peak = v.peak_reserved;
  doc["recommendation"] = {
      {"batch", rec->batch},
      {"accum", rec->accum},
      {"effective_batch", rec->batch * rec->accum},
      {"predicted_bytes", rec->predicted_bytes},
      {"predicted_with_margin_bytes", rec->predicted_bytes * (1 + margin)},
      {"next_batch", rec->next_batch ? json(*rec->next_batch) : json(nullptr)}};
  doc["verification"] = {
      {"ran", v.status == 0},
      {"exit_status", v.status},
      {"cap", device_cap ? "gpumem limit and simulated device capacity" : "gpumem limit"},
      {"peak_reserved_bytes", v.peak_reserved},
      {"device_charge_bytes", v.device_charge},
      {"measured_peak_bytes", measured_peak}};
  text += fmt::format(
      "recommendation: --batch {} --accum {} (effective batch {}): predicted {}, "
      "with margin {}, under {}\n",
      rec->batch, rec->accum, rec->batch * rec->accum, bytes_text(rec->predicted_bytes),
      bytes_text(rec->predicted_bytes * (1 + margin)), bytes_text(static_cast<double>(limit)));
  if (rec->next_batch)
    text += fmt::format("  next larger micro-batch {}: predicted {} with margin, over the limit\n",
                        *rec->next_batch, bytes_text(fit.predict(*rec->next_batch) * (1 + margin)));
  text += fmt::format("verification under the cap ({}{}): {}, measured peak {}\n",
                      device_cap ? "gpumem run --limit and SIMCUDA_MEMORY=" : "gpumem run --limit ",
                      cap, v.status == 0 ? "ran" : fmt::format("FAILED (exit status {})", v.status),
                      bytes_text(static_cast<double>(measured_peak)));
  if (o.json_path != "-") std::fputs(text.c_str(), stdout);
  if (v.status != 0)
    std::fprintf(stderr,
                 "gpumem fit: the recommended settings did not run under the cap; the "
                 "command's output ended with:\n%s\nIncrease --margin and try again\n",
                 v.log_tail.c_str());
  return finish(v.status == 0 ? 0 : 1);
}

void register_fit(CLI::App& app, std::function<int()>* run) {
  auto o = std::make_shared<FitOptions>();
  CLI::App* cmd = app.add_subcommand(
      "fit",
      "Find the largest micro-batch whose peak fits under a limit (runs the command a few "
      "times under `gpumem run`)");
  cmd->add_option("--limit", o->limit, "the memory cap to fit under: 512MiB, 8GiB")->required();
  cmd->add_option("--effective-batch", o->effective_batch,
                  "samples per optimizer step to keep (micro-batch x accumulation)")
      ->required()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 24));
  cmd->add_option("--batches", o->batches, "micro-batches to measure (default 1,2,4,8)")
      ->delimiter(',');
  cmd->add_option("--margin", o->margin, "safety margin on the predicted peak (default 5%)");
  cmd->add_option("--accum-rule", o->accum_rule,
                  "divisor: micro-batches dividing N, accum = N / batch (default); ceil: any "
                  "micro-batch, accum = ceil(N / batch)");
  cmd->add_option("--device", o->device, "as `gpumem run --device`: auto, sim, real")
      ->check(CLI::IsMember({"auto", "sim", "real"}));
  cmd->add_option("--json", o->json_path, "write the JSON result (gpumem.fit/1); - = stdout");
  cmd->add_option("--dir", o->dir,
                  "keep the runs' traces and logs here (default: a temporary "
                  "directory, removed)");
  cmd->add_option("command", o->command, "the program, with {batch} and {accum} (after --)")
      ->required();
  // Everything from the program's name on is the program's, `--` or not (as `gpumem run`).
  cmd->positionals_at_end();
  cmd->callback([run, o] { *run = [o] { return fit_main(*o); }; });
}

GPUMEM_COMMAND(register_fit);

}  // namespace
