// The program of fork_test.cpp, run under LD_PRELOAD=libgpumem.so with a pool on simcuda:
//
//   fork_child FORKS [vmm]
//
// A worker thread loops allocations and frees through the pool (runtime and driver calls, sizes
// that reuse cached blocks, take segments of their own and make the pool synchronize the device
// under its lock) while the main thread forks FORKS times. Each child allocates and frees once
// through each API and exits 0 with exit() (so the preload closes the child's trace). The parent
// waits at most 5 s for each child; a child still running then is stuck (killed, counted). Prints
// "child PID STATUS" per fork, then "forks N hung H failed F worker_pairs W". Exit 0 when no child
// hung or failed.
//
// With `vmm` the worker runs VMM lifetimes instead, each ended by a cuMemUnmap that makes the
// preload search its mapping table under its lock, and each child creates, maps, unmaps and
// releases one 2 MiB handle.
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include "vmm_prop.h"

namespace {

constexpr size_t kKiB = 1024, kMiB = 1024 * kKiB;

std::atomic<bool> g_stop{false};
std::atomic<long> g_pairs{0};

// The device's primary context, current on the calling thread (for the driver calls).
void bind_context() {
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  if (cuDeviceGet(&dev, 0) == CUDA_SUCCESS && cuDevicePrimaryCtxRetain(&ctx, dev) == CUDA_SUCCESS)
    cuCtxSetCurrent(ctx);
}

void worker() {
  bind_context();
  const size_t sizes[] = {4 * kKiB, 1 * kMiB + 512, 12 * kMiB, 64 * kKiB};
  unsigned i = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    const size_t bytes = sizes[i++ % 4];
    if (i % 2 == 0) {
      void* p = nullptr;
      if (cudaMalloc(&p, bytes) == cudaSuccess) cudaFree(p);
    } else {
      CUdeviceptr d = 0;
      if (cuMemAlloc(&d, bytes) == CUDA_SUCCESS) cuMemFree(d);
    }
    g_pairs.fetch_add(1, std::memory_order_relaxed);
  }
}

// One handle stays mapped at `kept`; each round creates, maps and releases a handle at va and
// unmaps [va, va + 4 MiB): past its one mapping, so the preload looks through every mapping it
// tracks, under its lock, for others starting in the range.
void vmm_worker() {
  bind_context();
  const CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
  CUdeviceptr kept = 0, va = 0;
  CUmemGenericAllocationHandle kept_handle = 0;
  if (cuMemAddressReserve(&kept, 2 * kMiB, 0, 0, 0) != CUDA_SUCCESS ||
      cuMemCreate(&kept_handle, 2 * kMiB, &prop, 0) != CUDA_SUCCESS ||
      cuMemMap(kept, 2 * kMiB, 0, kept_handle, 0) != CUDA_SUCCESS ||
      cuMemAddressReserve(&va, 4 * kMiB, 0, 0, 0) != CUDA_SUCCESS)
    std::abort();
  while (!g_stop.load(std::memory_order_relaxed)) {
    CUmemGenericAllocationHandle h = 0;
    if (cuMemCreate(&h, 2 * kMiB, &prop, 0) != CUDA_SUCCESS ||
        cuMemMap(va, 2 * kMiB, 0, h, 0) != CUDA_SUCCESS || cuMemRelease(h) != CUDA_SUCCESS ||
        cuMemUnmap(va, 4 * kMiB) != CUDA_SUCCESS)
      std::abort();
    g_pairs.fetch_add(1, std::memory_order_relaxed);
  }
}

// In the child: one VMM lifetime, then exit().
[[noreturn]] void vmm_child() {
  const CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
  CUmemGenericAllocationHandle h = 0;
  CUdeviceptr va = 0;
  const bool ok = cuMemCreate(&h, 2 * kMiB, &prop, 0) == CUDA_SUCCESS &&
                  cuMemAddressReserve(&va, 2 * kMiB, 0, 0, 0) == CUDA_SUCCESS &&
                  cuMemMap(va, 2 * kMiB, 0, h, 0) == CUDA_SUCCESS &&
                  cuMemUnmap(va, 2 * kMiB) == CUDA_SUCCESS && cuMemRelease(h) == CUDA_SUCCESS &&
                  cuMemAddressFree(va, 2 * kMiB) == CUDA_SUCCESS;
  std::exit(ok ? 0 : 3);
}

// In the child: one pair through each API, then exit() (atexit handlers close the trace).
[[noreturn]] void child() {
  void* p = nullptr;
  const bool runtime_ok = cudaMalloc(&p, 2 * kMiB) == cudaSuccess && cudaFree(p) == cudaSuccess;
  CUdeviceptr d = 0;
  const bool driver_ok = cuMemAlloc(&d, 4096) == CUDA_SUCCESS && cuMemFree(d) == CUDA_SUCCESS;
  std::exit(runtime_ok && driver_ok ? 0 : 3);
}

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// The child's exit status, or -1 when it was still running after `seconds` (then killed).
int wait_at_most(pid_t pid, double seconds) {
  const double deadline = now_s() + seconds;
  int status = 0;
  while (now_s() < deadline) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r < 0) return -2;
    usleep(1000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// A forked child holds what the parent's other threads had in flight at the fork (a handle being
// created), and those threads do not exist in it: under LeakSanitizer its exit reported that as
// leaked (status 134). The child's leak check is off; the parent's stays on.
bool g_forked_child = false;

}  // namespace

extern "C" int __lsan_is_turned_off() {
  return g_forked_child ? 1 : 0;
}

int main(int argc, char** argv) {
  const int forks = argc > 1 ? std::atoi(argv[1]) : 0;
  const bool vmm = argc > 2 && std::strcmp(argv[2], "vmm") == 0;
  if (forks <= 0 || (argc > 2 && !vmm)) {
    std::fprintf(stderr, "usage: fork_child FORKS [vmm] (a number of forks above 0)\n");
    return 2;
  }
  if (cuInit(0) != CUDA_SUCCESS) return 1;
  bind_context();
  void* warm = nullptr;  // builds the device's pool before the worker starts
  if (cudaMalloc(&warm, 4096) != cudaSuccess || cudaFree(warm) != cudaSuccess) return 1;
  std::thread t(vmm ? vmm_worker : worker);
  while (g_pairs.load() < 100) usleep(100);
  int hung = 0, failed = 0, done = 0;
  for (; done < forks && hung == 0; ++done) {
    std::fflush(stdout);  // the child must not print the parent's buffered lines again
    const pid_t pid = fork();
    if (pid == 0) {
      g_forked_child = true;
      vmm ? vmm_child() : child();
    }
    if (pid < 0) {
      ++failed;
      break;
    }
    const int status = wait_at_most(pid, 5.0);
    std::printf("child %d %d\n", static_cast<int>(pid), status);
    if (status == -1)
      ++hung;
    else if (status != 0)
      ++failed;
  }
  g_stop.store(true);
  t.join();
  std::printf("forks %d hung %d failed %d worker_pairs %ld\n", done, hung, failed, g_pairs.load());
  return hung == 0 && failed == 0 ? 0 : 1;
}
