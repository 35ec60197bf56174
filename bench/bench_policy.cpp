// The alloc+free pair through each policy's resource stack, against the raw device calls, in one
// run. The device is SimulatedUpstream busy-waiting 20 us per allocation and per free: the cost
// model of SIMCUDA_ALLOC_LATENCY_US=20 SIMCUDA_FREE_LATENCY_US=20 (a realistic cudaMalloc/cudaFree,
// research/allocators.md section 6). Goals (docs/policies.md): the growth pool at least 100x faster
// than the raw calls and at most 150 ns per pair at the median.
//
// Each benchmark's time is per pair; "x_raw" is (raw pair time) / (this pair time), with the raw
// pair measured once at start-up over the same sizes. Run with --benchmark_repetitions for medians
// (the pool benchmarks already repeat 5 times and report mean/median/stddev).
//
// Each policy's stack is built by resources::DeviceStack from a StackConfig, as libgpumem.so and
// `gpumem replay` build theirs, so the numbers are the preload's stack's. Only
// BM_limit_over_growth, an order the preload never builds, is assembled by hand for comparison.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <random>
#include <vector>

#include "gpumem/resources/device_resource.h"
#include "gpumem/resources/growth_pool.h"
#include "gpumem/resources/limit_resource.h"
#include "gpumem/resources/simulated_upstream.h"
#include "gpumem/resources/simulated_vmm.h"
#include "gpumem/resources/stack.h"

namespace {
using namespace gpumem::resources;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kLatencyNs = 20'000;
// A mix of the sizes a training step allocates: activations, gradients, small scratch buffers.
constexpr uint64_t kSizes[] = {512, 4096, 65536, 262144, 1 << 20, 3 << 20, 6 << 20, 24 << 20};
constexpr size_t kSizeCount = sizeof(kSizes) / sizeof(kSizes[0]);

SimulatedUpstream::Options slow_device() {
  SimulatedUpstream::Options o;
  o.alloc_latency_ns = kLatencyNs;
  o.free_latency_ns = kLatencyNs;
  return o;
}

Request alloc_req(uint64_t bytes, uint64_t stream = 0) {
  return Request{0, bytes, stream, gpumem::trace::Api::cudaMalloc, 0};
}
Request free_req(uint64_t bytes, bool stream_ordered, uint64_t stream = 0) {
  return Request{0, bytes, stream,
                 stream_ordered ? gpumem::trace::Api::cudaFreeAsync : gpumem::trace::Api::cudaFree,
                 static_cast<uint16_t>(stream_ordered ? gpumem::trace::kFlagAsync : 0)};
}

// ns per raw pair over the same sizes, measured once.
double raw_pair_ns() {
  static const double ns = [] {
    SimulatedUpstream sim(slow_device());
    constexpr int kPairs = 400;
    auto start = Clock::now();
    for (int i = 0; i < kPairs; ++i) {
      uint64_t bytes = kSizes[static_cast<size_t>(i) % kSizeCount];
      void* p = nullptr;
      sim.alloc(&p, alloc_req(bytes));
      sim.free(p, free_req(bytes, false));
    }
    return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / kPairs;
  }();
  return ns;
}

constexpr uint64_t kLimit = uint64_t{8} << 30;

// Runs pairs through `mr` and reports the speed-up over the raw calls.
void run_pairs(benchmark::State& state, MemoryResource& mr, bool stream_ordered) {
  size_t i = 0;
  auto start = Clock::now();
  for (auto _ : state) {
    uint64_t bytes = kSizes[i++ % kSizeCount];
    Result r = mr.allocate(alloc_req(bytes));
    benchmark::DoNotOptimize(r.ptr);
    if (!r.ok() || mr.deallocate(r.ptr, free_req(bytes, stream_ordered)) != Status::ok) {
      state.SkipWithError("allocation failed");
      break;
    }
  }
  double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
              static_cast<double>(state.iterations());
  state.counters["x_raw"] = raw_pair_ns() / ns;
}

// Pairs through the preload's stack for `config` over the slow device.
void run_stack(benchmark::State& state, const StackConfig& config, bool stream_ordered) {
  SimulatedUpstream sim(slow_device());
  DeviceStack stack(sim, 0, config);
  run_pairs(state, *stack.top(), stream_ordered);
}

void BM_raw_device_calls(benchmark::State& state) {
  SimulatedUpstream sim(slow_device());
  size_t i = 0;
  for (auto _ : state) {
    uint64_t bytes = kSizes[i++ % kSizeCount];
    void* p = nullptr;
    sim.alloc(&p, alloc_req(bytes));
    benchmark::DoNotOptimize(p);
    sim.free(p, free_req(bytes, false));
  }
}
BENCHMARK(BM_raw_device_calls)->UseRealTime();

void BM_none(benchmark::State& state) {
  run_stack(state, {PoolKind::none, 0, 0}, false);
}
BENCHMARK(BM_none)->UseRealTime();

void BM_none_limit(benchmark::State& state) {
  run_stack(state, {PoolKind::none, kLimit, 0}, false);
}
BENCHMARK(BM_none_limit)->UseRealTime();

void BM_growth_cudaFree(benchmark::State& state) {
  run_stack(state, {PoolKind::growth, 0, 0}, false);
}
BENCHMARK(BM_growth_cudaFree)->UseRealTime()->Repetitions(5)->ReportAggregatesOnly(true);

void BM_growth_cudaFreeAsync(benchmark::State& state) {
  run_stack(state, {PoolKind::growth, 0, 0}, true);
}
BENCHMARK(BM_growth_cudaFreeAsync)->UseRealTime()->Repetitions(5)->ReportAggregatesOnly(true);

// The recommended stack for GPUMEM_POOL=growth with GPUMEM_LIMIT (docs/policies.md): the limit
// below the pool, so it is only consulted when the pool takes or gives back a segment.
void BM_growth_over_limit(benchmark::State& state) {
  run_stack(state, {PoolKind::growth, kLimit, 0}, false);
}
BENCHMARK(BM_growth_over_limit)->UseRealTime()->Repetitions(5)->ReportAggregatesOnly(true);

// The limit above the pool: one more atomic reservation per allocation.
void BM_limit_over_growth(benchmark::State& state) {
  SimulatedUpstream sim(slow_device());
  DeviceResource dev(sim);
  GrowthPool pool(dev, 0);
  LimitResource limit(pool, kLimit);
  run_pairs(state, limit, false);
}
BENCHMARK(BM_limit_over_growth)->UseRealTime()->Repetitions(5)->ReportAggregatesOnly(true);

void BM_fixed(benchmark::State& state) {
  run_stack(state, {PoolKind::fixed, 0, uint64_t{1} << 30}, false);
}
BENCHMARK(BM_fixed)->UseRealTime()->Repetitions(5)->ReportAggregatesOnly(true);

// The expandable pool (docs/policies.md "Expandable pool") over SimulatedVmm: the pair when the
// freed pages are reused; "maps" counts the granules it mapped per pair (0 in steady state is the
// goal's condition: at most 2x the growth pool's pair when no page is mapped or unmapped).
void run_expandable(benchmark::State& state, bool stream_ordered) {
  SimulatedUpstream sim(slow_device());
  SimulatedVmm vmm;
  StackConfig config{PoolKind::expandable, 0, 0};
  config.vmm = &vmm;
  DeviceStack stack(sim, 0, config);
  // One warm-up round over every size, so that steady state is measured.
  for (uint64_t bytes : kSizes) {
    Result r = stack.top()->allocate(alloc_req(bytes));
    (void)stack.top()->deallocate(r.ptr, free_req(bytes, stream_ordered));
  }
  const uint64_t maps_before = vmm.map_calls();
  run_pairs(state, *stack.top(), stream_ordered);
  state.counters["maps_per_pair"] =
      static_cast<double>(vmm.map_calls() - maps_before) / static_cast<double>(state.iterations());
}
void BM_expandable_cudaFree(benchmark::State& state) {
  run_expandable(state, false);
}
BENCHMARK(BM_expandable_cudaFree)->UseRealTime()->Repetitions(5)->ReportAggregatesOnly(true);
void BM_expandable_cudaFreeAsync(benchmark::State& state) {
  run_expandable(state, true);
}
BENCHMARK(BM_expandable_cudaFreeAsync)->UseRealTime()->Repetitions(5)->ReportAggregatesOnly(true);

// Utilisation (peak allocated / peak reserved) on a randomised mix of sizes from 512 B to 1 GiB
// (log-uniform, up to 64 live, sync frees), the same sequence through each pool, no latency.
double utilisation(PoolKind kind) {
  SimulatedUpstream sim;  // 80 GiB
  SimulatedVmm vmm;
  StackConfig config{kind, 0, 0};
  config.vmm = &vmm;
  DeviceStack stack(sim, 0, config);
  std::mt19937_64 rng(19);
  std::vector<std::pair<void*, uint64_t>> live;
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || (live.size() < 64 && rng() % 2 == 0)) {
      const double log2 = 9.0 + static_cast<double>(rng() % 21000) / 1000.0;  // 2^9 .. 2^30
      const uint64_t bytes = static_cast<uint64_t>(std::exp2(log2));
      Result r = stack.top()->allocate(alloc_req(bytes));
      if (r.ok()) live.emplace_back(r.ptr, bytes);
    } else {
      const size_t i = rng() % live.size();
      (void)stack.top()->deallocate(live[i].first, free_req(live[i].second, false));
      live[i] = live.back();
      live.pop_back();
    }
  }
  const Stats st = stack.stats();
  return static_cast<double>(st.peak_allocated_bytes) /
         static_cast<double>(std::max<uint64_t>(st.peak_reserved_bytes, 1));
}
void BM_utilisation_mixed_sizes(benchmark::State& state) {
  double growth = 0, expandable = 0;
  for (auto _ : state) {
    growth = utilisation(PoolKind::growth);
    expandable = utilisation(PoolKind::expandable);
  }
  state.counters["growth"] = growth;
  state.counters["expandable"] = expandable;
}
BENCHMARK(BM_utilisation_mixed_sizes)->Iterations(1)->Unit(benchmark::kMillisecond);

// Growth pool with 2 threads sharing it (one mutex per pool): contention cost. The stack is
// built once (thread-safe static) and kept for the whole run.
void BM_growth_2_threads(benchmark::State& state) {
  static SimulatedUpstream* const sim = new SimulatedUpstream(slow_device());
  static DeviceStack* const stack = new DeviceStack(*sim, 0, {PoolKind::growth, 0, 0});
  run_pairs(state, *stack->top(), true);
}
BENCHMARK(BM_growth_2_threads)->UseRealTime()->Threads(2);

}  // namespace

// Scaling, not speed: `state.range(0)` blocks of 4 KiB, each between two live ones (so none
// coalesces), freed with cudaFree in random order and made reusable by one synchronization. Time
// per block; it stays flat as the count grows when each insertion into the free bins is O(1)
// amortised (a walk of the bin from its tail made it linear: 40000 blocks took 4.3 s).
// Times freeing every other one of 2n blocks of 4 KiB on `stream` (so that none coalesces) under
// the growth pool: free(mr, blocks, order) is timed, with order the even indexes, shuffled or in
// descending addresses; the odd blocks are freed untimed afterwards.
template <class Free>
void time_equal_frees(benchmark::State& state, uint64_t stream, bool descending, Free free) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    state.PauseTiming();
    SimulatedUpstream sim;
    DeviceStack stack(sim, 0, StackConfig{PoolKind::growth, 0, 0});
    MemoryResource& mr = *stack.top();
    std::vector<void*> blocks;
    for (size_t i = 0; i < 2 * n; ++i) blocks.push_back(mr.allocate(alloc_req(4096, stream)).ptr);
    std::vector<size_t> order;
    for (size_t i = 0; i < n; ++i) order.push_back(2 * i);
    if (descending)
      std::sort(order.begin(), order.end(),
                [&](size_t a, size_t b) { return blocks[a] > blocks[b]; });
    else
      std::shuffle(order.begin(), order.end(), rng);
    state.ResumeTiming();
    free(mr, blocks, order);
    state.PauseTiming();
    for (size_t i = 0; i < n; ++i)
      (void)mr.deallocate(blocks[2 * i + 1], free_req(4096, stream != 0, stream));
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}

void BM_growth_sync_after_equal_frees(benchmark::State& state) {
  time_equal_frees(
      state, 0, false,
      [](MemoryResource& mr, const std::vector<void*>& blocks, const std::vector<size_t>& order) {
        for (size_t i : order) (void)mr.deallocate(blocks[i], free_req(4096, false));
        (void)mr.synchronize(0);
      });
}
BENCHMARK(BM_growth_sync_after_equal_frees)
    ->Arg(500)
    ->Arg(2500)
    ->Arg(10000)
    ->Arg(40000)
    ->Unit(benchmark::kMillisecond);

// The same blocks freed stream-ordered (cudaFreeAsync: each goes straight into its stream's free
// bins, one at a time, in the program's order): order 0 random, 1 descending addresses (a
// backward pass freeing in reverse). Time per block; flat as the count grows when insertion is
// O(1) amortised for these orders.
void BM_growth_free_async_equal_blocks(benchmark::State& state) {
  time_equal_frees(
      state, 7, state.range(1) == 1,
      [](MemoryResource& mr, const std::vector<void*>& blocks, const std::vector<size_t>& order) {
        for (size_t i : order) (void)mr.deallocate(blocks[i], free_req(4096, true, 7));
      });
}
BENCHMARK(BM_growth_free_async_equal_blocks)
    ->Args({10000, 0})
    ->Args({40000, 0})
    ->Args({10000, 1})
    ->Args({40000, 1})
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
