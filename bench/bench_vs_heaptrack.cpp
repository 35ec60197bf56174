// gpumem against heaptrack on the same number of calls, all measured in one run (bench/run turns
// the counters into the budget table; docs/performance.md).
//
//   BM_CaptureOverhead/<mode>   ns per recorded event over the same loop without any tool:
//                               host   malloc/free pairs, plain and under `heaptrack -o FILE`
//                               cuda   cuMemAlloc_v2/cuMemFree_v2 pairs on simcuda, plain, under
//                                      libgpumem.so, and with GPUMEM_STACKS=1
//                               compact  the cuda loop under libgpumem.so with
//                                        GPUMEM_TRACE_FORMAT=compact (arg 3)
//   BM_PolicyThroughPreload     cuMemAlloc_v2/cuMemFree_v2 pairs on simcuda with 20 us device
//                               latency, without the preload and with GPUMEM_POOL=growth
//   BM_AnalyzerVsHeaptrackPrint events per second of `gpumem report --json` on a generated trace
//                               and of `heaptrack_print` on heaptrack's trace of a loop making
//                               the same number of calls; peak RSS of each; trace bytes per event
//   BM_AnalyzerVsHeaptrackPrintCompact  the same on a compact trace (GPUMEM_TRACE_FORMAT=compact)
//   BM_AnalyzerVsHeaptrackPrintPooled   the same on a pooled trace: a worker's calls under the
//                               preload with GPUMEM_POOL=growth (expandable:0) or expandable (1)
//
// `bench_vs_heaptrack --write-trace PATH EVENTS raw|compact` writes the analyzer rows' trace and
// keeps it, for profiling `gpumem report` on it.
//
// Workers (this program re-executed) time their own loop, so process start, tool start-up and
// CUDA initialisation are not counted; each figure is the best of the benchmark's iterations.
// GPUMEM_BENCH_EVENTS overrides the event count (bench/run --smoke uses a small one).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "gpumem/trace/writer.h"

namespace {

std::string g_self;
std::string g_tmp;

uint64_t events_wanted(uint64_t fallback) {
  const char* v = std::getenv("GPUMEM_BENCH_EVENTS");
  return v != nullptr ? std::strtoull(v, nullptr, 10) : fallback;
}

// --- workers ----------------------------------------------------------------------------------
using Clock = std::chrono::steady_clock;

__attribute__((noinline)) void* host_alloc(size_t n) {
  void* p = std::malloc(n);
  benchmark::DoNotOptimize(p);
  return p;
}

int host_worker(long pairs) {
  std::free(host_alloc(256));
  const auto start = Clock::now();
  for (long i = 0; i < pairs; ++i) std::free(host_alloc(256u * static_cast<unsigned>(i % 16 + 1)));
  gpumem::bench::print_elapsed_ns(start);
  return 0;
}

int cuda_worker(long pairs) {
  gpumem::bench::DriverCalls cu;
  if (!gpumem::bench::open_driver("bench_vs_heaptrack", &cu)) return 1;
  // Warm-up, not measured: trace creation, pool set-up, and the first touch of the pages of the
  // live-pointer tables (thousands of page faults while the pool cycles through new addresses;
  // a one-time cost per process, not a per-event one).
  for (long i = 0; i < std::min(pairs, 20000L); ++i) {
    CUdeviceptr warm = 0;
    if (cu.alloc(&warm, 256u * static_cast<unsigned>(i % 16 + 1)) != CUDA_SUCCESS) return 1;
    cu.free(warm);
  }
  const auto start = Clock::now();
  for (long i = 0; i < pairs; ++i) {
    CUdeviceptr p = 0;
    if (cu.alloc(&p, 256u * static_cast<unsigned>(i % 16 + 1)) != CUDA_SUCCESS) return 1;
    cu.free(p);
  }
  gpumem::bench::print_elapsed_ns(start);
  return 0;
}

// Allocations held in 4096 slots, each call freeing the slot it picks when it is live and
// allocating 512 B to 64 KiB there otherwise (xorshift, fixed seed): under GPUMEM_POOL=growth the
// pool keeps many blocks live in its 2 MiB segments, so the trace carries pooled records with
// free extents to track, as a training step's does. `calls` allocations and frees in all.
int cuda_pool_worker(long calls) {
  gpumem::bench::DriverCalls cu;
  if (!gpumem::bench::open_driver("bench_vs_heaptrack", &cu)) return 1;
  std::vector<CUdeviceptr> live(4096, 0);
  uint64_t x = 88172645463325252ull;
  const auto start = Clock::now();
  for (long i = 0; i < calls; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    CUdeviceptr& p = live[x % live.size()];
    if (p != 0) {
      cu.free(p);
      p = 0;
    } else if (cu.alloc(&p, 512u * static_cast<unsigned>((x >> 12) % 128 + 1)) != CUDA_SUCCESS) {
      return 1;
    }
  }
  gpumem::bench::print_elapsed_ns(start);
  return 0;
}

// --- running children -------------------------------------------------------------------------
using gpumem::bench::Child;

// Runs argv with this environment (less its preload, library path and tool settings) plus
// extra_env; the child's stderr is discarded (heaptrack's chatter).
Child spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
            bool capture) {
  auto env = gpumem::bench::environment_without(
      {"LD_PRELOAD=", "LD_LIBRARY_PATH=", "GPUMEM_", "SIMCUDA_"});
  env.insert(env.end(), extra_env.begin(), extra_env.end());
  return gpumem::bench::spawn(argv, env, {.capture_stdout = capture, .quiet_stderr = true});
}

std::vector<std::string> simcuda_env() {
  std::vector<std::string> env;
  gpumem::bench::add_simcuda(env);
  return env;
}

void remove_prefix(const std::string& prefix) {
  std::system(("rm -f '" + prefix + "'*").c_str());
}

struct Run {
  std::vector<std::string> argv, env;
  std::string cleanup;  // files to remove after each run (the tool's trace)
};

// Runs the baseline and the measured program once per iteration (so both see the same machine
// state) and returns the best (minimum) self-timed ns of each; {-1, -1} on failure.
std::pair<double, double> best_pair(benchmark::State& state, const Run& base, const Run& measured) {
  double best[2] = {1e300, 1e300};
  for (auto _ : state) {
    int i = 0;
    for (const Run* r : {&base, &measured}) {
      Child c = spawn(r->argv, r->env, true);
      if (!r->cleanup.empty()) remove_prefix(r->cleanup);
      if (!c.ok || c.printed <= 0) {
        state.SkipWithError(
            ("worker failed: " + r->argv[0] + " " + (r->argv.size() > 1 ? r->argv[1] : ""))
                .c_str());
        return {-1, -1};
      }
      if (i == 1) state.SetIterationTime(c.printed * 1e-9);
      best[i] = std::min(best[i], c.printed);
      ++i;
    }
  }
  return {best[0], best[1]};
}

// --- benchmarks -------------------------------------------------------------------------------
void BM_CaptureOverhead(benchmark::State& state) {
  const long pairs = static_cast<long>(events_wanted(200000) / 2);
  const double events = 2.0 * static_cast<double>(pairs);
  const std::string n = std::to_string(pairs);
  const std::string trace = g_tmp + "/gpumem-bench-vs-" + std::to_string(getpid());
  std::pair<double, double> t;
  if (state.range(0) == 0) {  // heaptrack on malloc/free
    t = best_pair(
        state, {{g_self, "--host-worker", n}, {}, ""},
        {{"heaptrack", "-o", trace + "-ht", g_self, "--host-worker", n}, {}, trace + "-ht"});
  } else {  // libgpumem.so on cuMemAlloc_v2/cuMemFree_v2
    // No simulated device latency (35 µs per call by default): the tool's cost per event is a
    // few hundred ns, lost in the noise of 70 µs of sleeping per pair.
    auto env = simcuda_env();
    env.push_back("SIMCUDA_ALLOC_LATENCY_US=0");
    env.push_back("SIMCUDA_FREE_LATENCY_US=0");
    Run plain_run{{g_self, "--cuda-worker", n}, env, ""};
    gpumem::bench::add_preload(env);
    env.push_back("GPUMEM_TRACE=" + trace + "-gm.trace");
    if (state.range(0) == 2) env.push_back("GPUMEM_STACKS=1");
    if (state.range(0) == 3) env.push_back("GPUMEM_TRACE_FORMAT=compact");
    t = best_pair(state, plain_run, {{g_self, "--cuda-worker", n}, env, trace + "-gm"});
  }
  const double plain = t.first, tool = t.second;
  if (plain <= 0 || tool <= 0) return;
  state.counters["plain_ns_per_event"] = plain / events;
  state.counters["tool_ns_per_event"] = tool / events;
  state.counters["overhead_ns_per_event"] = (tool - plain) / events;
}
BENCHMARK(BM_CaptureOverhead)
    ->ArgName("heaptrack_gpumem_stacks")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Arg(3)  // compact format
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

void BM_PolicyThroughPreload(benchmark::State& state) {
  const long pairs = static_cast<long>(events_wanted(200000) / 200);  // 20 us per raw call
  auto env = simcuda_env();
  env.push_back("SIMCUDA_ALLOC_LATENCY_US=20");
  env.push_back("SIMCUDA_FREE_LATENCY_US=20");
  const std::string n = std::to_string(pairs);
  Run raw_run{{g_self, "--cuda-worker", n}, env, ""};
  gpumem::bench::add_preload(env);
  env.push_back("GPUMEM_TRACE=off");
  env.push_back("GPUMEM_POOL=growth");
  const auto [raw, pooled] = best_pair(state, raw_run, {{g_self, "--cuda-worker", n}, env, ""});
  if (raw <= 0 || pooled <= 0) return;
  state.counters["raw_ns_per_pair"] = raw / static_cast<double>(pairs);
  state.counters["pool_ns_per_pair"] = pooled / static_cast<double>(pairs);
  state.counters["x_raw"] = raw / pooled;
}
BENCHMARK(BM_PolicyThroughPreload)->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);

// A gpumem trace of `pairs` alloc/free pairs (4096 live slots, addresses reused), as the preload
// lays them out, written with the real writer (in the compact format when asked).
bool write_gpumem_trace(const std::string& path, uint64_t pairs, bool compact = false) {
  gpumem::TraceWriter w;
  if (compact) w.set_format(gpumem::TraceWriter::Format::compact);
  gpumem::trace::Header h{};
  char err[512];
  if (!w.open(path.c_str(), h, err, sizeof err)) return std::fprintf(stderr, "%s\n", err), false;
  for (uint64_t i = 0; i < pairs; ++i) {
    gpumem::trace::Record r{};
    r.op = static_cast<uint16_t>(gpumem::trace::Op::alloc);
    r.api = static_cast<uint16_t>(gpumem::trace::Api::cuMemAlloc);
    r.address = 0x7f0000000000ull + (i % 4096) * (1 << 20);
    r.bytes = 256 * (i % 16 + 1);
    r.t_ns = 1'000'000'000ull + i * 100;
    w.append(r);
    r.op = static_cast<uint16_t>(gpumem::trace::Op::free);
    r.api = static_cast<uint16_t>(gpumem::trace::Api::cuMemFree);
    r.t_ns += 50;
    w.append(r);
  }
  w.close();
  // On disk before it is read: otherwise the kernel writes the fresh trace back while the
  // analyzer runs, taking CPU from its two threads (heaptrack_print's input is a few kilobytes).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) ::fdatasync(fd), ::close(fd);
  return true;
}

// Writes the trace in a child process. The writer's shared mapping puts the whole trace in the
// writer's resident set, and Linux carries a process's peak RSS into the children it forks and
// execs (ru_maxrss), so writing it here would make every program this benchmark spawns afterwards
// look as big as the trace.
bool write_gpumem_trace_elsewhere(const std::string& path, uint64_t pairs, bool compact = false) {
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) ::_exit(write_gpumem_trace(path, pairs, compact) ? 0 : 1);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

off_t file_size(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

void analyzer_vs_heaptrack_print(benchmark::State& state, bool compact) {
  const uint64_t pairs = events_wanted(static_cast<uint64_t>(state.range(0))) / 2;
  const double events = 2.0 * static_cast<double>(pairs);
  const std::string base = g_tmp + "/gpumem-bench-analyze-" + std::to_string(getpid());
  const std::string gm_trace = base + ".trace", ht_trace = base + "-ht";
  if (!write_gpumem_trace_elsewhere(gm_trace, pairs, compact))
    return state.SkipWithError("cannot write the gpumem trace");
  Child rec = spawn({"heaptrack", "-o", ht_trace, g_self, "--host-worker", std::to_string(pairs)},
                    {}, false);
  std::string ht_file = ht_trace + ".zst";
  if (file_size(ht_file) == 0) ht_file = ht_trace + ".gz";
  if (!rec.ok || file_size(ht_file) == 0) {
    remove_prefix(base);
    return state.SkipWithError("heaptrack did not write a trace (is heaptrack installed?)");
  }
  double gm_best = 1e300, ht_best = 1e300, gm_rss = 0, ht_rss = 0;
  for (auto _ : state) {
    Child gm = spawn({GPUMEM_CLI, "report", gm_trace, "--json", "/dev/null"}, {}, false);
    Child ht = spawn({"heaptrack_print", "-f", ht_file}, {}, false);
    if (!gm.ok || !ht.ok) {
      state.SkipWithError(!gm.ok ? "gpumem report failed" : "heaptrack_print failed");
      break;
    }
    state.SetIterationTime(gm.wall_ns * 1e-9);
    gm_best = std::min(gm_best, gm.wall_ns);
    ht_best = std::min(ht_best, ht.wall_ns);
    gm_rss = std::max(gm_rss, gm.max_rss_kib);
    ht_rss = std::max(ht_rss, ht.max_rss_kib);
  }
  state.counters["gpumem_events_per_s"] = events / (gm_best * 1e-9);
  state.counters["heaptrack_print_events_per_s"] = events / (ht_best * 1e-9);
  state.counters["gpumem_peak_rss_mib"] = gm_rss / 1024;
  state.counters["heaptrack_print_peak_rss_mib"] = ht_rss / 1024;
  state.counters["gpumem_trace_bytes_per_event"] =
      static_cast<double>(file_size(gm_trace)) / events;
  state.counters["heaptrack_trace_bytes_per_event"] =
      static_cast<double>(file_size(ht_file)) / events;
  state.counters["events"] = events;
  remove_prefix(base);
}

void BM_AnalyzerVsHeaptrackPrint(benchmark::State& state) { analyzer_vs_heaptrack_print(state, false); }
// Best of 5 for each side: a run of either takes about a second or less, and on a shared machine
// single runs swing by 2x. Two sizes: at 2M events heaptrack_print's start-up (~56 ms, its KDE
// and Boost libraries) is a third of its time; at 10M both are close to their per-event speed.
void best_of_5_at_two_sizes(benchmark::internal::Benchmark* b) {
  b->ArgName("events")
      ->Arg(2'000'000)
      ->Arg(10'000'000)
      ->UseManualTime()
      ->Iterations(5)
      ->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_AnalyzerVsHeaptrackPrint)->Apply(best_of_5_at_two_sizes);

// The same on a compact trace (version 2): the analyzer decodes chunks instead of reading records.
void BM_AnalyzerVsHeaptrackPrintCompact(benchmark::State& state) {
  analyzer_vs_heaptrack_print(state, true);
}
BENCHMARK(BM_AnalyzerVsHeaptrackPrintCompact)->Apply(best_of_5_at_two_sizes);

// `gpumem report --json` on a pooled trace: cuda_pool_worker's calls under libgpumem.so with
// GPUMEM_POOL=growth, or expandable (state.range(1) = 1: granules mapped into one range, each a
// joining segment), written by the real writer (segments reserved, allocations inside them,
// free extents tracked for fragmentation); heaptrack_print on heaptrack's trace of the same number
// of malloc/free calls.
void BM_AnalyzerVsHeaptrackPrintPooled(benchmark::State& state) {
  const uint64_t pairs = events_wanted(static_cast<uint64_t>(state.range(0))) / 2;
  const bool expandable = state.range(1) != 0;
  const double events = 2.0 * static_cast<double>(pairs);
  const std::string base = g_tmp + "/gpumem-bench-pooled-" + std::to_string(getpid());
  const std::string gm_trace = base + ".trace", ht_trace = base + "-ht";
  auto env = simcuda_env();
  gpumem::bench::add_preload(env);
  env.push_back("GPUMEM_TRACE=" + gm_trace);
  env.push_back(expandable ? "GPUMEM_POOL=expandable" : "GPUMEM_POOL=growth");
  Child wr = spawn({g_self, "--cuda-pool-worker", std::to_string(2 * pairs)}, env, false);
  Child rec = spawn({"heaptrack", "-o", ht_trace, g_self, "--host-worker", std::to_string(pairs)},
                    {}, false);
  std::string ht_file = ht_trace + ".zst";
  if (file_size(ht_file) == 0) ht_file = ht_trace + ".gz";
  if (!wr.ok || file_size(gm_trace) == 0 || !rec.ok || file_size(ht_file) == 0) {
    remove_prefix(base);
    return state.SkipWithError(!wr.ok || file_size(gm_trace) == 0
                                   ? "the pooled worker did not write a gpumem trace"
                                   : "heaptrack did not write a trace (is heaptrack installed?)");
  }
  // On disk before it is read (see write_gpumem_trace).
  const int fd = ::open(gm_trace.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) ::fdatasync(fd), ::close(fd);
  double gm_best = 1e300, ht_best = 1e300;
  for (auto _ : state) {
    Child gm = spawn({GPUMEM_CLI, "report", gm_trace, "--json", "/dev/null"}, {}, false);
    Child ht = spawn({"heaptrack_print", "-f", ht_file}, {}, false);
    if (!gm.ok || !ht.ok) {
      state.SkipWithError(!gm.ok ? "gpumem report failed" : "heaptrack_print failed");
      break;
    }
    state.SetIterationTime(gm.wall_ns * 1e-9);
    gm_best = std::min(gm_best, gm.wall_ns);
    ht_best = std::min(ht_best, ht.wall_ns);
  }
  state.counters["gpumem_events_per_s"] = events / (gm_best * 1e-9);
  state.counters["heaptrack_print_events_per_s"] = events / (ht_best * 1e-9);
  state.counters["events"] = events;
  remove_prefix(base);
}
BENCHMARK(BM_AnalyzerVsHeaptrackPrintPooled)
    ->ArgNames({"events", "expandable"})
    ->Args({10'000'000, 0})
    ->Args({10'000'000, 1})
    ->UseManualTime()
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond);

// Peak memory of `gpumem report` on a large trace (bench/run --long: 100M events, 6.4 GB file).
void BM_AnalyzerPeakMemory(benchmark::State& state) {
  const char* v = std::getenv("GPUMEM_BENCH_BIG_EVENTS");
  const uint64_t pairs = (v != nullptr ? std::strtoull(v, nullptr, 10) : 4'000'000) / 2;
  const std::string trace = g_tmp + "/gpumem-bench-big-" + std::to_string(getpid()) + ".trace";
  if (!write_gpumem_trace_elsewhere(trace, pairs))
    return state.SkipWithError("cannot write the trace");
  double rss = 0, wall = 0;
  for (auto _ : state) {
    Child gm = spawn({GPUMEM_CLI, "report", trace, "--json", "/dev/null"}, {}, false);
    if (!gm.ok) {
      state.SkipWithError("gpumem report failed");
      break;
    }
    state.SetIterationTime(gm.wall_ns * 1e-9);
    rss = gm.max_rss_kib;
    wall = gm.wall_ns;
  }
  state.counters["events"] = 2.0 * static_cast<double>(pairs);
  state.counters["peak_rss_mib"] = rss / 1024;
  state.counters["events_per_s"] = 2.0 * static_cast<double>(pairs) / (wall * 1e-9);
  ::unlink(trace.c_str());
}
BENCHMARK(BM_AnalyzerPeakMemory)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--host-worker") == 0)
    return host_worker(std::atol(argv[2]));
  if (argc == 3 && std::strcmp(argv[1], "--cuda-worker") == 0)
    return cuda_worker(std::atol(argv[2]));
  if (argc == 3 && std::strcmp(argv[1], "--cuda-pool-worker") == 0)
    return cuda_pool_worker(std::atol(argv[2]));
  if (argc == 5 && std::strcmp(argv[1], "--write-trace") == 0)  // to profile `gpumem report` on it
    return write_gpumem_trace(argv[2], std::strtoull(argv[3], nullptr, 10) / 2,
                              std::strcmp(argv[4], "compact") == 0) ? 0 : 1;
  g_self = gpumem::bench::self_path();
  if (g_self.empty()) return 1;
  const char* tmp = std::getenv("TMPDIR");
  g_tmp = tmp != nullptr ? tmp : "/tmp";
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
