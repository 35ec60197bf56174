// Process models on the simulated device, run by process_test.cpp (each mode is one process):
//   fork <n>            4 threads loop cudaMalloc/cudaFree while the main thread forks n times;
//                       each child must allocate, check the accounting, free and exit 0 within
//                       30 s. Exit 0 when every child did; else a line on stderr and exit 1.
//   driver-fork <n>     the same through the driver API alone (cuInit before any runtime call,
//                       so the driver's own fork handlers are the ones at work).
//   thread-exit <code>  4 threads loop cudaMalloc/cudaFree; a fifth calls exit(code) while they
//                       run. The process must end with that status and no signal.
// Linked against the real toolkit's cudart; LD_LIBRARY_PATH selects simcuda's.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

// A forked child has only the forking thread; a lock of ASan's allocator that one of the parent's
// churning threads held at the fork stays held in it, and LeakSanitizer's check at the child's
// exit takes that lock first: the child hung (1 run in 8 under load, asan stage). Its leak check
// is off; the parent's stays on.
bool g_forked_child = false;

constexpr size_t kMiB = 1ull << 20;
constexpr int kThreads = 4;

std::atomic<bool> g_stop{false};
std::atomic<long> g_failures{0};
std::atomic<int> g_exiting_from_thread{0};

// The calls the model makes, through the runtime or through the driver.
struct Api {
  bool (*alloc)(void** p, size_t bytes);
  bool (*free)(void* p);
  bool (*free_bytes)(size_t* free);
  bool (*is_device)(void* p);  // pointer attributes say device memory
  bool (*bind)();              // makes the calling thread ready to allocate
};

const Api kRuntime = {
    [](void** p, size_t n) { return cudaMalloc(p, n) == cudaSuccess; },
    [](void* p) { return cudaFree(p) == cudaSuccess; },
    [](size_t* free) {
      size_t total = 0;
      return cudaMemGetInfo(free, &total) == cudaSuccess;
    },
    [](void* p) {
      cudaPointerAttributes attr{};
      return cudaPointerGetAttributes(&attr, p) == cudaSuccess && attr.type == cudaMemoryTypeDevice;
    },
    [] { return true; },  // the runtime binds device 0 at the first call
};

struct Driver {
  PFN_cuInit_v2000 init;
  PFN_cuDevicePrimaryCtxRetain_v7000 retain;
  PFN_cuCtxSetCurrent_v4000 set_current;
  PFN_cuMemAlloc_v3020 alloc;
  PFN_cuMemFree_v3020 free;
  PFN_cuMemGetInfo_v3020 info;
  PFN_cuPointerGetAttribute_v4000 attribute;
} g_driver;

bool load_driver() {
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return false;
  auto sym = [h](auto* out, const char* name) {
    *out = reinterpret_cast<std::remove_reference_t<decltype(*out)>>(dlsym(h, name));
    return *out != nullptr;
  };
  return sym(&g_driver.init, "cuInit") && sym(&g_driver.retain, "cuDevicePrimaryCtxRetain") &&
         sym(&g_driver.set_current, "cuCtxSetCurrent") && sym(&g_driver.alloc, "cuMemAlloc_v2") &&
         sym(&g_driver.free, "cuMemFree_v2") && sym(&g_driver.info, "cuMemGetInfo_v2") &&
         sym(&g_driver.attribute, "cuPointerGetAttribute") && g_driver.init(0) == CUDA_SUCCESS;
}

const Api kDriver = {
    [](void** p, size_t n) {
      CUdeviceptr d = 0;
      if (g_driver.alloc(&d, n) != CUDA_SUCCESS) return false;
      *p = reinterpret_cast<void*>(d);
      return true;
    },
    [](void* p) { return g_driver.free(reinterpret_cast<CUdeviceptr>(p)) == CUDA_SUCCESS; },
    [](size_t* free) {
      size_t total = 0;
      return g_driver.info(free, &total) == CUDA_SUCCESS;
    },
    [](void* p) {
      unsigned type = 0;
      return g_driver.attribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                reinterpret_cast<CUdeviceptr>(p)) == CUDA_SUCCESS &&
             type == CU_MEMORYTYPE_DEVICE;
    },
    [] {
      CUcontext ctx = nullptr;
      return g_driver.retain(&ctx, 0) == CUDA_SUCCESS && g_driver.set_current(ctx) == CUDA_SUCCESS;
    },
};

// One allocating thread: small (packed) and large (whole pages) blocks, each freed 256
// allocations later, so that simcuda's tables are large. The queries in between hold simcuda's
// lock without a system call, so that forks often find it taken.
void churn(const Api* api, int id) {
  if (!api->bind()) g_failures.fetch_add(1);
  const size_t sizes[] = {512, 64 * 1024, 3 * kMiB};
  constexpr unsigned kLive = 256;
  void* live[kLive] = {};
  for (unsigned i = static_cast<unsigned>(id); !g_stop.load(std::memory_order_relaxed); ++i) {
    void*& slot = live[i % kLive];
    if (slot != nullptr && !api->free(slot)) g_failures.fetch_add(1);
    slot = nullptr;
    if (!api->alloc(&slot, sizes[i % 3])) {
      g_failures.fetch_add(1);
      continue;
    }
    static_cast<unsigned char*>(slot)[0] = 1;
    for (unsigned q = 0; q < 16; ++q) {
      size_t free = 0;
      void* p = live[(i + q * 17) % kLive];
      if ((p != nullptr && !api->is_device(p)) || !api->free_bytes(&free)) g_failures.fetch_add(1);
    }
  }
  for (void* p : live)
    if (p != nullptr && !api->free(p)) g_failures.fetch_add(1);
}

// The child of a fork: its own allocation must be charged and returned exactly, and a block the
// parent allocated before the fork is a private copy that the child can read and free.
[[noreturn]] void child(const Api& api, unsigned char* inherited) {
  size_t free0 = 0, free1 = 0, free2 = 0;
  if (!api.free_bytes(&free0)) std::_Exit(10);
  void* p = nullptr;
  if (!api.alloc(&p, 3 * kMiB)) std::_Exit(11);
  std::memset(p, 0x5a, 3 * kMiB);
  if (!api.free_bytes(&free1) || free0 - free1 != 4 * kMiB) std::_Exit(12);
  if (!api.free(p)) std::_Exit(13);
  if (!api.free_bytes(&free2) || free2 != free0) std::_Exit(14);
  if (inherited[0] != 0xab || inherited[kMiB - 1] != 0xab) std::_Exit(15);
  inherited[0] = 0xcd;  // copy-on-write: the parent must still read 0xab
  if (!api.free(inherited)) std::_Exit(16);
  std::exit(0);  // a normal exit: static destructors and atexit handlers run in the child
}

// A child's few calls take milliseconds; a deadlock never ends. 10 s was once too short under
// ASan on a 2-core machine with four builds beside it (its exit runs LeakSanitizer).
constexpr int kChildSeconds = 30;

// Waits for pid up to `seconds`; kills it on timeout. Returns its wait status, or -1 on timeout.
int wait_for(pid_t pid, int seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return status;
}

int fork_mode(const Api& api, int forks) {
  if (!api.bind()) return 1;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(churn, &api, t);
  int result = 0;
  for (int i = 0; i < forks && result == 0; ++i) {
    void* inherited = nullptr;
    if (!api.alloc(&inherited, kMiB)) {
      std::fprintf(stderr, "process_model: the allocation before fork %d failed\n", i);
      result = 1;
      break;
    }
    std::memset(inherited, 0xab, kMiB);
    std::this_thread::sleep_for(std::chrono::microseconds(200 + 37 * i));  // vary the fork point
    pid_t pid = fork();
    if (pid == 0) {
      g_forked_child = true;
      child(api, static_cast<unsigned char*>(inherited));
    }
    int status = pid < 0 ? 0 : wait_for(pid, kChildSeconds);
    if (pid < 0) {
      std::fprintf(stderr, "process_model: fork %d failed: %s\n", i, std::strerror(errno));
      result = 1;
    } else if (status == -1) {
      std::fprintf(stderr, "process_model: child of fork %d hung (killed after %d s)\n", i,
                   kChildSeconds);
      result = 1;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "process_model: child of fork %d ended with %s %d\n", i,
                   WIFEXITED(status) ? "status" : "signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      result = 1;
    } else if (static_cast<unsigned char*>(inherited)[0] != 0xab) {
      std::fprintf(stderr, "process_model: the child's write reached the parent (fork %d)\n", i);
      result = 1;
    }
    if (!api.free(inherited)) result = 1;
  }
  g_stop = true;
  for (auto& t : threads) t.join();
  if (g_failures.load() != 0) {
    std::fprintf(stderr, "process_model: %ld allocation calls failed in the parent\n",
                 g_failures.load());
    result = 1;
  }
  return result;
}

int thread_exit_mode(int code) {
  g_exiting_from_thread = 1;
  if (cudaFree(nullptr) != cudaSuccess) return 1;
  for (int t = 0; t < kThreads; ++t) std::thread(churn, &kRuntime, t).detach();
  std::thread([code] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::exit(code);
  }).detach();
  for (;;) pause();
}

}  // namespace

// LeakSanitizer's check at exit stops every thread with ptrace; with 4 threads mapping and
// unmapping memory as it runs, its tracer can crash (ASan stage). A process that exits with
// threads running holds their memory anyway: this mode has no leak to look for. Nor has a forked
// child (g_forked_child).
extern "C" __attribute__((visibility("default"))) int __lsan_is_turned_off() {
  return g_exiting_from_thread.load() || g_forked_child ? 1 : 0;
}

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "fork") == 0)
    return fork_mode(kRuntime, std::atoi(argv[2]));
  if (argc == 3 && std::strcmp(argv[1], "driver-fork") == 0) {
    if (!load_driver()) {
      std::fprintf(stderr, "process_model: cannot load simcuda's libcuda.so.1 and run cuInit\n");
      return 1;
    }
    return fork_mode(kDriver, std::atoi(argv[2]));
  }
  if (argc == 3 && std::strcmp(argv[1], "thread-exit") == 0)
    return thread_exit_mode(std::atoi(argv[2]));
  std::fprintf(stderr, "usage: %s fork <n> | driver-fork <n> | thread-exit <status>\n", argv[0]);
  return 2;
}
