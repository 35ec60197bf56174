// gpumem against heaptrack on the same number of calls, all measured in one run (bench/run turns
// the counters into the budget table; docs/performance.md).
//
//   BM_CaptureOverhead/<mode>   ns per recorded event over the same loop without any tool:
//                               host   malloc/free pairs, plain and under `heaptrack -o FILE`
//                               cuda   cuMemAlloc_v2/cuMemFree_v2 pairs on simcuda, plain, under
//                                      libgpumem.so, and with GPUMEM_STACKS=1
//   BM_PolicyThroughPreload     cuMemAlloc_v2/cuMemFree_v2 pairs on simcuda with 20 us device
//                               latency, without the preload and with GPUMEM_POOL=growth
//   BM_AnalyzerVsHeaptrackPrint events per second of `gpumem report --json` on a generated trace
//                               and of `heaptrack_print` on heaptrack's trace of a loop making
//                               the same number of calls; peak RSS of each; trace bytes per event
//
// Workers (this program re-executed) time their own loop, so process start, tool start-up and
// CUDA initialisation are not counted; each figure is the best of the benchmark's iterations.
// GPUMEM_BENCH_EVENTS overrides the event count (bench/run --smoke uses a small one).
#include <benchmark/benchmark.h>
#include <cuda.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "trace_writer.h"

extern char** environ;

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
  std::printf("%lld\n", static_cast<long long>(std::chrono::nanoseconds(Clock::now() - start).count()));
  return 0;
}

int cuda_worker(long pairs) {
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return std::fprintf(stderr, "bench_vs_heaptrack: %s\n", dlerror()), 1;
#define BIND(name) auto name = reinterpret_cast<decltype(&::name)>(dlsym(h, #name))
  BIND(cuInit);
  BIND(cuDeviceGet);
  BIND(cuDevicePrimaryCtxRetain);
  BIND(cuCtxSetCurrent);
  BIND(cuMemAlloc_v2);
  BIND(cuMemFree_v2);
#undef BIND
  CUdevice dev;
  CUcontext ctx;
  if (!cuInit || !cuMemAlloc_v2 || !cuMemFree_v2 || cuInit(0) != CUDA_SUCCESS || cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
      cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS || cuCtxSetCurrent(ctx) != CUDA_SUCCESS)
    return 1;
  CUdeviceptr warm;
  cuMemAlloc_v2(&warm, 256);  // trace creation, pool set-up: not measured
  cuMemFree_v2(warm);
  const auto start = Clock::now();
  for (long i = 0; i < pairs; ++i) {
    CUdeviceptr p = 0;
    if (cuMemAlloc_v2(&p, 256u * static_cast<unsigned>(i % 16 + 1)) != CUDA_SUCCESS) return 1;
    cuMemFree_v2(p);
  }
  std::printf("%lld\n", static_cast<long long>(std::chrono::nanoseconds(Clock::now() - start).count()));
  return 0;
}

// --- running children -------------------------------------------------------------------------
struct Child {
  bool ok = false;
  double printed = 0;     // the number the worker printed (its own timing)
  double wall_ns = 0;     // wall time of the whole process
  double max_rss_kib = 0;
};

Child spawn(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env, bool capture) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0 && std::strncmp(*e, "LD_LIBRARY_PATH=", 16) != 0 &&
        std::strncmp(*e, "GPUMEM_", 7) != 0 && std::strncmp(*e, "SIMCUDA_", 8) != 0)
      env.emplace_back(*e);
  for (const auto& kv : extra_env) env.push_back(kv);
  std::vector<char*> a, e;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  for (auto& s : env) e.push_back(s.data());
  e.push_back(nullptr);
  int fds[2];
  if (pipe(fds) != 0) return {};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (capture) posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  else posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  pid_t pid;
  const auto start = Clock::now();
  const int rc = posix_spawnp(&pid, a[0], &fa, nullptr, a.data(), e.data());
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  Child c;
  if (rc != 0) return close(fds[0]), c;
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  c.wall_ns = static_cast<double>(std::chrono::nanoseconds(Clock::now() - start).count());
  c.max_rss_kib = static_cast<double>(ru.ru_maxrss);
  c.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  // The worker's figure is the one line made only of digits (heaptrack prints its own lines).
  size_t pos = 0;
  while (pos < out.size()) {
    const size_t end = std::min(out.find('\n', pos), out.size());
    const std::string line = out.substr(pos, end - pos);
    if (!line.empty() && line.find_first_not_of("0123456789") == std::string::npos)
      c.printed = std::strtod(line.c_str(), nullptr);
    pos = end + 1;
  }
  return c;
}

std::vector<std::string> simcuda_env() {
#ifdef GPUMEM_SIMCUDA_DIR
  return {std::string("LD_LIBRARY_PATH=") + GPUMEM_SIMCUDA_DIR};
#else
  return {};
#endif
}

std::string preload_env() {
#ifdef GPUMEM_PRELOAD_PATH
  return std::string("LD_PRELOAD=") + GPUMEM_PRELOAD_PATH;
#else
  return "";
#endif
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
        state.SkipWithError(("worker failed: " + r->argv[0] + " " + (r->argv.size() > 1 ? r->argv[1] : "")).c_str());
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
    t = best_pair(state, {{g_self, "--host-worker", n}, {}, ""},
                  {{"heaptrack", "-o", trace + "-ht", g_self, "--host-worker", n}, {}, trace + "-ht"});
  } else {  // libgpumem.so on cuMemAlloc_v2/cuMemFree_v2
    auto env = simcuda_env();
    Run plain_run{{g_self, "--cuda-worker", n}, env, ""};
    env.push_back(preload_env());
    env.push_back("GPUMEM_TRACE=" + trace + "-gm.trace");
    if (state.range(0) == 2) env.push_back("GPUMEM_STACKS=1");
    t = best_pair(state, plain_run, {{g_self, "--cuda-worker", n}, env, trace + "-gm"});
  }
  const double plain = t.first, tool = t.second;
  if (plain <= 0 || tool <= 0) return;
  state.counters["plain_ns_per_event"] = plain / events;
  state.counters["tool_ns_per_event"] = tool / events;
  state.counters["overhead_ns_per_event"] = (tool - plain) / events;
}
BENCHMARK(BM_CaptureOverhead)->ArgName("heaptrack_gpumem_stacks")->Arg(0)->Arg(1)->Arg(2)
    ->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);

void BM_PolicyThroughPreload(benchmark::State& state) {
  const long pairs = static_cast<long>(events_wanted(200000) / 200);  // 20 us per raw call
  auto env = simcuda_env();
  env.push_back("SIMCUDA_ALLOC_LATENCY_US=20");
  env.push_back("SIMCUDA_FREE_LATENCY_US=20");
  const std::string n = std::to_string(pairs);
  Run raw_run{{g_self, "--cuda-worker", n}, env, ""};
  env.push_back(preload_env());
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
// lays them out, written with the real writer.
bool write_gpumem_trace(const std::string& path, uint64_t pairs) {
  gpumem::TraceWriter w;
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
  return true;
}

off_t file_size(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

void BM_AnalyzerVsHeaptrackPrint(benchmark::State& state) {
  const uint64_t pairs = events_wanted(2'000'000) / 2;
  const double events = 2.0 * static_cast<double>(pairs);
  const std::string base = g_tmp + "/gpumem-bench-analyze-" + std::to_string(getpid());
  const std::string gm_trace = base + ".trace", ht_trace = base + "-ht";
  if (!write_gpumem_trace(gm_trace, pairs)) return state.SkipWithError("cannot write the gpumem trace");
  Child rec = spawn({"heaptrack", "-o", ht_trace, g_self, "--host-worker", std::to_string(pairs)}, {}, false);
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
  state.counters["gpumem_trace_bytes_per_event"] = static_cast<double>(file_size(gm_trace)) / events;
  state.counters["heaptrack_trace_bytes_per_event"] = static_cast<double>(file_size(ht_file)) / events;
  state.counters["events"] = events;
  remove_prefix(base);
}
BENCHMARK(BM_AnalyzerVsHeaptrackPrint)->UseManualTime()->Iterations(2)->Unit(benchmark::kMillisecond);

// Peak memory of `gpumem report` on a large trace (bench/run --long: 100M events, 6.4 GB file).
void BM_AnalyzerPeakMemory(benchmark::State& state) {
  const char* v = std::getenv("GPUMEM_BENCH_BIG_EVENTS");
  const uint64_t pairs = (v != nullptr ? std::strtoull(v, nullptr, 10) : 4'000'000) / 2;
  const std::string trace = g_tmp + "/gpumem-bench-big-" + std::to_string(getpid()) + ".trace";
  if (!write_gpumem_trace(trace, pairs)) return state.SkipWithError("cannot write the trace");
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
  if (argc == 3 && std::strcmp(argv[1], "--host-worker") == 0) return host_worker(std::atol(argv[2]));
  if (argc == 3 && std::strcmp(argv[1], "--cuda-worker") == 0) return cuda_worker(std::atol(argv[2]));
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 1;
  self[n] = '\0';
  g_self = self;
  const char* tmp = std::getenv("TMPDIR");
  g_tmp = tmp != nullptr ? tmp : "/tmp";
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
