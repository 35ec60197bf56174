// The cost of capture: the same driver-level program (cuMemAlloc_v2 + cuMemFree_v2 pairs on
// simcuda, the driver reached through dlopen + dlsym as TensorFlow and JAX do) run three ways in
// one run — without the preload, with libgpumem.so, and with GPUMEM_STACKS=1 — and the cost per
// recorded event (one alloc or free record) over the plain run.
//
// Each benchmark iteration re-executes this program as `--worker N`, which times N pairs itself
// (process start and CUDA initialisation are not counted) and prints the nanoseconds.
#include <benchmark/benchmark.h>
#include <cuda.h>
#include <dlfcn.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

extern char** environ;

namespace {

constexpr int kPairs = 20000;

int worker(int pairs) {
  // dlopen, not linking: this program must start without a driver to run the benchmarks.
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return std::fprintf(stderr, "bench_capture: %s\n", dlerror()), 1;
#define BIND(name) auto name = reinterpret_cast<decltype(&::name)>(dlsym(h, #name))
  BIND(cuInit);
  BIND(cuDeviceGet);
  BIND(cuDevicePrimaryCtxRetain);
  BIND(cuCtxSetCurrent);
  BIND(cuMemAlloc_v2);
  BIND(cuMemFree_v2);
#undef BIND
  if (!cuInit || !cuDeviceGet || !cuDevicePrimaryCtxRetain || !cuCtxSetCurrent || !cuMemAlloc_v2 ||
      !cuMemFree_v2)
    return 1;
  if (cuInit(0) != CUDA_SUCCESS) return 1;
  CUdevice dev;
  CUcontext ctx;
  if (cuDeviceGet(&dev, 0) != CUDA_SUCCESS || cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS ||
      cuCtxSetCurrent(ctx) != CUDA_SUCCESS)
    return 1;
  CUdeviceptr warm;
  cuMemAlloc_v2(&warm, 256);  // first-use costs (trace file creation, device info) not measured
  cuMemFree_v2(warm);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < pairs; ++i) {
    CUdeviceptr p = 0;
    if (cuMemAlloc_v2(&p, 256u * static_cast<unsigned>(i % 16 + 1)) != CUDA_SUCCESS) return 1;
    cuMemFree_v2(p);
  }
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now() - start);
  std::printf("%lld\n", static_cast<long long>(ns.count()));
  return 0;
}

enum class Mode { plain, preload, stacks };
std::string g_self;
std::map<Mode, double> g_ns_per_event;  // best (minimum) seen per mode

// Runs one worker; returns its measured nanoseconds, or -1.
double run_worker(Mode mode) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "LD_PRELOAD=", 11) != 0 && std::strncmp(*e, "LD_LIBRARY_PATH=", 16) != 0 &&
        std::strncmp(*e, "GPUMEM_", 7) != 0)
      env.emplace_back(*e);
#ifdef GPUMEM_SIMCUDA_DIR
  env.push_back(std::string("LD_LIBRARY_PATH=") + GPUMEM_SIMCUDA_DIR);
#endif
#ifdef GPUMEM_PRELOAD_PATH
  if (mode != Mode::plain) env.push_back(std::string("LD_PRELOAD=") + GPUMEM_PRELOAD_PATH);
#endif
  env.push_back("GPUMEM_TRACE=/tmp/gpumem-bench-capture-%p.trace");
  if (mode == Mode::stacks) env.push_back("GPUMEM_STACKS=1");
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string pairs = std::to_string(kPairs);
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
  const std::string trace = "/tmp/gpumem-bench-capture-" + std::to_string(pid) + ".trace";
  unlink(trace.c_str());
  if (n <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return std::strtod(buf, nullptr);
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
  if (argc == 3 && std::strcmp(argv[1], "--worker") == 0) return worker(std::atoi(argv[2]));
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 1;
  self[n] = '\0';
  g_self = self;
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
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
  return 0;
}
