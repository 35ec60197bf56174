// What the re-executing benchmarks (bench_capture, bench_preload_policy, bench_vs_heaptrack)
// share: the driver-level worker's set-up, the path of this program, the environment a worker
// starts from, and running a child that times itself and prints its nanoseconds.
//
// GPUMEM_SIMCUDA_DIR and GPUMEM_PRELOAD_PATH come from the benchmark's .cmake (bench_util.cmake);
// without them the workers run against whatever libcuda.so.1 the loader finds, unpreloaded.
#pragma once

#include <benchmark/benchmark.h>
#include <cuda.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

extern char** environ;

namespace gpumem::bench {

struct DriverCalls {
  decltype(&::cuMemAlloc_v2) alloc = nullptr;
  decltype(&::cuMemFree_v2) free = nullptr;
};

// The driver reached through dlopen + dlsym (as TensorFlow and JAX do; this program must also
// start without any driver to run the benchmarks), initialised, with device 0's primary context
// current. Returns false when any step fails (a dlopen failure is printed, prefixed by `program`).
inline bool open_driver(const char* program, DriverCalls* out) {
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return std::fprintf(stderr, "%s: %s\n", program, dlerror()), false;
#define GPUMEM_BENCH_BIND(name) auto name = reinterpret_cast<decltype(&::name)>(dlsym(h, #name))
  GPUMEM_BENCH_BIND(cuInit);
  GPUMEM_BENCH_BIND(cuDeviceGet);
  GPUMEM_BENCH_BIND(cuDevicePrimaryCtxRetain);
  GPUMEM_BENCH_BIND(cuCtxSetCurrent);
  GPUMEM_BENCH_BIND(cuMemAlloc_v2);
  GPUMEM_BENCH_BIND(cuMemFree_v2);
#undef GPUMEM_BENCH_BIND
  if (!cuInit || !cuDeviceGet || !cuDevicePrimaryCtxRetain || !cuCtxSetCurrent || !cuMemAlloc_v2 ||
      !cuMemFree_v2 || cuInit(0) != CUDA_SUCCESS)
    return false;
  CUdevice dev;
  CUcontext ctx;
  if (cuDeviceGet(&dev, 0) != CUDA_SUCCESS || cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS ||
      cuCtxSetCurrent(ctx) != CUDA_SUCCESS)
    return false;
  out->alloc = cuMemAlloc_v2;
  out->free = cuMemFree_v2;
  return true;
}

// Prints what a worker measured: nanoseconds since `start`, alone on a line.
inline void print_elapsed_ns(std::chrono::steady_clock::time_point start) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now() - start);
  std::printf("%lld\n", static_cast<long long>(ns.count()));
}

// This program's own path, for re-executing it as a worker; empty when it cannot be read.
inline std::string self_path() {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return {};
  return std::string(self, static_cast<size_t>(n));
}

// This process's environment less the variables starting with any of `drop` (a worker's
// LD_PRELOAD, library path and tool settings are chosen by the benchmark, not inherited).
inline std::vector<std::string> environment_without(std::initializer_list<const char*> drop) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    bool keep = true;
    for (const char* prefix : drop)
      keep = keep && std::strncmp(*e, prefix, std::strlen(prefix)) != 0;
    if (keep) env.emplace_back(*e);
  }
  return env;
}

// Adds LD_LIBRARY_PATH=<simcuda's folder> / LD_PRELOAD=<libgpumem.so> where the build knows them.
inline void add_simcuda(std::vector<std::string>& env) {
#ifdef GPUMEM_SIMCUDA_DIR
  env.push_back(std::string("LD_LIBRARY_PATH=") + GPUMEM_SIMCUDA_DIR);
#else
  (void)env;
#endif
}
inline void add_preload(std::vector<std::string>& env) {
#ifdef GPUMEM_PRELOAD_PATH
  env.push_back(std::string("LD_PRELOAD=") + GPUMEM_PRELOAD_PATH);
#else
  (void)env;
#endif
}

struct Child {
  bool ok = false;  // started and exited with status 0
  pid_t pid = 0;
  double printed = 0;  // the number the worker printed (its own timing); 0 if none
  double wall_ns = 0;  // wall time of the whole process
  double max_rss_kib = 0;
  std::string out;     // everything it printed on stdout (when captured)
};

struct SpawnOptions {
  bool capture_stdout = true;  // false: stdout goes to /dev/null
  bool quiet_stderr = false;   // true: stderr goes to /dev/null (a tool's own chatter)
};

// Runs argv (argv[0] searched in PATH) with exactly `env` and waits for it. The worker's figure
// is the last line made only of digits (a tool around it may print lines of its own).
inline Child spawn(const std::vector<std::string>& argv, std::vector<std::string> env,
                   SpawnOptions options = {}) {
  using Clock = std::chrono::steady_clock;
  std::vector<char*> a, e;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  for (auto& s : env) e.push_back(s.data());
  e.push_back(nullptr);
  int fds[2];
  if (pipe(fds) != 0) return {};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (options.capture_stdout)
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  else
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  if (options.quiet_stderr) posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  Child c;
  const auto start = Clock::now();
  const int rc = posix_spawnp(&c.pid, a[0], &fa, nullptr, a.data(), e.data());
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) return close(fds[0]), c;
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  struct rusage ru {};
  wait4(c.pid, &status, 0, &ru);
  c.wall_ns = static_cast<double>(std::chrono::nanoseconds(Clock::now() - start).count());
  c.max_rss_kib = static_cast<double>(ru.ru_maxrss);
  c.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  c.out = out;
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

// main() of a benchmark that re-executes itself: `PROGRAM --worker N` runs worker(N) and exits
// with its status; otherwise the registered benchmarks run (with *self = this program's path,
// for spawning workers) and then summary() prints the benchmark's own table.
template <class Summary>
int bench_main(int argc, char** argv, int (*worker)(int), std::string* self, Summary summary) {
  if (argc == 3 && std::strcmp(argv[1], "--worker") == 0) return worker(std::atoi(argv[2]));
  *self = self_path();
  if (self->empty()) return 1;
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  summary();
  return 0;
}

}  // namespace gpumem::bench
