// Fault injection and environment checking. Runs with SIMCUDA_FAIL_ALLOC_AFTER=3,
// SIMCUDA_ALLOC_LATENCY_US=20000 and SIMCUDA_FREE_LATENCY_US=10000 (CMakeLists.txt); the
// bad-value tests re-run this binary with one variable spoiled.
#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

namespace {

constexpr size_t kMiB = 1ull << 20;

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// Helper for the tests below: initialises the runtime and nothing else.
TEST(Probe, InitialiseRuntime) {
  EXPECT_EQ(cudaFree(nullptr), cudaSuccess);
}

// Helper for DefaultLatency below (skipped unless it sets GPUMEM_TEST_PROBE_TIMING): times 20
// allocations and their 20 frees, and prints "alloc_us=A free_us=F" on stderr.
TEST(Probe, TimeTwentyAllocationsAndFrees) {
  if (std::getenv("GPUMEM_TEST_PROBE_TIMING") == nullptr)
    GTEST_SKIP() << "a helper of DefaultLatency";
  void* p[20];
  auto t = std::chrono::steady_clock::now();
  for (void*& q : p) ASSERT_EQ(cudaMalloc(&q, kMiB), cudaSuccess);
  const double alloc_ms = ms_since(t);
  t = std::chrono::steady_clock::now();
  for (void* q : p) ASSERT_EQ(cudaFree(q), cudaSuccess);
  std::fprintf(stderr, "alloc_us=%.0f free_us=%.0f\n", alloc_ms * 1000, ms_since(t) * 1000);
}

TEST(FaultInjection, AllocationsAfterTheFirstThreeFail) {
  size_t free0 = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free0, &total), cudaSuccess);
  void *a = nullptr, *b = nullptr, *c = nullptr, *d = nullptr;
  auto t = std::chrono::steady_clock::now();
  ASSERT_EQ(cudaMalloc(&a, kMiB), cudaSuccess);
  EXPECT_GE(ms_since(t), 19.0);                               // SIMCUDA_ALLOC_LATENCY_US=20000
  ASSERT_EQ(cudaMallocAsync(&b, 100, nullptr), cudaSuccess);  // every entry point counts
  ASSERT_EQ(cudaMallocManaged(&c, 100, cudaMemAttachGlobal), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&d, 100), cudaErrorMemoryAllocation);
  EXPECT_EQ(cudaMallocAsync(&d, 100, nullptr), cudaErrorMemoryAllocation);
  size_t pitch = 0;
  EXPECT_EQ(cudaMallocPitch(&d, &pitch, 100, 100), cudaErrorMemoryAllocation);
  // Pinned host memory is not device memory and is not counted.
  ASSERT_EQ(cudaMallocHost(&d, 100), cudaSuccess);
  EXPECT_EQ(cudaFreeHost(d), cudaSuccess);
  t = std::chrono::steady_clock::now();
  EXPECT_EQ(cudaFree(a), cudaSuccess);
  EXPECT_GE(ms_since(t), 9.0);  // SIMCUDA_FREE_LATENCY_US=10000
  EXPECT_EQ(cudaFreeAsync(b, nullptr), cudaSuccess);
  EXPECT_EQ(cudaFree(c), cudaSuccess);
  size_t free1 = 0;
  ASSERT_EQ(cudaMemGetInfo(&free1, &total), cudaSuccess);
  EXPECT_EQ(free1, free0);
}

struct ProbeResult {
  int status = -1;
  std::string err;
};

// Runs this binary's Probe test `probe` with `assignment` added to the environment and the
// variables named in `unset` taken out of it.
ProbeResult run_probe(const std::string& assignment, std::vector<std::string> unset = {},
                      const std::string& probe = "Probe.InitialiseRuntime") {
  std::vector<std::string> env_strings;
  unset.push_back(assignment.substr(0, assignment.find('=')));
  for (char** e = environ; *e; ++e) {
    bool keep = true;
    for (const std::string& name : unset)
      keep = keep && std::strncmp(*e, (name + "=").c_str(), name.size() + 1) != 0;
    if (keep) env_strings.push_back(*e);
  }
  env_strings.push_back(assignment);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string self = "/proc/self/exe", filter = "--gtest_filter=" + probe;
  char* argv[] = {self.data(), filter.data(), nullptr};
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  ProbeResult run;
  EXPECT_EQ(posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv, envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  char buf[512];
  ssize_t n = 0;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) run.err.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

TEST(Environment, GoodValuesRun) {
  EXPECT_EQ(run_probe("SIMCUDA_MEMORY=80GiB").status, 0);
  EXPECT_EQ(run_probe("SIMCUDA_DEVICES=8").status, 0);
}

TEST(Environment, BadValuesExitWithStatus2AndSayWhatIsAccepted) {
  const char* cases[][2] = {
      {"SIMCUDA_MEMORY=banana", "SIMCUDA_MEMORY='banana'"},
      {"SIMCUDA_MEMORY=60%", "SIMCUDA_MEMORY='60%'"},
      {"SIMCUDA_DEVICES=0", "SIMCUDA_DEVICES='0'"},
      {"SIMCUDA_DEVICES=two", "SIMCUDA_DEVICES='two'"},
      {"SIMCUDA_FAIL_ALLOC_AFTER=-1", "SIMCUDA_FAIL_ALLOC_AFTER='-1'"},
      {"SIMCUDA_ALLOC_LATENCY_US=5ms", "SIMCUDA_ALLOC_LATENCY_US='5ms'"},
      {"SIMCUDA_FREE_LATENCY_US=", "SIMCUDA_FREE_LATENCY_US=''"},
  };
  for (auto& c : cases) {
    ProbeResult run = run_probe(c[0]);
    EXPECT_EQ(run.status, 2) << c[0];
    EXPECT_NE(run.err.find(c[1]), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("is not valid; use "), std::string::npos) << run.err;
  }
}

// The value is echoed with control characters escaped: one line, no terminal escape run.
TEST(Environment, BadValuesAreEchoedEscaped) {
  ProbeResult run = run_probe("SIMCUDA_MEMORY=1\x1b[2J\nGiB");
  EXPECT_EQ(run.status, 2);
  EXPECT_NE(run.err.find("SIMCUDA_MEMORY='1\\x1b[2J\\nGiB' is not valid"), std::string::npos)
      << run.err;
  EXPECT_EQ(run.err.find('\x1b'), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
}

// Unset, each device allocation and free takes 35 µs as cudaMalloc/cudaFree do on a real GPU
// (docs/simcuda.md), so that time per step shows what a caching pool saves. Only lower bounds:
// a sleep never ends early, and a loaded machine only adds.
TEST(Environment, DefaultLatencyIs35Microseconds) {
  const std::vector<std::string> unset = {"SIMCUDA_ALLOC_LATENCY_US", "SIMCUDA_FREE_LATENCY_US",
                                          "SIMCUDA_FAIL_ALLOC_AFTER"};
  const ProbeResult by_default =
      run_probe("GPUMEM_TEST_PROBE_TIMING=1", unset, "Probe.TimeTwentyAllocationsAndFrees");
  ASSERT_EQ(by_default.status, 0) << by_default.err;
  double alloc_us = 0, free_us = 0;
  const size_t at = by_default.err.find("alloc_us=");
  ASSERT_NE(at, std::string::npos) << by_default.err;
  ASSERT_EQ(
      std::sscanf(by_default.err.c_str() + at, "alloc_us=%lf free_us=%lf", &alloc_us, &free_us), 2);
  EXPECT_GE(alloc_us, 20 * 35.0);
  EXPECT_GE(free_us, 20 * 35.0);
}

}  // namespace
