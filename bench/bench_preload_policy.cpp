// The alloc+free pair through each policy of the preload library against the raw simulated
// calls, all with SIMCUDA_ALLOC_LATENCY_US=20 SIMCUDA_FREE_LATENCY_US=20 (a realistic
// cudaMalloc/cudaFree cost), in one run (issue 4's benchmark; results in docs/policies.md).
//
// Each benchmark iteration re-executes this program as `--worker PAIRS` under the policy's
// environment; the worker reaches the driver through dlopen + dlsym (as TensorFlow does), warms
// up (segments, trace file), times PAIRS cuMemAlloc_v2 + cuMemFree_v2 pairs of sizes cycling
// 512 B .. 24 MiB, and prints the nanoseconds. Process start and CUDA initialisation don't count.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"

namespace {

constexpr size_t kSizes[] = {512,     4096,          65536,         262144,
                             1 << 20, 3 * (1 << 20), 6 * (1 << 20), 24 * (1 << 20)};
constexpr int kSizeCount = sizeof kSizes / sizeof kSizes[0];

int worker(int pairs) {
  gpumem::bench::DriverCalls cu;
  if (!gpumem::bench::open_driver("bench_preload_policy", &cu)) return 1;
  for (size_t bytes : kSizes) {  // first-use costs (segments, trace file) are not measured
    CUdeviceptr p = 0;
    if (cu.alloc(&p, bytes) != CUDA_SUCCESS) return 1;
    cu.free(p);
  }
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < pairs; ++i) {
    CUdeviceptr p = 0;
    if (cu.alloc(&p, kSizes[i % kSizeCount]) != CUDA_SUCCESS) return 1;
    cu.free(p);
  }
  gpumem::bench::print_elapsed_ns(start);
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
    // Issue 19's goal: within 2x the growth pool's pair when no page is mapped or unmapped (the
    // warm-up maps what the cycle needs; freed pages stay mapped until the next mapping).
    {"expandable", true, {"GPUMEM_POOL=expandable"}, 200000},
};
constexpr int kModeCount = sizeof kModes / sizeof kModes[0];
std::string g_self;
double g_median_ns[kModeCount] = {};

double run_worker(const Mode& mode) {
  auto env = gpumem::bench::environment_without(
      {"LD_PRELOAD=", "LD_LIBRARY_PATH=", "GPUMEM_", "SIMCUDA_"});
  gpumem::bench::add_simcuda(env);
  if (mode.preload) gpumem::bench::add_preload(env);
  env.push_back("SIMCUDA_ALLOC_LATENCY_US=20");
  env.push_back("SIMCUDA_FREE_LATENCY_US=20");
  env.push_back("GPUMEM_TRACE=off");  // the policy's cost, not the trace's (see bench_capture)
  for (const char* kv : mode.env) env.emplace_back(kv);
  const auto c = gpumem::bench::spawn({g_self, "--worker", std::to_string(mode.pairs)}, env);
  if (!c.ok || c.printed <= 0) return -1;
  return c.printed;
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
  return gpumem::bench::bench_main(argc, argv, worker, &g_self, [] {
    const double raw = g_median_ns[0];
    if (raw > 0) {
      std::printf("\nalloc+free pair, median of 5 runs, SIMCUDA_{ALLOC,FREE}_LATENCY_US=20:\n");
      for (int m = 0; m < kModeCount; ++m)
        if (g_median_ns[m] > 0)
          std::printf("  %-13s %12.0f ns/pair  x_raw %8.1f\n", kModes[m].name, g_median_ns[m],
                      raw / g_median_ns[m]);
    }
  });
}
