// See session.h.
#include "session.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <new>

#include "config.h"
#include "dispatch.h"
#include "gpumem/trace/writer.h"
#include "log.h"
#include "policy.h"
#include "real.h"
#include "reentry.h"
#include "stacks/python_frames.h"
#include "stacks/stacks.h"

namespace gpumem::session {
namespace {

// kClosedForExec: closed by an exec that then failed; the events after it are not recorded.
enum State : int { kUnopened = 0, kOpen = 1, kDisabled = 2, kClosed = 3, kClosedForExec = 4 };

// Built on first use and never destroyed: a destructor would close the trace from the static-
// destructor list, before shutdown() (registered earlier with atexit, so run later) writes the
// symbols; and hooks may run before this file's static initialisers (a library constructor that
// allocates) or during static destruction.
alignas(TraceWriter) unsigned char g_writer_storage[sizeof(TraceWriter)];
TraceWriter* g_writer_ptr = nullptr;  // set under g_open_mutex, before g_state becomes kOpen
bool g_initialized = false;

TraceWriter& the_writer() {
  if (g_writer_ptr == nullptr) g_writer_ptr = new (g_writer_storage) TraceWriter();
  return *g_writer_ptr;
}
std::atomic<int> g_state{kUnopened};
constinit std::mutex g_open_mutex;  // only the first event (and fork, exit) take it
uint32_t g_parent_pid = 0;          // written into the child's header
uint32_t g_pid_at_fork = 0;
std::atomic<uint32_t> g_owner_pid{0};  // the process whose trace is open (set at open)
std::atomic<uint64_t> g_devices_seen[(trace::kMaxDevices + 63) / 64];
int g_simulated = -1;

// argv as the kernel saw it, NUL-separated in /proc/self/cmdline, joined by spaces.
void read_command_line(char* out, size_t len) {
  out[0] = '\0';
  int fd = ::open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = ::read(fd, out, len - 1);
  ::close(fd);
  if (n <= 0) return;
  out[n] = '\0';
  for (ssize_t i = 0; i < n; ++i)
    if (out[i] == '\0') out[i] = ' ';
  while (n > 0 && out[n - 1] == ' ') out[--n] = '\0';
}

// GPUMEM_STACKS=python|mixed: whether this process's Python can be read, so that every reader of
// the trace can say why a run has native stacks only ("python_frames=..." in the config lines).
void note_python_frames(const Config& cfg, char* config_text, size_t len) {
  if (cfg.stack_mode != stacks::Mode::python && cfg.stack_mode != stacks::Mode::mixed) return;
  const stacks::python::RuntimeInfo& py = stacks::python::runtime();
  const size_t used = std::strlen(config_text);
  if (used + 1 >= len) return;
  if (py.state == stacks::python::State::supported)
    std::snprintf(config_text + used, len - used, "python_frames=Python %u.%u.%u\n", py.major,
                  py.minor, py.micro);
  else
    std::snprintf(config_text + used, len - used, "python_frames=off: %s; native stacks recorded\n",
                  py.reason);
}

// Set while this thread holds g_open_mutex: a signal handler that interrupts it and calls into
// the library (gpumem_mark) must not wait for the lock its own thread holds.
thread_local bool t_holds_open_mutex __attribute__((tls_model("initial-exec"))) = false;

void report_trace_error(const char* err) {
  constexpr char kPrefix[] = "gpumem: ";  // the writer's messages carry it; log_message adds it
  if (std::strncmp(err, kPrefix, sizeof kPrefix - 1) == 0) err += sizeof kPrefix - 1;
  log_message(LogLevel::warn, "%s; the program runs on without a trace", err);
}

void warn_from_writer(const char* line) {
  GPUMEM_WARN("%s", line);
}

// Where the trace goes for `expanded` (GPUMEM_TRACE after expansion): a directory means "in this
// folder" (DIR/gpumem-<pid>.trace); a device, pipe or socket cannot hold a trace (it must be
// mapped) and is refused. False (and a message) when refused.
bool choose_trace_path(const char* expanded, uint32_t pid, char* out, size_t len) {
  std::snprintf(out, len, "%s", expanded);
  struct stat st;
  // /dev/stdout and the like name streams even when they resolve to a file: never a trace there
  // (nor a /dev/stdout.1 beside them). /dev/shm is a file system like any other.
  const bool stream =
      std::strncmp(expanded, "/proc/", 6) == 0 ||
      (std::strncmp(expanded, "/dev/", 5) == 0 && std::strncmp(expanded, "/dev/shm/", 9) != 0);
  if (!stream && ::stat(expanded, &st) != 0) return true;  // nothing there yet, or a dangling link
  if (!stream && S_ISDIR(st.st_mode)) {
    size_t n = std::strlen(expanded);
    while (n > 1 && expanded[n - 1] == '/') --n;
    const int written = std::snprintf(out, len, "%.*s/gpumem-%u.trace", static_cast<int>(n),
                                      expanded, static_cast<unsigned>(pid));
    return written > 0 && static_cast<size_t>(written) < len;
  }
  if (stream || !S_ISREG(st.st_mode)) {
    log_message(LogLevel::warn,
                "GPUMEM_TRACE='%s' is not a regular file (a device, pipe or socket), and a trace "
                "must be a file on disk; the program runs on without a trace. Set GPUMEM_TRACE "
                "to a file path (e.g. gpumem-%%p.trace) or to a directory, then read the trace "
                "with gpumem report",
                expanded);
    return false;
  }
  return true;
}

// open_trace's buffers (about 30 KiB, the header alone 20): not on the stack of the thread whose
// first CUDA call opens the trace, which may be a worker with a small one (a 40 KiB stack that
// runs cudaMalloc without gpumem died of SIGSEGV with it). Only open_trace uses them, under
// g_open_mutex.
struct OpenScratch {
  trace::Header h;
  char expanded[4096];
  char wanted[4096 + 32];
  char err[1024];
};
OpenScratch g_open_scratch;

bool open_trace() {
  const Config& cfg = config();
  if (cfg.trace_off) return false;
  OpenScratch& scratch = g_open_scratch;
  scratch = OpenScratch{};
  trace::Header& h = scratch.h;
  h.pid = static_cast<uint32_t>(::getpid());
  h.rank = cfg.rank;
  h.parent_pid = g_parent_pid;
  h.flags = (cfg.stacks ? trace::kHeaderStacks : 0) | (simulated() ? trace::kHeaderSimulated : 0);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  h.clock_base_ns =
      static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
  clock_gettime(CLOCK_REALTIME, &ts);
  h.start_unix_ns =
      static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
  ::gethostname(h.host, sizeof h.host - 1);
  std::snprintf(h.pool, sizeof h.pool, "%s", policy::served_pool_name());
  read_command_line(h.command, sizeof h.command);
  std::snprintf(h.config, sizeof h.config, "%s", cfg.summary);
  note_python_frames(cfg, h.config, sizeof h.config);

  char* expanded = scratch.expanded;
  if (!expand_trace_template(cfg.trace_template, static_cast<int>(h.pid), h.host, h.rank,
                             h.start_unix_ns, expanded, sizeof scratch.expanded)) {
    log_message(LogLevel::warn,
                "GPUMEM_TRACE='%s' expands to a path that is too long; no trace "
                "is written (use a shorter path)",
                cfg.trace_template);
    return false;
  }
  char* wanted = scratch.wanted;
  if (!choose_trace_path(expanded, h.pid, wanted, sizeof scratch.wanted)) return false;
  char* err = scratch.err;
  TraceWriter& w = the_writer();
  w.set_warning_sink(warn_from_writer);
  // Never clobber an existing file: another process may have been given the same name (no %p in
  // GPUMEM_TRACE, or an exec, which keeps the pid): the first free name.1, name.2... is ours.
  if (!w.open_unused(wanted, h, err, sizeof scratch.err)) {
    report_trace_error(err);
    return false;
  }
  if (std::strcmp(w.path(), expanded) != 0) {
    if (std::strcmp(wanted, expanded) != 0)
      log_message(LogLevel::warn, "GPUMEM_TRACE='%s' is a directory: the trace goes to '%s'",
                  expanded, w.path());
    else
      log_message(LogLevel::warn, "'%s' exists already (kept as it is): the trace goes to '%s'",
                  expanded, w.path());
  }
  g_owner_pid.store(h.pid, std::memory_order_relaxed);
  GPUMEM_INFO("tracing to %s", w.path());
  return true;
}

void before_fork() {
  g_open_mutex.lock();
  t_holds_open_mutex = true;
  g_pid_at_fork = static_cast<uint32_t>(::getpid());
}
void after_fork_parent() {
  t_holds_open_mutex = false;
  g_open_mutex.unlock();
}
void after_fork_child() {
  // The parent's mapping is the parent's: drop it untouched; the child opens its own file
  // (under its own pid) at its first event.
  const int state = g_state.load(std::memory_order_relaxed);
  if (state == kOpen) the_writer().abandon();
  if (state == kOpen || state == kUnopened) g_state.store(kUnopened, std::memory_order_relaxed);
  for (auto& word : g_devices_seen) word.store(0, std::memory_order_relaxed);
  g_parent_pid = g_pid_at_fork;
  new (&g_open_mutex) std::mutex();  // the lock held across fork belongs to the parent
  t_holds_open_mutex = false;
  stacks::reset_after_fork();
}

void warn_after_failed_exec() {
  static std::atomic<bool> warned{false};
  if (g_owner_pid.load(std::memory_order_relaxed) != static_cast<uint32_t>(::getpid())) return;
  if (warned.exchange(true, std::memory_order_relaxed)) return;
  GPUMEM_WARN(
      "an exec failed after the trace was closed for it: this process's later events "
      "are not recorded (the trace holds everything up to the exec)");
}

}  // namespace

bool simulated() {
  if (g_simulated < 0) {
    // simcuda's libraries export simcuda_is_simulated(); the real ones do not.
    using Fn = int (*)();
    auto fn = reinterpret_cast<Fn>(real_dlsym(RTLD_DEFAULT, "simcuda_is_simulated"));
    if (fn == nullptr) fn = reinterpret_cast<Fn>(real_driver_symbol("simcuda_is_simulated"));
    g_simulated = (fn != nullptr && fn() != 0) ? 1 : 0;
  }
  return g_simulated == 1;
}

void init() {
  if (g_initialized) return;
  g_initialized = true;
  load_config();
  if (config().stacks) stacks::warm_up(config().stack_mode);
  // The process that started this one (an exec'd child's launcher; a forked child's parent is set
  // at fork): lets `gpumem run` find every trace of the process tree it started.
  g_parent_pid = static_cast<uint32_t>(::getppid());
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  std::atexit(shutdown);
  // quick_exit runs only these, then glibc's internal _exit (which the _exit hook never sees).
  std::at_quick_exit(shutdown);
}

TraceWriter* writer() {
  int state = g_state.load(std::memory_order_acquire);
  if (state == kOpen) [[likely]]
    return g_writer_ptr;
  if (state != kUnopened) {
    if (state == kClosedForExec) warn_after_failed_exec();
    return nullptr;
  }
  // A signal handler interrupting this thread's own open (or fork, or exit): its event is
  // dropped rather than waiting forever for a lock that this thread holds.
  if (t_holds_open_mutex) return nullptr;
  std::lock_guard<std::mutex> lock(g_open_mutex);
  t_holds_open_mutex = true;
  if (!g_initialized) init();  // a hook ran before the library constructor
  state = g_state.load(std::memory_order_acquire);
  if (state == kUnopened) {
    state = open_trace() ? kOpen : kDisabled;
    g_state.store(state, std::memory_order_release);
  }
  t_holds_open_mutex = false;
  return state == kOpen ? g_writer_ptr : nullptr;
}

void note_device(int device) {
  if (device < 0 || device >= trace::kMaxDevices) return;
  const uint64_t bit = 1ull << (device % 64);
  auto& word = g_devices_seen[device / 64];
  if (word.load(std::memory_order_relaxed) & bit) [[likely]]
    return;
  if (word.fetch_or(bit, std::memory_order_relaxed) & bit) return;
  TraceWriter* w = writer();
  if (w == nullptr) return;
  // Real driver calls only, inside a hook scope: nothing here is recorded.
  HookScope scope;
  using GetFn = int (*)(int*, int);
  using NameFn = int (*)(char*, int, int);
  using TotalFn = int (*)(size_t*, int);
  auto get = reinterpret_cast<GetFn>(real_driver_symbol("cuDeviceGet"));
  auto name_fn = reinterpret_cast<NameFn>(real_driver_symbol("cuDeviceGetName"));
  auto total_fn = reinterpret_cast<TotalFn>(real_driver_symbol("cuDeviceTotalMem_v2"));
  int handle = device;
  char name[96] = "unknown";
  size_t total = 0;
  if (get != nullptr) {
    constexpr int kNotInitialized = 3;  // CUDA_ERROR_NOT_INITIALIZED
    const int got = get(&handle, device);
    // An event before cuInit (an NVML query first): asked again at the device's next event, so
    // its name and capacity are not "unknown" and 0 for the whole run.
    if (got == kNotInitialized) {
      word.fetch_and(~bit, std::memory_order_relaxed);
      return;
    }
    // A device CUDA does not have (a failed call that named it): no header entry, whose
    // device_count would count it.
    if (got != 0) return;
    if (name_fn != nullptr && name_fn(name, sizeof name, handle) != 0) std::strcpy(name, "unknown");
    if (total_fn != nullptr && total_fn(&total, handle) != 0) total = 0;
  }
  // The limit as enforced (a percentage resolved against the capacity), so that readers such as
  // `gpumem replay` judge the run by the cap it ran under.
  if (!w->set_device(device, total, policy::resolved_limit(device), name))
    word.fetch_and(~bit, std::memory_order_relaxed);  // asked again at its next event
}

namespace {

// The end of this image (exit, _exit, exec): the device summary, symbols (GPUMEM_STACKS=1), then
// a clean close; the state becomes `final_state`.
void finish(State final_state) {
  // exit() from a signal handler that interrupted this thread's own open: the lock would never
  // come free. The trace is left as the open made it (it reads as not closed cleanly).
  if (t_holds_open_mutex) return;
  // exit() from a signal handler that interrupted one of the hooks: a pool may be mid-change
  // under a lock this thread holds, so its statistics are not asked for.
  if (t_hook_depth == 0)
    log_summary();
  else
    GPUMEM_INFO("no device summary: the program exited from inside a CUDA call (a signal handler)");
  std::lock_guard<std::mutex> lock(g_open_mutex);
  t_holds_open_mutex = true;
  if (g_state.load(std::memory_order_acquire) == kOpen) {
    g_state.store(final_state, std::memory_order_release);
    if (config().stacks) the_writer().write_symbols();
    the_writer().close();
  } else {
    g_state.store(kClosed, std::memory_order_release);
  }
  t_holds_open_mutex = false;
}

}  // namespace

void shutdown() {
  finish(kClosed);
}

void close_for_exec() {
  // Only the process that opened the trace: a vfork child (another pid, the parent's memory)
  // must leave the parent's trace open.
  if (g_state.load(std::memory_order_acquire) != kOpen ||
      g_owner_pid.load(std::memory_order_relaxed) != static_cast<uint32_t>(::getpid()))
    return;
  finish(kClosedForExec);
}

void shutdown_at_exit_call() {
  if (g_owner_pid.load(std::memory_order_relaxed) != static_cast<uint32_t>(::getpid())) return;
  shutdown();
}

}  // namespace gpumem::session
