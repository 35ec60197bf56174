// The program the NVML and IPC tests run under LD_PRELOAD=libgpumem.so on simcuda (and, without
// the preload, on simcuda alone). Each subcommand prints what CUDA and NVML answered, one
// "name value..." line per answer, so the test compares exact numbers; exit status 0 = every call
// returned what it should, anything else names the failed call on stderr.
//
// Built twice: nvml_ipc_prog links no NVML (it dlopens libnvidia-ml.so.1 as pynvml does), and
// nvml_linked_prog (NVML_LINKED) links simcuda's libnvidia-ml.so.1 and calls NVML by symbol.
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "gpumem/nvml_api.h"

namespace {

int g_failures = 0;

#define EXPECT_CODE(call, code)                                                                 \
  do {                                                                                          \
    const int e_ = static_cast<int>(call);                                                      \
    if (e_ != static_cast<int>(code)) {                                                         \
      std::fprintf(stderr, "nvml_ipc_prog: %s returned %d, expected %d (line %d)\n", #call, e_, \
                   static_cast<int>(code), __LINE__);                                           \
      ++g_failures;                                                                             \
    }                                                                                           \
  } while (0)

constexpr size_t kMiB = 1 << 20;

// NVML's entry points, by symbol (linked) or from dlsym on a dlopen'ed handle (pynvml, nvitop).
struct NvmlApi {
  decltype(&::nvmlInit_v2) init = nullptr;
  decltype(&::nvmlShutdown) shutdown = nullptr;
  decltype(&::nvmlDeviceGetHandleByIndex_v2) handle = nullptr;
  decltype(&::nvmlDeviceGetMemoryInfo) memory = nullptr;
  decltype(&::nvmlDeviceGetMemoryInfo_v2) memory_v2 = nullptr;
};

NvmlApi nvml_api() {
  NvmlApi a;
#ifdef NVML_LINKED
  a = {&nvmlInit_v2, &nvmlShutdown, &nvmlDeviceGetHandleByIndex_v2, &nvmlDeviceGetMemoryInfo,
       &nvmlDeviceGetMemoryInfo_v2};
#else
  void* h = dlopen("libnvidia-ml.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (h == nullptr) {
    std::fprintf(stderr, "nvml_ipc_prog: dlopen(libnvidia-ml.so.1): %s\n", dlerror());
    std::exit(3);
  }
  a.init = reinterpret_cast<decltype(a.init)>(dlsym(h, "nvmlInit_v2"));
  a.shutdown = reinterpret_cast<decltype(a.shutdown)>(dlsym(h, "nvmlShutdown"));
  a.handle = reinterpret_cast<decltype(a.handle)>(dlsym(h, "nvmlDeviceGetHandleByIndex_v2"));
  a.memory = reinterpret_cast<decltype(a.memory)>(dlsym(h, "nvmlDeviceGetMemoryInfo"));
  a.memory_v2 = reinterpret_cast<decltype(a.memory_v2)>(dlsym(h, "nvmlDeviceGetMemoryInfo_v2"));
#endif
  if (!a.init || !a.shutdown || !a.handle || !a.memory || !a.memory_v2) {
    std::fprintf(stderr, "nvml_ipc_prog: an NVML entry point is missing\n");
    std::exit(3);
  }
  return a;
}

bool nvml_loaded() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find("libnvidia-ml") != std::string::npos) return true;
  return false;
}

// Capacity through the runtime, the driver and NVML (v1 and v2), with 6 MiB allocated.
int capacity() {
  void* p = nullptr;
  EXPECT_CODE(cudaMalloc(&p, 6 * kMiB), cudaSuccess);
  size_t f = 0, t = 0;
  EXPECT_CODE(cudaMemGetInfo(&f, &t), cudaSuccess);
  std::printf("runtime %zu %zu\n", f, t);
  EXPECT_CODE(cuMemGetInfo(&f, &t), CUDA_SUCCESS);  // the runtime's context is current
  std::printf("driver %zu %zu\n", f, t);
  size_t dt = 0;
  EXPECT_CODE(cuDeviceTotalMem(&dt, 0), CUDA_SUCCESS);
  std::printf("device_total %zu\n", dt);
  NvmlApi nvml = nvml_api();
  EXPECT_CODE(nvml.init(), NVML_SUCCESS);
  nvmlDevice_t dev = nullptr;
  EXPECT_CODE(nvml.handle(0, &dev), NVML_SUCCESS);
  nvmlMemory_t m{};
  EXPECT_CODE(nvml.memory(dev, &m), NVML_SUCCESS);
  std::printf("nvml %llu %llu %llu\n", m.free, m.total, m.used);
  nvmlMemory_v2_t m2{};
  m2.version = nvmlMemory_v2;
  EXPECT_CODE(nvml.memory_v2(dev, &m2), NVML_SUCCESS);
  std::printf("nvml_v2 %llu %llu %llu %llu\n", m2.free, m2.total, m2.used, m2.reserved);
  // NVML's own answers to misuse pass through: no version, a NULL struct.
  nvmlMemory_v2_t unversioned{};
  EXPECT_CODE(nvml.memory_v2(dev, &unversioned), NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
  EXPECT_CODE(nvml.memory(dev, nullptr), NVML_ERROR_INVALID_ARGUMENT);
  EXPECT_CODE(nvml.shutdown(), NVML_SUCCESS);
  EXPECT_CODE(nvml.memory(dev, &m), NVML_ERROR_UNINITIALIZED);
  EXPECT_CODE(cudaFree(p), cudaSuccess);
  return g_failures;
}

// CUDA only: NVML must stay unloaded (the preload never loads it).
int cuda_only() {
  void* p = nullptr;
  EXPECT_CODE(cudaMalloc(&p, kMiB), cudaSuccess);
  size_t f = 0, t = 0;
  EXPECT_CODE(cudaMemGetInfo(&f, &t), cudaSuccess);
  EXPECT_CODE(cudaFree(p), cudaSuccess);
  std::printf("nvml_loaded %d\n", nvml_loaded() ? 1 : 0);
  return g_failures;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "capacity") return capacity();
  if (cmd == "cuda_only") return cuda_only();
  std::fprintf(stderr, "usage: nvml_ipc_prog capacity|cuda_only\n");
  return 2;
}
