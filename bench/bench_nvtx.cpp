// The cost of NVTX ranges under gpumem: the same loop of nvtxRangePushA + nvtxRangePop pairs run
// without an injection (NVTX's no-op), with libgpumem.so as the injection (NVTX_INJECTION64_PATH),
// and, as the yardstick of one trace record, gpumem_mark_begin + gpumem_mark_end pairs under the
// preload (the same two phase records, written by gpumem's own C API).
//
// Each benchmark iteration re-executes this program as `--worker N` (bench_util.h), which times
// N pairs itself, after one warm-up pair that opens the trace.
#include <benchmark/benchmark.h>
#include <nvtx3/nvToolsExt.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "bench_util.h"
#include "gpumem/gpumem.h"

namespace {

constexpr int kPairs = 200000;
enum class Mode { plain, nvtx, marks };

int worker(int pairs) {
  const bool marks = std::getenv("BENCH_NVTX_MARKS") != nullptr;
  if (marks) {
    gpumem_mark_begin("step");
    gpumem_mark_end();
  } else {
    nvtxRangePushA("step");
    nvtxRangePop();
  }
  const auto start = std::chrono::steady_clock::now();
  if (marks) {
    for (int i = 0; i < pairs; ++i) {
      gpumem_mark_begin("step");
      gpumem_mark_end();
    }
  } else {
    for (int i = 0; i < pairs; ++i) {
      nvtxRangePushA("step");
      nvtxRangePop();
    }
  }
  gpumem::bench::print_elapsed_ns(start);
  return 0;
}

std::string g_self;
std::map<Mode, double> g_ns_per_pair;  // best (minimum) seen per mode

double run_worker(Mode mode) {
  auto env = gpumem::bench::environment_without({"LD_PRELOAD=", "GPUMEM_", "NVTX_"});
  if (mode != Mode::plain) gpumem::bench::add_preload(env);
  if (mode == Mode::nvtx)
    env.push_back(std::string("NVTX_INJECTION64_PATH=") + GPUMEM_PRELOAD_PATH);
  if (mode == Mode::marks) env.push_back("BENCH_NVTX_MARKS=1");
  env.push_back("GPUMEM_TRACE=/tmp/gpumem-bench-nvtx-%p.trace");
  const char* pairs = std::getenv("GPUMEM_BENCH_EVENTS");
  const int n = pairs != nullptr ? std::max(1, std::atoi(pairs) / 2) : kPairs;
  const auto c = gpumem::bench::spawn({g_self, "--worker", std::to_string(n)}, env);
  const std::string trace = "/tmp/gpumem-bench-nvtx-" + std::to_string(c.pid) + ".trace";
  unlink(trace.c_str());
  if (!c.ok || c.printed <= 0) return -1;
  return c.printed / n;
}

void BM_NvtxPushPop(benchmark::State& state) {
  const auto mode = static_cast<Mode>(state.range(0));
  double best = 1e300;
  for (auto _ : state) {
    const double ns = run_worker(mode);
    if (ns < 0) {
      state.SkipWithError("the worker failed (is libgpumem.so built? see bench_nvtx.cmake)");
      return;
    }
    state.SetIterationTime(ns * 1e-9);
    best = std::min(best, ns);
  }
  state.counters["ns_per_pair"] = best;
  g_ns_per_pair[mode] = best;
}
BENCHMARK(BM_NvtxPushPop)->Arg(0)->ArgName("plain")->UseManualTime()->Iterations(5);
BENCHMARK(BM_NvtxPushPop)->Arg(1)->ArgName("nvtx")->UseManualTime()->Iterations(5);
BENCHMARK(BM_NvtxPushPop)->Arg(2)->ArgName("marks")->UseManualTime()->Iterations(5);

}  // namespace

int main(int argc, char** argv) {
  return gpumem::bench::bench_main(argc, argv, worker, &g_self, [] {
    if (g_ns_per_pair.size() != 3) return;
    const double plain = g_ns_per_pair[Mode::plain];
    std::printf("\nNVTX push+pop pair (best of 5):\n");
    std::printf("  no injection            %8.1f ns/pair\n", plain);
    std::printf("  libgpumem.so injection  %8.1f ns/pair  (x%.1f)\n", g_ns_per_pair[Mode::nvtx],
                g_ns_per_pair[Mode::nvtx] / plain);
    std::printf("  gpumem_mark_begin+end   %8.1f ns/pair  (two trace records)\n",
                g_ns_per_pair[Mode::marks]);
  });
}
