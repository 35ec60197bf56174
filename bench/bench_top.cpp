// What `gpumem top` costs while it follows live traces (issue 22: under 1 % of a core with ten
// processes writing 100k events a second each). N writer processes append alloc/free records at a
// set rate to their own traces with the real writer (64 call sites, 1024 allocations live); the
// real `gpumem top` follows the folder on a pseudo-terminal (its full-screen view, as a person
// sees it) for a number of one-second refreshes. Reported: top's CPU time as a fraction of one core
// while following, from its first frame to its exit (wait4's rusage less its threads' run time
// in /proc at the first frame), and over its whole run; its largest resident size; the writers' CPU
// in the same run as the baseline (the ratio says what watching costs next to writing).
//
// GPUMEM_BENCH_TOP_WRITERS (10), GPUMEM_BENCH_TOP_REFRESHES (10; bench/run --smoke: 3),
// GPUMEM_BENCH_TOP_FORMAT (raw|compact),
// GPUMEM_BENCH_TOP_PREFIX (a command top runs under, e.g. `perf record -g -o top.perf`),
// GPUMEM_BENCH_TOP_CLI (another gpumem program to measure, e.g. an older build's).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "gpumem/trace/format.h"
#include "gpumem/trace/writer.h"

namespace {

namespace tr = gpumem::trace;

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

double cpu_s(const rusage& ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// A writer process: appends alloc/free pairs at `rate` events a second, in 1 ms ticks, until
// `stop` (a pipe's read end) sees its writer end closed; then closes the trace. 5 ms ticks: a
// real job does not wake up to write, so the writers' baseline should be mostly their appends.
// Exit status 0, or 3 when the trace could not be opened.
[[noreturn]] void writer(const std::string& path, uint64_t rate, bool compact, int stop) {
  gpumem::TraceWriter w;
  w.set_format(compact ? gpumem::TraceWriter::Format::compact : gpumem::TraceWriter::Format::raw);
  tr::Header h{};
  ::gethostname(h.host, sizeof h.host - 1);
  std::snprintf(h.command, sizeof h.command, "bench_top writer");
  std::snprintf(h.pool, sizeof h.pool, "none");
  char err[512];
  if (!w.open(path.c_str(), h, err, sizeof err)) {
    std::fprintf(stderr, "bench_top writer: %s\n", err);
    _exit(3);
  }
  w.set_device(0, 80ull << 30, 0, "simulated H100");
  uint32_t sites[64];
  for (uint32_t i = 0; i < 64; ++i) {
    const uint64_t pcs[3] = {0x401000 + i * 16, 0x402000 + i % 8 * 16, 0x403000};
    sites[i] = w.intern_stack(pcs, 3);
  }
  constexpr uint64_t kLive = 1024;
  const uint64_t start = gpumem::monotonic_ns();
  uint64_t done = 0, i = 0;
  bool free_next = false;  // after allocation i (i >= kLive): free allocation i - kLive
  for (;;) {
    const uint64_t now = gpumem::monotonic_ns();
    const uint64_t due = (now - start) * rate / 1'000'000'000;
    for (; done < due; ++done) {
      tr::Record r{};
      r.device = 0;
      if (!free_next) {
        r.op = static_cast<uint16_t>(tr::Op::alloc);
        r.api = static_cast<uint16_t>(tr::Api::cudaMalloc);
        r.address = 0x7f0000000000ull + (i % (2 * kLive)) * (1 << 20);
        r.bytes = 512 * (i % 128 + 1);
        r.site = sites[i % 64];
        free_next = i >= kLive;
        if (!free_next) ++i;
      } else {
        const uint64_t j = i - kLive;
        r.op = static_cast<uint16_t>(tr::Op::free);
        r.api = static_cast<uint16_t>(tr::Api::cudaFree);
        r.address = 0x7f0000000000ull + (j % (2 * kLive)) * (1 << 20);
        r.bytes = 512 * (j % 128 + 1);
        free_next = false;
        ++i;
      }
      w.append(r);
    }
    pollfd p{stop, POLLIN, 0};
    if (::poll(&p, 1, 5) != 0) break;  // the parent closed the pipe (or it failed): stop
  }
  w.close();
  _exit(0);
}

// A process's CPU time so far, in seconds: the sum of its threads' run time in
// /proc/PID/task/*/schedstat, in nanoseconds. /proc/PID/stat's utime and stime are whole clock
// ticks (10 ms), each rounded down: top's first frame comes 3-4 ms into its CPU, which they gave
// as 0, and a run of ten refreshes then charged those milliseconds to following. Threads that
// have ended are not in schedstat; top follows raw traces on one thread. Falls back to
// /proc/PID/stat when schedstat cannot be read; -1 when neither can.
double proc_cpu_s(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::error_code ec;
  uint64_t ns = 0;
  bool any = false;
  for (const auto& task : std::filesystem::directory_iterator(proc + "/task", ec)) {
    std::ifstream in(task.path() / "schedstat");
    unsigned long long run_ns = 0;
    if (in >> run_ns) ns += run_ns, any = true;
  }
  if (any) return static_cast<double>(ns) * 1e-9;
  std::ifstream in(proc + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = all.rfind(')');  // the command may hold spaces and parentheses
  if (paren == std::string::npos) return -1;
  std::istringstream fields(all.substr(paren + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {  // field 3 is the state; 14 utime, 15 stime
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct Result {
  double top_cpu_s = 0, top_wall_s = 0, top_maxrss_mib = 0, writers_cpu_s = 0, writers_wall_s = 0;
  // At top's first frame (its first refresh done): start-up and the backlog are behind it.
  double first_cpu_s = -1, first_wall_s = 0;
  uint64_t events = 0;
  std::string error;
};

Result run_once(int writers, uint64_t rate, int refreshes, bool compact) {
  Result res;
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") +
                          "/gpumem-bench-top-" + std::to_string(::getpid());
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  int stop[2];
  if (::pipe(stop) != 0) return res.error = "pipe failed", res;
  std::vector<pid_t> pids;
  const auto writers_started = std::chrono::steady_clock::now();
  for (int k = 0; k < writers; ++k) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(stop[1]);
      writer(dir + "/w" + std::to_string(k) + ".trace", rate, compact, stop[0]);
    }
    pids.push_back(pid);
  }
  ::close(stop[0]);
  // Every trace exists before top starts, so that it follows all of them from its first refresh.
  for (int k = 0; k < writers; ++k) {
    const std::string p = dir + "/w" + std::to_string(k) + ".trace";
    for (int tries = 0; tries < 5000 && !std::filesystem::exists(p, ec); ++tries) ::usleep(1000);
  }

  // gpumem top on a pseudo-terminal of 160x50; its screen is read and thrown away here.
  int master = -1;
  winsize ws{};
  ws.ws_col = 160;
  ws.ws_row = 50;
  const std::string iterations = std::to_string(refreshes);
  const auto top_started = std::chrono::steady_clock::now();
  const pid_t top = ::forkpty(&master, nullptr, nullptr, &ws);
  if (top == 0) {
    ::setenv("LANG", "C.UTF-8", 1);
    const char* cli = std::getenv("GPUMEM_BENCH_TOP_CLI");  // another build's gpumem, to compare
    if (cli == nullptr || *cli == '\0') cli = GPUMEM_CLI;
    const char* prefix = std::getenv("GPUMEM_BENCH_TOP_PREFIX");  // e.g. a profiler's command
    if (prefix != nullptr && *prefix != '\0') {
      const std::string cmd = std::string(prefix) + " '" + cli + "' top '" + dir +
                              "' --interval 1 --iterations " + iterations;
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    }
    ::execl(cli, cli, "top", dir.c_str(), "--interval", "1", "--iterations", iterations.c_str(),
            static_cast<char*>(nullptr));
    _exit(127);
  }
  std::string screen_tail;
  if (top > 0) {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(master, buf, sizeof buf);
      if (n > 0) {
        screen_tail.append(buf, static_cast<size_t>(n));
        // A frame starts with the cursor going home; the terminal's set-up before it does not.
        if (res.first_cpu_s < 0 && screen_tail.find("\x1b[H") != std::string::npos) {
          res.first_cpu_s = proc_cpu_s(top);
          res.first_wall_s =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - top_started).count();
        }
        if (screen_tail.size() > 1 << 16) screen_tail.erase(0, screen_tail.size() - (1 << 15));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      break;  // EIO: top exited and the slave side closed
    }
  }
  int status = 0;
  rusage ru{};
  if (top > 0 && ::wait4(top, &status, 0, &ru) == top) {
    const auto wall = std::chrono::steady_clock::now() - top_started;
    res.top_wall_s = std::chrono::duration<double>(wall).count();
    res.top_cpu_s = cpu_s(ru);
    res.top_maxrss_mib = static_cast<double>(ru.ru_maxrss) / 1024.0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      res.error = "gpumem top exited with status " + std::to_string(status) + ": " +
                  screen_tail.substr(screen_tail.size() > 400 ? screen_tail.size() - 400 : 0);
    else if (screen_tail.find("running") == std::string::npos)
      res.error = "gpumem top never showed a running process";
  } else {
    res.error = "gpumem top could not be started";
  }
  if (master >= 0) ::close(master);

  ::close(stop[1]);  // the writers stop
  for (pid_t pid : pids) {
    rusage wru{};
    int ws_status = 0;
    if (pid > 0 && ::wait4(pid, &ws_status, 0, &wru) == pid) {
      res.writers_cpu_s += cpu_s(wru);
      if (!WIFEXITED(ws_status) || WEXITSTATUS(ws_status) != 0)
        res.error = "a writer failed (status " + std::to_string(ws_status) + ")";
    }
  }
  res.writers_wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - writers_started).count();
  for (int k = 0; k < writers; ++k) {
    const std::string p = dir + "/w" + std::to_string(k) + ".trace";
    struct stat st{};
    if (!compact && ::stat(p.c_str(), &st) == 0 && st.st_size > static_cast<off_t>(tr::kHeaderSize))
      res.events += (static_cast<uint64_t>(st.st_size) - tr::kHeaderSize) / tr::kRecordSize;
  }
  std::filesystem::remove_all(dir, ec);
  return res;
}

// Arg: events a second per writer. 100k is the load; 1k a training job's (the PyTorch
// caching allocator calls cudaMalloc rarely), where top's cost per refresh shows; 0 a job between
// allocations (each trace holds only its device and its 64 call stacks).
void BM_TopFollowing(benchmark::State& state) {
  const int writers = static_cast<int>(env_or("GPUMEM_BENCH_TOP_WRITERS", 10));
  const uint64_t rate = static_cast<uint64_t>(state.range(0));
  const int refreshes = static_cast<int>(env_or("GPUMEM_BENCH_TOP_REFRESHES", 10));
  const char* format = std::getenv("GPUMEM_BENCH_TOP_FORMAT");
  const bool compact = format != nullptr && std::strcmp(format, "compact") == 0;
  Result r;
  for (auto _ : state) {
    r = run_once(writers, rate, refreshes, compact);
    state.SetIterationTime(r.top_wall_s);
  }
  if (!r.error.empty()) return state.SkipWithError(r.error.c_str());
  state.counters["writers"] = writers;
  state.counters["events_per_s_per_writer"] = static_cast<double>(rate);
  state.counters["refreshes"] = refreshes;
  state.counters["top_cpu_s"] = r.top_cpu_s;
  state.counters["top_wall_s"] = r.top_wall_s;
  // Following: from the first frame on (start-up and reading the backlog left out).
  if (r.first_cpu_s < 0 || r.top_wall_s <= r.first_wall_s)
    return state.SkipWithError("top's first frame was not seen, or /proc could not be read");
  state.counters["top_core_fraction"] =
      (r.top_cpu_s - r.first_cpu_s) / (r.top_wall_s - r.first_wall_s);
  state.counters["top_core_fraction_with_start"] = r.top_cpu_s / r.top_wall_s;
  state.counters["top_first_refresh_cpu_s"] = r.first_cpu_s;
  state.counters["top_max_rss_mib"] = r.top_maxrss_mib;
  state.counters["writers_cpu_s"] = r.writers_cpu_s;
  state.counters["writers_core_fraction"] = r.writers_cpu_s / r.writers_wall_s;
  state.counters["top_vs_writers"] = r.top_cpu_s / std::max(r.writers_cpu_s, 1e-9);
  // Raw traces only (compact files hold no countable slots): what the writers really wrote, per
  // second of their run, so a writer that could not keep up on a loaded machine shows.
  if (r.events > 0)
    state.counters["events_per_s_written_per_writer"] =
        static_cast<double>(r.events) / r.writers_wall_s / writers;
}
BENCHMARK(BM_TopFollowing)
    ->ArgName("events_per_s")
    ->Arg(100000)
    ->Arg(1000)
    ->Arg(0)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kSecond);

// Why top's follower reads with pread into one 64 KiB buffer and does not map the traces: the
// appended records of a 64 MiB file in the page cache (as a live trace's are: just written),
// read once, one 8-byte word of each 64-byte record touched. Arg 0: pread, 64 KiB at a time
// (the follower's buffer); arg 1: mapped read-only 1 MiB at a time and unmapped after (a mapping
// kept would leave every page read in top's resident size); arg 2: the same mapped with
// MAP_POPULATE (the page tables filled in one call instead of a fault per page or per
// fault-around window). Reported: CPU (user + system) per record. On a virtual machine each page
// mapped costs an exit to the hypervisor either way.
void BM_ReadRecords(benchmark::State& state) {
  constexpr size_t kFileBytes = 64u << 20, kReadBytes = 64u << 10, kMapBytes = 1u << 20;
  const bool mapped = state.range(0) >= 1;
  const int map_flags = MAP_SHARED | (state.range(0) == 2 ? MAP_POPULATE : 0);
  const char* tmp = std::getenv("TMPDIR");
  const std::string path = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") +
                           "/gpumem-bench-read-" + std::to_string(::getpid());
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return state.SkipWithError("cannot create the file in $TMPDIR");
  ::unlink(path.c_str());  // gone once closed
  std::vector<uint64_t> block(kReadBytes / sizeof(uint64_t));
  for (size_t off = 0; off < kFileBytes; off += kReadBytes) {
    for (size_t i = 0; i < block.size(); ++i) block[i] = off + i * sizeof(uint64_t) + 1;
    if (::pwrite(fd, block.data(), kReadBytes, static_cast<off_t>(off)) !=
        static_cast<ssize_t>(kReadBytes))
      return ::close(fd), state.SkipWithError("cannot write the file in $TMPDIR");
  }
  constexpr size_t kWordsPerRecord = tr::kRecordSize / sizeof(uint64_t);
  uint64_t sum = 0;
  rusage before{}, after{};
  ::getrusage(RUSAGE_SELF, &before);
  for (auto _ : state) {
    for (size_t off = 0; off < kFileBytes; off += mapped ? kMapBytes : kReadBytes) {
      if (mapped) {
        void* m = ::mmap(nullptr, kMapBytes, PROT_READ, map_flags, fd, static_cast<off_t>(off));
        if (m == MAP_FAILED) return ::close(fd), state.SkipWithError("mmap failed");
        const auto* words = static_cast<const uint64_t*>(m);
        for (size_t i = 0; i < kMapBytes / sizeof(uint64_t); i += kWordsPerRecord) sum += words[i];
        ::munmap(m, kMapBytes);
      } else {
        if (::pread(fd, block.data(), kReadBytes, static_cast<off_t>(off)) !=
            static_cast<ssize_t>(kReadBytes))
          return ::close(fd), state.SkipWithError("pread failed");
        for (size_t i = 0; i < block.size(); i += kWordsPerRecord) sum += block[i];
      }
    }
  }
  ::getrusage(RUSAGE_SELF, &after);
  ::close(fd);
  benchmark::DoNotOptimize(sum);
  const double records =
      static_cast<double>(state.iterations()) * static_cast<double>(kFileBytes / tr::kRecordSize);
  state.counters["cpu_ns_per_record"] = (cpu_s(after) - cpu_s(before)) * 1e9 / records;
  state.SetItemsProcessed(static_cast<int64_t>(records));
}
BENCHMARK(BM_ReadRecords)->ArgName("mapped")->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
