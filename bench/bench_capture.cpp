// The cost of capture: the same driver-level program (cuMemAlloc_v2 + cuMemFree_v2 pairs on
// simcuda, the driver reached through dlopen + dlsym as TensorFlow and JAX do) run three ways in
// one run — without the preload, with libgpumem.so, and with GPUMEM_STACKS=1 — and the cost per
// recorded event (one alloc or free record) over the plain run.
//
// Each benchmark iteration re-executes this program as `--worker N`, which times N pairs itself
// (process start and CUDA initialisation are not counted) and prints the nanoseconds.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "bench_util.h"

namespace {

constexpr int kPairs = 20000;

int worker(int pairs) {
  gpumem::bench::DriverCalls cu;
  if (!gpumem::bench::open_driver("bench_capture", &cu)) return 1;
  CUdeviceptr warm;
  cu.alloc(&warm, 256);  // first-use costs (trace file creation, device info) not measured
  cu.free(warm);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < pairs; ++i) {
    CUdeviceptr p = 0;
    if (cu.alloc(&p, 256u * static_cast<unsigned>(i % 16 + 1)) != CUDA_SUCCESS) return 1;
    cu.free(p);
  }
  gpumem::bench::print_elapsed_ns(start);
  return 0;
}

enum class Mode { plain, preload, stacks };
std::string g_self;
std::map<Mode, double> g_ns_per_event;  // best (minimum) seen per mode

// Runs one worker; returns its measured nanoseconds, or -1.
double run_worker(Mode mode) {
  auto env = gpumem::bench::environment_without({"LD_PRELOAD=", "LD_LIBRARY_PATH=", "GPUMEM_"});
  gpumem::bench::add_simcuda(env);
  if (mode != Mode::plain) gpumem::bench::add_preload(env);
  env.push_back("GPUMEM_TRACE=/tmp/gpumem-bench-capture-%p.trace");
  if (mode == Mode::stacks) env.push_back("GPUMEM_STACKS=1");
  const auto c = gpumem::bench::spawn({g_self, "--worker", std::to_string(kPairs)}, env);
  const std::string trace = "/tmp/gpumem-bench-capture-" + std::to_string(c.pid) + ".trace";
  unlink(trace.c_str());
  if (!c.ok || c.printed <= 0) return -1;
  return c.printed;
}

void BM_Capture(benchmark::State& state) {
  const auto mode = static_cast<Mode>(state.range(0));
  double best = 1e300;
  for (auto _ : state) {
    const double ns = run_worker(mode);
    if (ns < 0) {
      state.SkipWithError("the worker failed (is simcuda built? see bench_capture.cmake)");
      return;
    }
    state.SetIterationTime(ns * 1e-9);
    if (ns < best) best = ns;
  }
  const double events = 2.0 * kPairs;  // one alloc and one free record per pair
  state.counters["ns_per_event"] = best / events;
  g_ns_per_event[mode] = best / events;
}
BENCHMARK(BM_Capture)
    ->Arg(0)
    ->ArgName("plain")
    ->UseManualTime()
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Capture)
    ->Arg(1)
    ->ArgName("preload")
    ->UseManualTime()
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Capture)
    ->Arg(2)
    ->ArgName("stacks")
    ->UseManualTime()
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  return gpumem::bench::bench_main(argc, argv, worker, &g_self, [] {
    if (g_ns_per_event.size() == 3) {
      const double plain = g_ns_per_event[Mode::plain];
      std::printf("\ncost per recorded event (best of 5, %d alloc+free pairs, simcuda):\n", kPairs);
      std::printf("  without preload      %8.1f ns/event\n", plain);
      std::printf("  libgpumem.so         %8.1f ns/event  (+%.1f ns, x%.2f)\n",
                  g_ns_per_event[Mode::preload], g_ns_per_event[Mode::preload] - plain,
                  g_ns_per_event[Mode::preload] / plain);
      std::printf("  + GPUMEM_STACKS=1    %8.1f ns/event  (+%.1f ns, x%.2f)\n",
                  g_ns_per_event[Mode::stacks], g_ns_per_event[Mode::stacks] - plain,
                  g_ns_per_event[Mode::stacks] / plain);
    }
  });
}
