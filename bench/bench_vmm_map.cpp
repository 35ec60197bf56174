// What the expandable pool pays on simcuda when it maps or unmaps a page (issue 19: "state the
// cost of a map/unmap on the simulated device"): one 2 MiB granule's cuMemCreate + cuMemMap +
// cuMemSetAccess, then cuMemUnmap + cuMemRelease, against a cuMemAlloc_v2 + cuMemFree_v2 pair of
// the same 2 MiB, in one run, both without simcuda's latency knobs (the simulator's own cost).
//
// Each iteration re-executes this program as `--worker N` (bench_util.h): N > 0 times N map
// cycles in a reserved range, N < 0 times -N alloc/free pairs; the worker prints nanoseconds.
#include <benchmark/benchmark.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_util.h"

namespace {

constexpr size_t kGranule = size_t{2} << 20;
constexpr int kCycles = 2000;

int worker(int n) {
  gpumem::bench::DriverCalls cu;
  if (!gpumem::bench::open_driver("bench_vmm_map", &cu)) return 1;
  const auto start = std::chrono::steady_clock::now();
  if (n < 0) {
    for (int i = 0; i < -n; ++i) {
      CUdeviceptr p = 0;
      if (cu.alloc(&p, kGranule) != CUDA_SUCCESS) return 1;
      cu.free(p);
    }
    gpumem::bench::print_elapsed_ns(start);
    return 0;
  }
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);  // open_driver's handle, again
  if (h == nullptr) return 1;
#define BIND(name) auto name = reinterpret_cast<decltype(&::name)>(dlsym(h, #name))
  BIND(cuMemAddressReserve);
  BIND(cuMemCreate);
  BIND(cuMemMap);
  BIND(cuMemSetAccess);
  BIND(cuMemUnmap);
  BIND(cuMemRelease);
#undef BIND
  if (!cuMemAddressReserve || !cuMemCreate || !cuMemMap || !cuMemSetAccess || !cuMemUnmap ||
      !cuMemRelease)
    return 1;
  CUdeviceptr va = 0;
  if (cuMemAddressReserve(&va, kGranule, kGranule, 0, 0) != CUDA_SUCCESS) return 1;
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  CUmemAccessDesc access{};
  access.location = prop.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  const auto timed = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    CUmemGenericAllocationHandle handle = 0;
    if (cuMemCreate(&handle, kGranule, &prop, 0) != CUDA_SUCCESS ||
        cuMemMap(va, kGranule, 0, handle, 0) != CUDA_SUCCESS ||
        cuMemSetAccess(va, kGranule, &access, 1) != CUDA_SUCCESS ||
        cuMemUnmap(va, kGranule) != CUDA_SUCCESS || cuMemRelease(handle) != CUDA_SUCCESS)
      return 1;
  }
  gpumem::bench::print_elapsed_ns(timed);
  return 0;
}

std::string g_self;
double g_ns[2] = {};  // per cycle: map+unmap, alloc+free

void BM_VmmMapCycle(benchmark::State& state) {
  const bool map = state.range(0) == 0;
  state.SetLabel(map ? "map_unmap" : "alloc_free");
  auto env = gpumem::bench::environment_without({"LD_PRELOAD=", "LD_LIBRARY_PATH=", "GPUMEM_",
                                                 "SIMCUDA_"});
  gpumem::bench::add_simcuda(env);
  env.push_back("SIMCUDA_ALLOC_LATENCY_US=0");
  env.push_back("SIMCUDA_FREE_LATENCY_US=0");
  std::vector<double> per;
  for (auto _ : state) {
    const auto c = gpumem::bench::spawn(
        {g_self, "--worker", std::to_string(map ? kCycles : -kCycles)}, env);
    if (!c.ok || c.printed <= 0) {
      state.SkipWithError("the worker failed (is simcuda built? see bench_vmm_map.cmake)");
      return;
    }
    state.SetIterationTime(c.printed * 1e-9 / kCycles);
    per.push_back(c.printed / kCycles);
  }
  std::sort(per.begin(), per.end());
  g_ns[state.range(0)] = per[per.size() / 2];
  state.counters["median_ns_per_cycle"] = g_ns[state.range(0)];
}
BENCHMARK(BM_VmmMapCycle)
    ->DenseRange(0, 1)
    ->ArgName("alloc_free")
    ->UseManualTime()
    ->Iterations(5)
    ->Unit(benchmark::kNanosecond);

}  // namespace

int main(int argc, char** argv) {
  return gpumem::bench::bench_main(argc, argv, worker, &g_self, [] {
    if (g_ns[0] > 0 && g_ns[1] > 0)
      std::printf("\n2 MiB on simcuda, median of 5 runs of %d: map+unmap %.0f ns, alloc+free %.0f "
                  "ns (%.2fx)\n",
                  kCycles, g_ns[0], g_ns[1], g_ns[0] / g_ns[1]);
  });
}
