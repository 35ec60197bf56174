// The alloc+free pair through each policy of the preload library against the raw simulated
// calls, all with SIMCUDA_ALLOC_LATENCY_US=20 SIMCUDA_FREE_LATENCY_US=20 (a realistic
// cudaMalloc/cudaFree cost), in one run (issue 4's benchmark; results in docs/policies.md).
//
// Each benchmark iteration re-executes this program as `--worker PAIRS` under the policy's
// environment; the worker reaches the driver through dlopen + dlsym (as TensorFlow does), warms
// up (segments, trace file), times PAIRS cuMemAlloc_v2 + cuMemFree_v2 pairs of sizes cycling
// 512 B .. 24 MiB, and prints the nanoseconds. Process start and CUDA initialisation don't count.
#include <benchmark/benchmark.h>
#include <cuda.h>
#include <dlfcn.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace {

constexpr size_t kSizes[] = {512,     4096,          65536,         262144,
                             1 << 20, 3 * (1 << 20), 6 * (1 << 20), 24 * (1 << 20)};
constexpr int kSizeCount = sizeof kSizes / sizeof kSizes[0];

int worker(int pairs) {
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return std::fprintf(stderr, "bench_preload_policy: %s\n", dlerror()), 1;
#define BIND(name) auto name = reinterpret_cast<decltype(&::name)>(dlsym(h, #name))
  BIND(cuInit);
  BIND(cuDeviceGet);
  BIND(cuDevicePrimaryCtxRetain);
  BIND(cuCtxSetCurrent);
  BIND(cuMemAlloc_v2);
  BIND(cuMemFree_v2);
#undef BIND
  if (!cuInit || !cuDeviceGet || !cuDevicePrimaryCtxRetain || !cuCtxSetCurrent || !cuMemAlloc_v2 ||
      !cuMemFree_v2 || cuInit(0) != CUDA_SUCCESS)
    return 1;
  CUdevice dev;
  CUcontext ctx;
  if (cuDeviceGet(&dev, 0) != CUDA_SUCCESS || cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS ||
      cuCtxSetCurrent(ctx) != CUDA_SUCCESS)
    return 1;
  for (size_t bytes : kSizes) {  // first-use costs (segments, trace file) are not measured
    CUdeviceptr p = 0;
    if (cuMemAlloc_v2(&p, bytes) != CUDA_SUCCESS) return 1;
    cuMemFree_v2(p);
  }
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < pairs; ++i) {
    CUdeviceptr p = 0;
    if (cuMemAlloc_v2(&p, kSizes[i % kSizeCount]) != CUDA_SUCCESS) return 1;
    cuMemFree_v2(p);
  }
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now() - start);
  std::printf("%lld\n", static_cast<long long>(ns.count()));
  return 0;
}

struct Mode {
  const char* name;
  bool preload;
  std::vector<const char*> env;
  int pairs;  // fewer for the modes that pay 40 µs per pair
};
const Mode kModes[] = {
    {"raw", false, {}, 1000},
    {"none", true, {}, 1000},
    {"limit", true, {"GPUMEM_LIMIT=8GiB"}, 1000},
    {"growth", true, {"GPUMEM_POOL=growth"}, 200000},
    {"growth_limit", true, {"GPUMEM_POOL=growth", "GPUMEM_LIMIT=8GiB"}, 200000},
    {"fixed", true, {"GPUMEM_POOL=fixed", "GPUMEM_POOL_SIZE=1GiB"}, 200000},
};
constexpr int kModeCount = sizeof kModes / sizeof kModes[0];
std::string g_self;
double g_median_ns[kModeCount] = {};

double run_worker(const Mode& mode) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0 && std::strncmp(*e, "LD_LIBRARY_PATH=", 16) != 0 &&
        std::strncmp(*e, "GPUMEM_", 7) != 0 && std::strncmp(*e, "SIMCUDA_", 8) != 0)
      env.emplace_back(*e);
#ifdef GPUMEM_SIMCUDA_DIR
  env.push_back(std::string("LD_LIBRARY_PATH=") + GPUMEM_SIMCUDA_DIR);
#endif
#ifdef GPUMEM_PRELOAD_PATH
  if (mode.preload) env.push_back(std::string("LD_PRELOAD=") + GPUMEM_PRELOAD_PATH);
#endif
  env.push_back("SIMCUDA_ALLOC_LATENCY_US=20");
  env.push_back("SIMCUDA_FREE_LATENCY_US=20");
  env.push_back("GPUMEM_TRACE=off");  // the policy's cost, not the trace's (see bench_capture)
  for (const char* kv : mode.env) env.emplace_back(kv);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string pairs = std::to_string(mode.pairs);
  char* argv[] = {g_self.data(), const_cast<char*>("--worker"), const_cast<char*>(pairs.c_str()),
                  nullptr};
  int fds[2];
  if (pipe(fds) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  pid_t pid;
  const int rc = posix_spawn(&pid, g_self.c_str(), &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) return close(fds[0]), -1;
  char buf[64] = {};
  const ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (n <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return std::strtod(buf, nullptr);
}

void BM_PreloadPolicy(benchmark::State& state) {
  const Mode& mode = kModes[state.range(0)];
  state.SetLabel(mode.name);
  std::vector<double> per_pair;
  for (auto _ : state) {
    const double ns = run_worker(mode);
    if (ns < 0) {
      state.SkipWithError("the worker failed (is simcuda built? see bench_preload_policy.cmake)");
      return;
    }
    state.SetIterationTime(ns * 1e-9 / mode.pairs);  // reported time = one pair
    per_pair.push_back(ns / mode.pairs);
  }
  std::sort(per_pair.begin(), per_pair.end());
  g_median_ns[state.range(0)] = per_pair[per_pair.size() / 2];
  state.counters["median_ns_per_pair"] = g_median_ns[state.range(0)];
}
BENCHMARK(BM_PreloadPolicy)
    ->DenseRange(0, kModeCount - 1)
    ->ArgName("mode")
    ->UseManualTime()
    ->Iterations(5)
    ->Unit(benchmark::kNanosecond);

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--worker") == 0) return worker(std::atoi(argv[2]));
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 1;
  self[n] = '\0';
  g_self = self;
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  const double raw = g_median_ns[0];
  if (raw > 0) {
    std::printf("\nalloc+free pair, median of 5 runs, SIMCUDA_{ALLOC,FREE}_LATENCY_US=20:\n");
    for (int m = 0; m < kModeCount; ++m)
      if (g_median_ns[m] > 0)
        std::printf("  %-13s %12.0f ns/pair  x_raw %8.1f\n", kModes[m].name, g_median_ns[m],
                    raw / g_median_ns[m]);
  }
  return 0;
}
