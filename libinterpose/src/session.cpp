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
#include "log.h"
#include "policy.h"
#include "real.h"
#include "reentry.h"
#include "stacks.h"
#include "trace/trace_writer.h"

namespace gpumem::session {
namespace {

enum State : int { kUnopened = 0, kOpen = 1, kDisabled = 2, kClosed = 3 };

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

// Never clobber an existing trace: exec keeps the pid, so "%p" names the same file twice.
void unused_path(const char* wanted, char* out, size_t len) {
  std::snprintf(out, len, "%s", wanted);
  struct stat st;
  for (int i = 1; i < 1000 && ::lstat(out, &st) == 0; ++i)
    std::snprintf(out, len, "%s.%d", wanted, i);
}

bool open_trace() {
  const Config& cfg = config();
  if (cfg.trace_off) return false;
  trace::Header h{};
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
  std::snprintf(h.pool, sizeof h.pool, "%s", pool_kind_name(cfg.pool));
  read_command_line(h.command, sizeof h.command);
  std::snprintf(h.config, sizeof h.config, "%s", cfg.summary);

  char expanded[4096];
  if (!expand_trace_template(cfg.trace_template, static_cast<int>(h.pid), h.host, h.rank,
                             h.start_unix_ns, expanded, sizeof expanded)) {
    log_message(LogLevel::warn,
                "GPUMEM_TRACE='%s' expands to a path that is too long; no trace "
                "is written (use a shorter path)",
                cfg.trace_template);
    return false;
  }
  char path[4096 + 8];
  unused_path(expanded, path, sizeof path);
  char err[512] = {};
  if (!the_writer().open(path, h, err, sizeof err)) {
    log_message(LogLevel::warn,
                "cannot write the trace to '%s' (%s); the program runs on "
                "without a trace. Set GPUMEM_TRACE to a writable path.",
                path, err);
    return false;
  }
  GPUMEM_INFO("tracing to %s", path);
  return true;
}

void before_fork() {
  g_open_mutex.lock();
  g_pid_at_fork = static_cast<uint32_t>(::getpid());
}
void after_fork_parent() {
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
  if (config().stacks) stacks::warm_up();
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  std::atexit(shutdown);
}

TraceWriter* writer() {
  int state = g_state.load(std::memory_order_acquire);
  if (state == kOpen) [[likely]]
    return g_writer_ptr;
  if (state != kUnopened) return nullptr;
  std::lock_guard<std::mutex> lock(g_open_mutex);
  if (!g_initialized) init();  // a hook ran before the library constructor
  state = g_state.load(std::memory_order_acquire);
  if (state == kUnopened) {
    state = open_trace() ? kOpen : kDisabled;
    g_state.store(state, std::memory_order_release);
  }
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
  if (get != nullptr && get(&handle, device) == 0) {
    if (name_fn != nullptr && name_fn(name, sizeof name, handle) != 0) std::strcpy(name, "unknown");
    if (total_fn != nullptr && total_fn(&total, handle) != 0) total = 0;
  }
  // The limit as enforced (a percentage resolved against the capacity), so that readers such as
  // `gpumem replay` judge the run by the cap it ran under.
  w->set_device(device, total, policy::resolved_limit(device), name);
}

void shutdown() {
  policy::log_summary();
  std::lock_guard<std::mutex> lock(g_open_mutex);
  if (g_state.load(std::memory_order_acquire) == kOpen) {
    g_state.store(kClosed, std::memory_order_release);
    if (config().stacks) the_writer().write_symbols();
    the_writer().close();
  } else {
    g_state.store(kClosed, std::memory_order_release);
  }
}

}  // namespace gpumem::session
