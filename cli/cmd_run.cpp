// `gpumem run [--trace PATH] [--device auto|sim|real] [--stacks[=native|python|mixed]]
//              [--tensors] [--pool P] [--limit L] [--shared-limit NAME] [--trace-max SIZE]
//              [--report DIR] [--capture preload|cupti] -- CMD ARGS...`
// Runs CMD with libgpumem.so preloaded (prepended to any LD_PRELOAD) and the GPUMEM_* variables
// set, on the simulated device when asked (or when `auto` finds no driver), forwards signals,
// returns CMD's exit status and says where the trace is. The same variables work without the
// CLI: this command only sets them. NVTX_INJECTION64_PATH names libgpumem.so too (NVTX ranges
// become phases), unless already set (then it says so). With --capture cupti, libgpumem_cupti.so
// goes into CUDA_INJECTION64_PATH instead (docs/cupti.md): observation only, no caps or pools.
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "command.h"
#include "gpumem/analyzer/report.h"
#include "gpumem/preload_settings.h"
#include "gpumem/trace/reader.h"
#include "gpumem/trace_name.h"
#include "gpumem/units.h"
#include "gpumem/visible_text.h"
#include "oom_explain.h"
#include "tensor_env.h"

namespace gpumem::cli {
namespace {

struct RunOptions {
  std::string trace;
  std::string device = "auto";
  std::string stacks;  // "" = not asked; native, python or mixed
  bool tensors = false;
  std::string pool;
  std::string limit;
  std::string shared_limit;  // GPUMEM_LIMIT_SCOPE=shared, GPUMEM_LIMIT_NAME
  std::string trace_max;     // GPUMEM_TRACE_MAX
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
// here and stays a wildcard. A folder holds the trace as FOLDER/gpumem-<pid>.trace, as the
// preload names it (session.cpp, choose_trace_path).
std::string expected_trace(const std::string& tmpl, pid_t pid) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  char path[4096];
  if (!expand_trace_template(tmpl.c_str(), static_cast<int>(pid), host,
                             rank_from_environment(std::getenv), 0, path, sizeof path))
    return tmpl;
  std::string expanded = path;
  struct stat st;
  if (expanded.find('*') == std::string::npos && ::stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    while (expanded.size() > 1 && expanded.back() == '/') expanded.pop_back();
    expanded += "/gpumem-" + std::to_string(pid) + ".trace";
  }
  return expanded;
}

// Why the preload could not create the trace at `expected` (expected_trace's path), or "": the
// folder must exist and be writable. Checked before the program starts, which would otherwise
// run to its end without a trace.
std::string trace_folder_problem(const std::string& expected) {
  const std::string folder = std::filesystem::path(expected).parent_path().string();
  if (folder.find('*') != std::string::npos) return "";  // %t in the folder: not knowable here
  const std::string shown = folder.empty() ? "the current folder" : "the folder " + folder;
  const char* at = folder.empty() ? "." : folder.c_str();
  struct stat st;
  if (::stat(at, &st) == 0 && !S_ISDIR(st.st_mode))
    return "cannot write the trace into " + shown + ": it is not a folder";
  if (::access(at, W_OK | X_OK) != 0)
    return "cannot write the trace into " + shown + ": " + std::strerror(errno);
  return "";
}

// The file the child wrote: the preload creates the expected path exclusively and, when it
// exists already, takes PATH.1, PATH.2, ... (the first free one). The candidates are read up to
// the first missing suffix; the one whose header names the child's pid is the child's. A trace
// written by a process the child started (another pid) is recognised as new since `started`.
// Empty when there is none.
std::string find_child_trace(const std::string& path, pid_t child, time_t started) {
  std::string newest;
  for (unsigned long n = 0;; ++n) {
    const std::string candidate = n == 0 ? path : path + "." + std::to_string(n);
    struct stat st;
    if (::stat(candidate.c_str(), &st) != 0) {
      if (n == 0) continue;  // the base name may be gone while PATH.1 holds this run
      break;
    }
    std::string error;
    if (auto reader = trace::Reader::open(candidate, &error))
      if (reader->header().pid == static_cast<uint32_t>(child)) return candidate;
    if (st.st_mtime >= started) newest = candidate;
  }
  return newest;
}

// A trace written by a process of the program's tree, other than the program itself.
struct TreeTrace {
  std::string path;
  uint32_t pid = 0;
  uint32_t parent = 0;  // the header's parent pid
  uint64_t start_unix_ns = 0;
  bool ours = false;  // its header names this `gpumem run` (GPUMEM_RUN)
};

// The traces in the folder of `expected` (the program's trace path), written since `started`,
// whose header's parent pid leads back to the program `child` (or to this command) through
// other such traces: forked workers, launched ranks, exec'd programs. A process in between that
// wrote no trace (a launcher that made no CUDA allocation) breaks that chain, so a trace whose
// header records this command's GPUMEM_RUN (inherited through the environment) belongs too. `own`
// (the program's own trace) is left out. Ordered by start time.
std::vector<TreeTrace> find_tree_traces(const std::string& expected, pid_t child, time_t started,
                                        const std::string& own) {
  namespace fs = std::filesystem;
  std::vector<TreeTrace> found;
  const fs::path parent_dir = fs::path(expected).parent_path();
  const fs::path dir = parent_dir.empty() ? fs::path(".") : parent_dir;
  // Written under this command (GPUMEM_RUN in the header's configuration lines).
  const std::string run_key = "GPUMEM_RUN=" + std::to_string(::getpid()) + "\n";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find(".trace") == std::string::npos) continue;
    // The same file, whichever way its path is spelled ("x.trace" against "./x.trace").
    std::error_code same_ec;
    if (!own.empty() && fs::equivalent(entry.path(), own, same_ec)) continue;
    struct stat st;
    if (::stat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_mtime < started)
      continue;
    std::string error;
    auto reader = trace::Reader::open(entry.path().string(), &error);
    if (!reader || reader->header().start_unix_ns / 1000000000ull + 1 < uint64_t(started)) continue;
    const trace::Header& h = reader->header();
    const bool ours =
        std::string_view(h.config, strnlen(h.config, sizeof h.config)).find(run_key) !=
        std::string_view::npos;
    found.push_back({entry.path().string(), h.pid, h.parent_pid, h.start_unix_ns, ours});
  }
  std::vector<uint32_t> tree = {static_cast<uint32_t>(child), static_cast<uint32_t>(::getpid())};
  std::vector<TreeTrace> linked;
  for (bool grew = true; grew;) {
    grew = false;
    for (auto it = found.begin(); it != found.end();) {
      const bool in_tree = it->pid == static_cast<uint32_t>(child) || it->ours ||
                           std::find(tree.begin(), tree.end(), it->parent) != tree.end();
      if (!in_tree) {
        ++it;
        continue;
      }
      tree.push_back(it->pid);
      linked.push_back(std::move(*it));
      it = found.erase(it);
      grew = true;
    }
  }
  std::sort(linked.begin(), linked.end(), [](const TreeTrace& a, const TreeTrace& b) {
    return a.start_unix_ns < b.start_unix_ns;
  });
  return linked;
}

// The GPUMEM_* values the program will see: an option's value over the environment's. Checked
// before the program starts by the preload's own parser (gpumem/preload_settings.h), so a bad
// value costs no run and reads as the library would say it. A percentage that is 0 bytes of the
// real device is found by the preload, which stops the program with status 2.
struct PendingSettings {
  std::string trace, stacks, pool, limit, shared_limit, trace_max;
};
const PendingSettings* g_pending = nullptr;

const char* pending_env(const char* name) {
  const std::string* option = nullptr;
  if (std::strcmp(name, "GPUMEM_TRACE") == 0) option = &g_pending->trace;
  if (std::strcmp(name, "GPUMEM_STACKS") == 0) option = &g_pending->stacks;
  if (std::strcmp(name, "GPUMEM_POOL") == 0) option = &g_pending->pool;
  if (std::strcmp(name, "GPUMEM_LIMIT") == 0) option = &g_pending->limit;
  if (std::strcmp(name, "GPUMEM_LIMIT_NAME") == 0) option = &g_pending->shared_limit;
  if (std::strcmp(name, "GPUMEM_TRACE_MAX") == 0) option = &g_pending->trace_max;
  if (std::strcmp(name, "GPUMEM_LIMIT_SCOPE") == 0 && !g_pending->shared_limit.empty())
    return "shared";
  if (option != nullptr && !option->empty()) return option->c_str();
  return std::getenv(name);
}

// The option that sets `variable`, when the value came from one ("" when it came from the
// environment).
const char* option_for(const PendingSettings& p, const std::string& variable) {
  if (variable == "GPUMEM_TRACE" && !p.trace.empty()) return "--trace";
  if (variable == "GPUMEM_STACKS" && !p.stacks.empty()) return "--stacks";
  if (variable == "GPUMEM_POOL" && !p.pool.empty()) return "--pool";
  if (variable == "GPUMEM_LIMIT" && !p.limit.empty()) return "--limit";
  if (variable == "GPUMEM_TRACE_MAX" && !p.trace_max.empty()) return "--trace-max";
  if ((variable == "GPUMEM_LIMIT_NAME" || variable == "GPUMEM_LIMIT_SCOPE") &&
      !p.shared_limit.empty())
    return "--shared-limit";
  return "";
}

bool settings_ok(const PendingSettings& pending) {
  g_pending = &pending;
  SettingsProblem problem;
  const bool ok = check_settings(pending_env, &problem);
  g_pending = nullptr;
  if (ok) return true;
  const char* option = option_for(pending, problem.variable);
  // The library's message (already escaped) names the variable; when an option set it, the
  // option is named and its advice ("Fix or unset VAR.") becomes "Fix OPTION.".
  std::string message = problem.message;
  const std::string advice = std::string(" Fix or unset ") + problem.variable + ".";
  if (*option != '\0') {
    if (message.size() > advice.size() &&
        message.compare(message.size() - advice.size(), advice.size(), advice) == 0)
      message.resize(message.size() - advice.size());
    message = std::string(option) + ": " + message + " Fix " + option + ".";
  }
  std::fprintf(stderr, "gpumem run: %s\n", message.c_str());
  return false;
}

// CLI11 takes the next word as an option's value even when it is `--`: `--trace -- prog` would
// trace into a file named "--" and lose the option. Refused with what to write instead.
CLI::Validator value_given(const char* option) {
  return CLI::Validator(
      [option](std::string& value) -> std::string {
        if (value != "--") return "";
        return std::string("no value given (it was followed by --); write ") + option +
               " VALUE before -- CMD";
      },
      "", "value given");
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
  PendingSettings pending{
      o.trace.empty() && !o.report_dir.empty() ? o.report_dir + "/gpumem-%p.trace" : o.trace,
      o.stacks == "native" ? "1" : o.stacks, o.pool, o.limit, o.shared_limit, o.trace_max};
  // Inherited by every descendant and recorded in its trace's header (find_tree_traces).
  ::setenv("GPUMEM_RUN", std::to_string(::getpid()).c_str(), 1);
  if (!settings_ok(pending)) return 2;
  const bool cupti = o.capture == "cupti";
  if (cupti && (!o.limit.empty() || !o.pool.empty() || !o.shared_limit.empty())) {
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
  if (!cupti) {
    // NVTX ranges become phases through NVTX's injection (docs/interception.md, "NVTX"). NVTX
    // loads one injection library only: a tool that already owns it keeps it.
    const char* nvtx = std::getenv("NVTX_INJECTION64_PATH");
    if (nvtx == nullptr || *nvtx == '\0')
      ::setenv("NVTX_INJECTION64_PATH", preload.c_str(), 1);
    else if (preload != nvtx)
      std::fprintf(stderr,
                   "gpumem run: NVTX_INJECTION64_PATH is already set (%s): NVTX ranges go to that "
                   "tool and are not recorded as phases; unset it to record them\n",
                   visible(nvtx).c_str());
  }

  std::string trace = o.trace;
  // Options about a trace that --trace off turns off would do nothing, without a word.
  for (const auto& [option, given] :
       {std::pair<const char*, bool>{"--report", !o.report_dir.empty()},
        {"--trace-max", !o.trace_max.empty()}})
    if (given && trace == "off") {
      std::fprintf(stderr,
                   "gpumem run: %s needs the trace that --trace off turns off; drop one of them\n",
                   option);
      return 2;
    }
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
  if (trace != "off") {
    if (const std::string why = trace_folder_problem(expected_trace(trace, ::getpid()));
        !why.empty()) {
      std::fprintf(stderr,
                   "gpumem run: %s; create it or choose another path with --trace (or "
                   "--trace off to run without one)\n",
                   visible(why).c_str());
      return 2;
    }
  }
  if (!o.stacks.empty())
    ::setenv("GPUMEM_STACKS", o.stacks == "native" ? "1" : o.stacks.c_str(), 1);
  if (o.tensors) {
    const TensorEnvironment env = tensor_environment([](const char* n) { return std::getenv(n); });
    for (const auto& s : env.set) ::setenv(s.name.c_str(), s.value.c_str(), 1);
    for (const auto& note : env.notes)
      std::fprintf(stderr, "gpumem run: --tensors: %s\n", note.c_str());
    // Recorded in the trace's header, so the report says whether a cache still hides tensors.
    std::string summary = "on";
    for (const auto& w : env.in_the_way) summary += (summary == "on" ? "; in the way: " : "; ") + w;
    ::setenv("GPUMEM_TENSORS", summary.c_str(), 1);
  }
  if (!o.pool.empty()) ::setenv("GPUMEM_POOL", o.pool.c_str(), 1);
  if (!o.limit.empty()) ::setenv("GPUMEM_LIMIT", o.limit.c_str(), 1);
  if (!o.trace_max.empty()) ::setenv("GPUMEM_TRACE_MAX", o.trace_max.c_str(), 1);
  if (!o.shared_limit.empty()) {
    ::setenv("GPUMEM_LIMIT_SCOPE", "shared", 1);
    ::setenv("GPUMEM_LIMIT_NAME", o.shared_limit.c_str(), 1);
  }

  // The signals forwarded to the program while it runs. Blocked until the program's pid is
  // known (one that came before would be lost), and given back their default action once it has
  // ended: forwarding then would signal a pid the system may have given to another process, and
  // `gpumem run` would ignore a signal meant to stop its own work (the report).
  constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  sigset_t forwarded, unblocked;
  sigemptyset(&forwarded);
  for (int sig : kForwarded) sigaddset(&forwarded, sig);
  ::sigprocmask(SIG_BLOCK, &forwarded, &unblocked);
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : kForwarded) ::sigaction(sig, &sa, nullptr);

  std::vector<char*> argv;
  for (const auto& a : o.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const time_t started = std::time(nullptr);
  // The child writes exec's errno here when the program cannot be started; a successful exec
  // closes it (O_CLOEXEC) with nothing written.
  int exec_error[2];
  if (::pipe2(exec_error, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "gpumem run: cannot start '%s': %s\n", argv[0], std::strerror(errno));
    return 2;
  }
  g_child = ::fork();
  if (g_child < 0) {
    std::fprintf(stderr, "gpumem run: cannot start '%s': %s\n", argv[0], std::strerror(errno));
    return 2;
  }
  if (g_child == 0) {
    ::close(exec_error[0]);
    ::sigprocmask(SIG_SETMASK, &unblocked, nullptr);  // the program starts with the caller's mask
    ::execvp(argv[0], argv.data());
    const int error = errno;
    // As a shell: 127 when there is no such program, 126 when it is there but cannot run.
    const bool missing = error == ENOENT || error == ENOTDIR;
    std::fprintf(stderr, "gpumem run: cannot run '%s': %s; %s\n", visible(argv[0]).c_str(),
                 std::strerror(error),
                 missing ? "check the command name and PATH"
                 : error == EACCES
                     ? "check that it is a program file with execute permission (chmod +x)"
                     : "check that it is a program this system can run");
    if (::write(exec_error[1], &error, sizeof error) < 0) {
    }
    ::_exit(missing ? 127 : 126);
  }
  ::sigprocmask(SIG_SETMASK, &unblocked, nullptr);
  ::close(exec_error[1]);
  int exec_errno = 0;
  while (::read(exec_error[0], &exec_errno, sizeof exec_errno) < 0 && errno == EINTR) {
  }
  ::close(exec_error[0]);
  int status = 0;
  while (::waitpid(g_child, &status, 0) < 0 && errno == EINTR) {
  }
  const pid_t child = g_child;
  g_child = -1;
  sa.sa_handler = SIG_DFL;
  for (int sig : kForwarded) ::sigaction(sig, &sa, nullptr);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  // The program never started: there is no trace to look for.
  if (exec_errno != 0) return code;

  if (trace != "off") {
    const std::string expected = expected_trace(trace, child);
    const bool wildcard = expected.find('*') != std::string::npos;
    const std::string path = wildcard ? expected : find_child_trace(expected, child, started);
    // The traces of the program's children (workers, launched ranks, exec'd programs).
    const std::vector<TreeTrace> others =
        wildcard ? std::vector<TreeTrace>{} : find_tree_traces(expected, child, started, path);
    if (!path.empty()) std::fprintf(stderr, "gpumem run: trace: %s\n", visible(path).c_str());
    for (const TreeTrace& t : others)
      std::fprintf(stderr, "gpumem run: trace of process %u (started by %u): %s\n", t.pid, t.parent,
                   visible(t.path).c_str());
    if (path.empty() && others.empty())
      std::fprintf(stderr,
                   "gpumem run: no trace at %s (the program made no CUDA allocation, or "
                   "the path was not writable)\n",
                   visible(expected).c_str());
    // An allocation that failed for good: what was live, the waste, what would fit.
    if (!path.empty() && !wildcard) {
      const std::string why = cli::run_explanation(path);
      std::fwrite(why.data(), 1, why.size(), stderr);
    }
    if (!o.report_dir.empty()) {
      analyzer::ReportOptions ro;
      ro.inputs = {!path.empty() && !wildcard ? path : o.report_dir};
      if (!others.empty()) {  // the whole process tree, reported together
        ro.inputs.clear();
        if (!path.empty()) ro.inputs.push_back(path);
        for (const TreeTrace& t : others) ro.inputs.push_back(t.path);
      }
      ro.json_path = o.report_dir + "/report.json";
      ro.html_path = o.report_dir + "/report.html";
      ro.text = true;  // the summary follows the program's own output
      ro.complete = [](analyzer::Report& report) {
        std::vector<std::string> notes;
        cli::explain_ooms(report, &notes);
        for (const std::string& n : notes)
          std::fprintf(stderr, "gpumem run: %s\n", visible(n).c_str());
      };
      std::fflush(stdout);
      if (analyzer::report_main(ro) == 0)
        std::fprintf(stderr, "gpumem run: report: %s and %s\n", ro.json_path.c_str(),
                     ro.html_path.c_str());
    }
  }
  return code;
}

void register_run(CLI::App& app, std::function<int()>* run) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Run a program with gpumem recording its GPU memory");
  cmd->add_option("--trace", opts->trace,
                  "trace path template: %p pid, %h host, %r rank, %t start time; 'off' for none "
                  "(default: $GPUMEM_TRACE or gpumem-%p.trace)")
      ->check(value_given("--trace"));
  cmd->add_option("--device", opts->device,
                  "auto (real driver if present, else simulated), sim, real")
      ->check(CLI::IsMember({"auto", "sim", "real"}));
  // A flag whose mode is given as --stacks=MODE: a separate value would swallow the "--" before
  // the command (or the command itself).
  cmd->add_flag("--stacks{native}", opts->stacks,
                "record a call stack per allocation: --stacks (native), --stacks=python (Python "
                "source lines) or --stacks=mixed (both) (GPUMEM_STACKS)")
      ->check(CLI::IsMember({"native", "python", "mixed"}));
  cmd->add_flag("--tensors", opts->tensors,
                "make PyTorch, TensorFlow and JAX take each tensor from CUDA instead of their own "
                "cache, so the trace counts tensors (merges with your settings; says what it did)");
  cmd->add_option("--pool", opts->pool, "none, growth, fixed or expandable (GPUMEM_POOL)")
      ->check(value_given("--pool"));
  cmd->add_option("--limit", opts->limit, "cap per device: 512MiB, 8GiB, 60% (GPUMEM_LIMIT)")
      ->check(value_given("--limit"));
  cmd->add_option("--trace-max", opts->trace_max,
                  "bound each trace file: keep the beginning, the newest records and exact totals "
                  "of the middle within this size, e.g. 2GiB (GPUMEM_TRACE_MAX; compact format)")
      ->check(value_given("--trace-max"));
  cmd->add_option("--shared-limit", opts->shared_limit,
                  "share the --limit with every process naming this budget (GPUMEM_LIMIT_SCOPE="
                  "shared, GPUMEM_LIMIT_NAME)")
      ->check(value_given("--shared-limit"));
  cmd->add_option("--capture", opts->capture,
                  "preload (interpose CUDA calls; default) or cupti (CUPTI activity records "
                  "through CUDA_INJECTION64_PATH; observation only, real GPU only)")
      ->check(CLI::IsMember({"preload", "cupti"}));
  cmd->add_option(
         "--report", opts->report_dir,
         "write the trace, DIR/report.json and DIR/report.html into DIR, and print the summary")
      ->check(value_given("--report"));
  cmd->add_option("command", opts->command, "the program and its arguments (after --)")->required();
  cmd->prefix_command(false);
  // Everything from the program's name on is the program's, `--` or not: `gpumem run prog
  // --limit 1` gives --limit to prog (it used to be taken as gpumem's own, and `prog -l` was
  // refused as an unknown option).
  cmd->positionals_at_end();
  cmd->callback([run, opts] { *run = [opts] { return run_command(*opts); }; });
}

GPUMEM_COMMAND(register_run);

}  // namespace
}  // namespace gpumem::cli
