// The program the trace-file tests (trace_file_test.cpp) run under LD_PRELOAD=libgpumem.so on
// simcuda. Every mode prints nothing on success and exits 0.
//
//   trace_child pairs N [FSIZE]    N cudaMalloc(4096)/cudaFree pairs on the main thread. With
//                                  FSIZE, first limits the size of any file it writes to FSIZE
//                                  bytes (RLIMIT_FSIZE, SIGXFSZ ignored): a full disk without one.
//   trace_child pairs-limited N FSIZE  the same limit with SIGXFSZ left at its default (which
//                                  kills the process a write past the limit is made by).
//   trace_child quick-exit N       N pairs, then quick_exit(0) (no atexit handlers run).
//   trace_child pairs-at N T       the same, with the first allocation (which opens the trace) at
//                                  CLOCK_REALTIME T ns: processes started together race on it.
//   trace_child thread-exit N      N threads allocate and free in a loop; once each has made
//                                  1000 calls, another thread calls exit(0) while they go on.
//   trace_child mark-signal        a 20 us interval timer whose handler calls gpumem_mark, armed
//                                  just before the first allocation (which opens the trace).
//   trace_child daemon N FILE      as a daemon does after the trace is open: closes descriptors
//                                  0-1023, opens /dev/null as 0-2 and FILE as 3-63 (the trace's
//                                  old number among them), writes "precious\n" to it, N pairs.
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gpumem/gpumem.h"
#include "driver_context.h"

namespace {

using reliability::init_driver;

int pairs(unsigned long long n) {
  for (unsigned long long i = 0; i < n; ++i) {
    void* p = nullptr;
    if (cudaMalloc(&p, 4096) != cudaSuccess) return 3;
    if (cudaFree(p) != cudaSuccess) return 4;
  }
  return 0;
}

int thread_exit(int threads) {
  if (!init_driver()) return 1;
  std::vector<std::atomic<unsigned long long>> calls(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    std::thread([&calls, t] {
      CUcontext ctx;
      cuDevicePrimaryCtxRetain(&ctx, 0);
      cuCtxSetCurrent(ctx);
      for (;;) {
        void* p = nullptr;
        if (cudaMalloc(&p, 512) == cudaSuccess) cudaFree(p);
        calls[static_cast<size_t>(t)].fetch_add(2, std::memory_order_relaxed);
      }
    }).detach();
  }
  std::thread([&calls] {
    for (auto& c : calls)
      while (c.load(std::memory_order_relaxed) < 1000) std::this_thread::yield();
    std::exit(0);  // the other threads are still allocating
  }).join();
  return 5;  // never reached
}

void on_tick(int) {
  gpumem_mark("tick");
}

int mark_signal() {
  if (!init_driver()) return 1;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_tick;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, nullptr);
  const itimerval every_20us{{0, 20}, {0, 20}};
  setitimer(ITIMER_REAL, &every_20us, nullptr);
  const int rc = pairs(20);
  const itimerval off{};
  setitimer(ITIMER_REAL, &off, nullptr);
  return rc;
}

// A SIGUSR1 handler that calls exit(), as programs that clean up on SIGINT or SIGTERM do (not
// async-signal-safe, but common): signal_in_io.cpp raises it inside the writer's own I/O.
int exit_in_handler(unsigned long long n) {
  if (!init_driver()) return 1;
  signal(SIGUSR1, [](int) { std::exit(0); });
  pairs(n);
  return 4;  // the signal never came
}

// The same handler on a timer (SIGALRM after `ms`), for a signal that lands inside a pool's
// growth (simcuda's allocation latency set long by the test).
int exit_on_timer(unsigned long long n, long ms) {
  if (!init_driver()) return 1;
  signal(SIGALRM, [](int) { std::exit(0); });
  const itimerval once{{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
  setitimer(ITIMER_REAL, &once, nullptr);
  pairs(n);
  return 4;  // the signal never came
}

// exec: N pairs, then this program again, for M pairs, through execl (variadic) or execv.
// `how` names the exec function: execv, execl, execve, execvp, execvpe, execlp, execle, fexecve,
// execveat (each of glibc's is a function of its own, and each is wrapped).
int exec_self(unsigned long long n, const char* m, const std::string& how) {
  if (pairs(n) != 0) return 3;
  const char* self = "/proc/self/exe";
  char* const argv[] = {const_cast<char*>("trace_child"), const_cast<char*>("pairs"),
                        const_cast<char*>(m), nullptr};
  char* const* env = environ;
  const char* nul = nullptr;
  if (how == "execv") execv(self, argv);
  if (how == "execl") execl(self, "trace_child", "pairs", m, nul);
  if (how == "execve") execve(self, argv, env);
  if (how == "execvp") execvp(self, argv);
  if (how == "execvpe") execvpe(self, argv, env);
  if (how == "execlp") execlp(self, "trace_child", "pairs", m, nul);
  if (how == "execle") execle(self, "trace_child", "pairs", m, nul, env);
  if (how == "fexecve" || how == "execveat") {
    const int fd = ::open(self, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 6;
    if (how == "fexecve") fexecve(fd, argv, env);
    if (how == "execveat") execveat(fd, "", argv, env, AT_EMPTY_PATH);
  }
  return 5;  // the exec failed (or `how` is none of these)
}

// An exec that fails: N pairs, then M more in the same image.
int exec_missing(unsigned long long n, unsigned long long m) {
  if (pairs(n) != 0) return 3;
  char* const argv[] = {const_cast<char*>("missing"), nullptr};
  if (execvp("/nonexistent/gpumem-test-program", argv) != -1) return 5;
  return pairs(m);
}

// A vfork child that execs shares the parent's memory: the parent's trace must stay open. N pairs
// before the vfork, N after.
int vfork_exec(unsigned long long n) {
  if (pairs(n) != 0) return 3;
  const pid_t pid = vfork();
  if (pid == 0) {
    // No LD_PRELOAD in true's environment (an ASan-built preload cannot load into it).
    char* const no_env[] = {nullptr};
    execle("/bin/true", "true", static_cast<char*>(nullptr), no_env);
    _exit(127);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) return 6;
  return pairs(n);
}

// Under an address-space limit of `limit` bytes (ulimit -v): N pairs (the first opens the trace),
// then the program maps 5/8 of its limit, as a program that sizes a buffer by it would. 7 when
// that mapping fails.
int pairs_under_address_limit(unsigned long long n, unsigned long long limit) {
  const rlimit r{limit, limit};
  if (setrlimit(RLIMIT_AS, &r) != 0) return 6;
  if (pairs(n) != 0) return 3;
  void* m = mmap(nullptr, limit / 8 * 5, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return m == MAP_FAILED ? 7 : 0;
}

int daemon_pairs(unsigned long long n, const char* file) {
  if (pairs(1) != 0) return 3;  // opens the trace
  for (int fd = 0; fd < 1024; ++fd) ::close(fd);
  for (int i = 0; i < 3; ++i)
    if (::open("/dev/null", O_RDWR) != i) return 7;
  const int fd = ::open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return 8;
  for (int k = fd + 1; k < 64; ++k)  // whichever number the trace had, it is FILE's now
    if (::dup2(fd, k) != k) return 8;
  if (::write(fd, "precious\n", 9) != 9) return 9;
  const int rc = pairs(n);
  ::close(fd);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "pairs" && (argc == 3 || argc == 4)) {
    if (argc == 4) {
      signal(SIGXFSZ, SIG_IGN);  // a write past the limit fails with EFBIG instead of killing
      const rlim_t limit = std::strtoull(argv[3], nullptr, 10);
      const rlimit r{limit, limit};
      if (setrlimit(RLIMIT_FSIZE, &r) != 0) return 6;
    }
    return pairs(std::strtoull(argv[2], nullptr, 10));
  }
  if (cmd == "pairs-limited" && argc == 4) {
    const rlim_t limit = std::strtoull(argv[3], nullptr, 10);
    const rlimit r{limit, limit};
    if (setrlimit(RLIMIT_FSIZE, &r) != 0) return 6;
    return pairs(std::strtoull(argv[2], nullptr, 10));
  }
  if (cmd == "quick-exit" && argc == 3) {
    if (pairs(std::strtoull(argv[2], nullptr, 10)) != 0) return 3;
    std::quick_exit(0);
  }
  if (cmd == "pairs-at" && argc == 4) {
    if (!init_driver()) return 1;
    const unsigned long long at = std::strtoull(argv[3], nullptr, 10);
    for (;;) {
      timespec now;
      clock_gettime(CLOCK_REALTIME, &now);
      if (static_cast<unsigned long long>(now.tv_sec) * 1000000000ull +
              static_cast<unsigned long long>(now.tv_nsec) >=
          at)
        break;
    }
    return pairs(std::strtoull(argv[2], nullptr, 10));
  }
  if (cmd == "thread-exit" && argc == 3) return thread_exit(std::atoi(argv[2]));
  if (cmd == "mark-signal") return mark_signal();
  if (cmd == "exec-self" && argc == 5)
    return exec_self(std::strtoull(argv[2], nullptr, 10), argv[3], argv[4]);
  if (cmd == "exec-missing" && argc == 4)
    return exec_missing(std::strtoull(argv[2], nullptr, 10), std::strtoull(argv[3], nullptr, 10));
  if (cmd == "pairs-as" && argc == 4)
    return pairs_under_address_limit(std::strtoull(argv[2], nullptr, 10),
                                     std::strtoull(argv[3], nullptr, 10));
  if (cmd == "vfork-exec" && argc == 3) return vfork_exec(std::strtoull(argv[2], nullptr, 10));
  if (cmd == "exit-on-timer" && argc == 4)
    return exit_on_timer(std::strtoull(argv[2], nullptr, 10), std::atol(argv[3]));
  if (cmd == "exit-in-handler" && argc == 3)
    return exit_in_handler(std::strtoull(argv[2], nullptr, 10));
  if (cmd == "daemon" && argc == 4)
    return daemon_pairs(std::strtoull(argv[2], nullptr, 10), argv[3]);
  std::fprintf(stderr,
               "usage: trace_child pairs N [FSIZE] | pairs-limited N FSIZE | quick-exit N | "
               "pairs-at N T | thread-exit N | mark-signal | exit-in-handler N | "
               "exit-on-timer N MS | exec-self N M HOW | exec-missing N M | "
               "vfork-exec N | pairs-as N LIMIT | daemon N FILE\n");
  return 2;
}
