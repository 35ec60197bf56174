// `gpumem run [--trace PATH] [--device auto|sim|real] [--stacks] [--pool P] [--limit L]
//              [--report DIR] [--capture preload|cupti] -- CMD ARGS...`
// Runs CMD with libgpumem.so preloaded (prepended to any LD_PRELOAD) and the GPUMEM_* variables
// set, on the simulated device when asked (or when `auto` finds no driver), forwards signals,
// returns CMD's exit status and says where the trace is. The same variables work without the
// CLI: this command only sets them. With --capture cupti, libgpumem_cupti.so goes into
// CUDA_INJECTION64_PATH instead (docs/cupti.md): observation only, no caps or pools.
#include <dlfcn.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "command.h"
#include "gpumem/trace_name.h"

#if __has_include("gpumem/analyzer/report.h")
#include "gpumem/analyzer/report.h"
#define GPUMEM_RUN_HAS_REPORT 1
#endif

namespace gpumem::cli {
namespace {

struct RunOptions {
  std::string trace;
  std::string device = "auto";
  bool stacks = false;
  std::string pool;
  std::string limit;
  std::string report_dir;
  std::string capture = "preload";
  std::vector<std::string> command;
};

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string self_dir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = '\0';
  std::string p(buf);
  return p.substr(0, p.rfind('/'));
}

// Build tree: <build>/bin/gpumem -> <build>/lib/libgpumem.so, <build>/simcuda-lib.
// Installed:  <prefix>/bin/gpumem -> <prefix>/lib/libgpumem.so or <prefix>/lib/gpumem/...
std::string find_first(const std::vector<std::string>& candidates) {
  for (const auto& c : candidates)
    if (exists(c)) return c;
  return "";
}

std::string find_preload() {
  const std::string bin = self_dir();
  return find_first(
      {bin + "/../lib/libgpumem.so", bin + "/../lib/gpumem/libgpumem.so", bin + "/libgpumem.so"});
}

// --capture cupti: the CUPTI library the CUDA driver loads through CUDA_INJECTION64_PATH.
std::string find_cupti() {
  const std::string bin = self_dir();
  return find_first(
      {bin + "/../lib/libgpumem_cupti.so", bin + "/../lib/gpumem/libgpumem_cupti.so"});
}

std::string find_simcuda() {
  const std::string bin = self_dir();
  for (const auto& dir : {bin + "/../simcuda-lib", bin + "/../lib/gpumem/simcuda"})
    if (exists(dir + "/libcudart.so.13") && exists(dir + "/libcuda.so.1")) return dir;
  return "";
}

void prepend_env(const char* name, const std::string& value) {
  const char* old = std::getenv(name);
  std::string v = value;
  if (old != nullptr && *old != '\0') v += std::string(":") + old;
  ::setenv(name, v.c_str(), 1);
}


// The trace path the child will use (as libgpumem expands GPUMEM_TRACE); %t cannot be known
// here and stays a wildcard.
std::string expected_trace(const std::string& tmpl, pid_t pid) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  char path[4096];
  if (!expand_trace_template(tmpl.c_str(), static_cast<int>(pid), host,
                             rank_from_environment(std::getenv), 0, path, sizeof path))
    return tmpl;
  return path;
}

pid_t g_child = -1;
void forward_signal(int sig) {
  if (g_child > 0) ::kill(g_child, sig);
}

int run_command(const RunOptions& o) {
  if (o.command.empty()) {
    std::fprintf(stderr,
                 "gpumem run: no command given; usage: gpumem run [options] -- CMD ARGS...\n");
    return 2;
  }
  const bool cupti = o.capture == "cupti";
  if (cupti && (!o.limit.empty() || !o.pool.empty())) {
    std::fprintf(stderr,
                 "gpumem run: --capture cupti only observes; caps and pools need the preload "
                 "capture (drop --capture cupti)\n");
    return 2;
  }
  const std::string injection = cupti ? find_cupti() : "";
  if (cupti && injection.empty()) {
    std::fprintf(stderr,
                 "gpumem run: libgpumem_cupti.so not found next to %s (looked in ../lib and "
                 "../lib/gpumem); build the gpumem_cupti target or use --capture preload\n",
                 self_dir().c_str());
    return 2;
  }
  const std::string preload = cupti ? "" : find_preload();
  if (!cupti && preload.empty()) {
    std::fprintf(stderr,
                 "gpumem run: libgpumem.so not found next to %s (looked in ../lib and "
                 "../lib/gpumem); build the gpumem_preload target or reinstall gpumem\n",
                 self_dir().c_str());
    return 2;
  }
  bool use_sim = o.device == "sim";
  if (o.device == "auto") {
    void* h = ::dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (h == nullptr) {
      use_sim = true;
      std::fprintf(stderr,
                   "gpumem run: no CUDA driver here (libcuda.so.1 cannot be loaded); "
                   "using the simulated device (pass --device real to refuse)\n");
    } else {
      ::dlclose(h);
    }
  }
  if (use_sim && cupti) {
    std::fprintf(stderr,
                 "gpumem run: --capture cupti: simcuda does not load CUDA_INJECTION64_PATH; use "
                 "a real GPU or --capture preload\n");
    return 2;
  }
  if (use_sim) {
    const std::string sim = find_simcuda();
    if (sim.empty()) {
      std::fprintf(stderr,
                   "gpumem run: the simulated device (simcuda) is not built; build the "
                   "simcuda target or use --device real\n");
      return 2;
    }
    prepend_env("LD_LIBRARY_PATH", sim);
  }
  if (cupti)
    ::setenv("CUDA_INJECTION64_PATH", injection.c_str(), 1);
  else
    prepend_env("LD_PRELOAD", preload);

  std::string trace = o.trace;
  if (!o.report_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.report_dir, ec);
    if (ec) {
      std::fprintf(stderr, "gpumem run: cannot create the report folder %s: %s\n",
                   o.report_dir.c_str(), ec.message().c_str());
      return 2;
    }
    if (trace.empty()) trace = o.report_dir + "/gpumem-%p.trace";
  }
  if (!trace.empty()) ::setenv("GPUMEM_TRACE", trace.c_str(), 1);
  const char* tmpl = std::getenv("GPUMEM_TRACE");
  trace = tmpl != nullptr && *tmpl != '\0' ? tmpl : "gpumem-%p.trace";
  if (o.stacks) ::setenv("GPUMEM_STACKS", "1", 1);
  if (!o.pool.empty()) ::setenv("GPUMEM_POOL", o.pool.c_str(), 1);
  if (!o.limit.empty()) ::setenv("GPUMEM_LIMIT", o.limit.c_str(), 1);

  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2})
    ::sigaction(sig, &sa, nullptr);

  std::vector<char*> argv;
  for (const auto& a : o.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  g_child = ::fork();
  if (g_child < 0) {
    std::fprintf(stderr, "gpumem run: cannot start '%s': %s\n", argv[0], std::strerror(errno));
    return 2;
  }
  if (g_child == 0) {
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "gpumem run: cannot run '%s': %s; check the command name and PATH\n",
                 argv[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(g_child, &status, 0) < 0 && errno == EINTR) {
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

  if (trace != "off") {
    const std::string path = expected_trace(trace, g_child);
    if (path.find('*') != std::string::npos || exists(path))
      std::fprintf(stderr, "gpumem run: trace: %s\n", path.c_str());
    else
      std::fprintf(stderr,
                   "gpumem run: no trace at %s (the program made no CUDA allocation, or "
                   "the path was not writable)\n",
                   path.c_str());
    if (!o.report_dir.empty()) {
#ifdef GPUMEM_RUN_HAS_REPORT
      analyzer::ReportOptions ro;
      ro.inputs = {exists(path) ? path : o.report_dir};
      ro.json_path = o.report_dir + "/report.json";
      ro.html_path = o.report_dir + "/report.html";
      ro.text = true;  // the summary follows the program's own output
      std::fflush(stdout);
      if (analyzer::report_main(ro) == 0)
        std::fprintf(stderr, "gpumem run: report: %s and %s\n", ro.json_path.c_str(),
                     ro.html_path.c_str());
#else
      std::fprintf(stderr,
                   "gpumem run: --report needs the analyzer, which this build lacks; run "
                   "`gpumem report %s` where it is available\n",
                   path.c_str());
#endif
    }
  }
  return code;
}

void register_run(CLI::App& app, std::function<int()>* run) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Run a program with gpumem recording its GPU memory");
  cmd->add_option("--trace", opts->trace,
                  "trace path template: %p pid, %h host, %r rank, %t start time; 'off' for none "
                  "(default: $GPUMEM_TRACE or gpumem-%p.trace)");
  cmd->add_option("--device", opts->device,
                  "auto (real driver if present, else simulated), sim, real")
      ->check(CLI::IsMember({"auto", "sim", "real"}));
  cmd->add_flag("--stacks", opts->stacks, "record native call stacks per allocation");
  cmd->add_option("--pool", opts->pool, "none, growth or fixed (GPUMEM_POOL)");
  cmd->add_option("--limit", opts->limit, "cap per device: 512MiB, 8GiB, 60% (GPUMEM_LIMIT)");
  cmd->add_option("--capture", opts->capture,
                  "preload (interpose CUDA calls; default) or cupti (CUPTI activity records "
                  "through CUDA_INJECTION64_PATH; observation only, real GPU only)")
      ->check(CLI::IsMember({"preload", "cupti"}));
  cmd->add_option("--report", opts->report_dir, "write the trace, DIR/report.json and DIR/report.html into DIR, and print the summary");
  cmd->add_option("command", opts->command, "the program and its arguments (after --)")->required();
  cmd->prefix_command(false);
  cmd->callback([run, opts] { *run = [opts] { return run_command(*opts); }; });
}

GPUMEM_COMMAND(register_run);

}  // namespace
}  // namespace gpumem::cli
