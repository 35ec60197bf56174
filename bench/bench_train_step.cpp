// Time per training step of the bundled trainer (eager allocation, as PyTorch runs) under each
// pool of the preload, on the simulated device with its default cudaMalloc/cudaFree latency
// (35 µs a call, docs/simcuda.md): what a caching pool saves in time (issue 21). The baseline
// is the same trainer under GPUMEM_POOL=none in the same run, so every device allocation pays the
// latency; the pools pay it only when they grow.
//
// A small model with many steps (batch 16, four hidden layers of 64), so that allocation calls,
// not the host backend's arithmetic, are what a step waits for, as in eager training on a GPU
// where kernels are asynchronous. GPUMEM_BENCH_TRAIN_SAMPLES sets the samples per epoch
// (bench/run --smoke: 256).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_util.h"

namespace {

const char* const kPools[] = {"none", "growth", "expandable"};

std::string samples() {
  const char* v = std::getenv("GPUMEM_BENCH_TRAIN_SAMPLES");
  return v != nullptr && *v != '\0' ? v : "2048";
}

// The value of "key": in the trainer's JSON summary line, or a negative number when absent.
double json_number(const std::string& out, const std::string& key) {
  const size_t at = out.rfind("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::strtod(out.c_str() + at + key.size() + 3, nullptr);
}

void BM_TrainStep(benchmark::State& state) {
  const char* pool = kPools[state.range(0)];
  char dir[] = "/tmp/gpumem-bench-train-XXXXXX";
  if (mkdtemp(dir) == nullptr) return state.SkipWithError("mkdtemp failed");
  std::vector<std::string> env = gpumem::bench::environment_without(
      {"LD_PRELOAD=", "LD_LIBRARY_PATH=", "GPUMEM_", "SIMCUDA_"});
  gpumem::bench::add_simcuda(env);
  gpumem::bench::add_preload(env);
  env.push_back(std::string("GPUMEM_POOL=") + pool);
  env.push_back(std::string("GPUMEM_TRACE=") + dir + "/train.trace");
  env.push_back("SIMCUDA_ALLOC_LATENCY_US=35");
  env.push_back("SIMCUDA_FREE_LATENCY_US=35");
  const std::vector<std::string> argv = {
      GPUMEM_TRAIN, "--epochs", "1",  "--samples", samples(), "--inputs", "32", "--layers",
      "4",          "--hidden", "64", "--classes", "10",      "--batch",  "16"};
  double per_step = 0, sum = 0, steps = 0;
  int runs = 0;
  for (auto _ : state) {
    const gpumem::bench::Child c = gpumem::bench::spawn(argv, env, {.quiet_stderr = true});
    per_step = json_number(c.out, "seconds_per_step");
    steps = json_number(c.out, "steps_run");
    if (!c.ok || per_step <= 0) {
      state.SkipWithError("gpumem-train failed or printed no seconds_per_step");
      break;
    }
    state.SetIterationTime(per_step);
    sum += per_step;
    ++runs;
  }
  // Each run after the first writes train.trace.1, .2 ... (an existing trace is kept).
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  state.SetLabel(pool);
  state.counters["seconds_per_step"] = runs > 0 ? sum / runs : 0;  // the mean of the runs
  state.counters["steps"] = steps;
}
BENCHMARK(BM_TrainStep)
    ->DenseRange(0, 2)
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
