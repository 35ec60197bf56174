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
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gpumem/nvml_api.h"
#include "expect_code.h"

namespace {

int g_failures = 0;
const char* const kProgram = "nvml_ipc_prog";


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

// Prints NVML's v1 and v2 memory answers for `dev`: "<v1> free total used" and
// "<v2> free total used reserved".
void print_memory(const NvmlApi& nvml, nvmlDevice_t dev, const char* v1, const char* v2) {
  nvmlMemory_t m{};
  EXPECT_CODE(nvml.memory(dev, &m), NVML_SUCCESS);
  std::printf("%s %llu %llu %llu\n", v1, m.free, m.total, m.used);
  nvmlMemory_v2_t m2{};
  m2.version = nvmlMemory_v2;
  EXPECT_CODE(nvml.memory_v2(dev, &m2), NVML_SUCCESS);
  std::printf("%s %llu %llu %llu %llu\n", v2, m2.free, m2.total, m2.used, m2.reserved);
}

bool cmd_is(int argc, char** argv, const char* name) {
  return argc > 1 && std::strcmp(argv[1], name) == 0;
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
  print_memory(nvml, dev, "nvml", "nvml_v2");
  // NVML's own answers to misuse pass through: no version, a NULL struct.
  nvmlMemory_v2_t unversioned{};
  EXPECT_CODE(nvml.memory_v2(dev, &unversioned), NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
  EXPECT_CODE(nvml.memory(dev, nullptr), NVML_ERROR_INVALID_ARGUMENT);
  EXPECT_CODE(nvml.shutdown(), NVML_SUCCESS);
  nvmlMemory_t m{};
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

constexpr size_t kExported = 48 * kMiB;

std::string to_hex(const void* p, size_t n) {
  std::string s;
  char b[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", static_cast<const unsigned char*>(p)[i]);
    s += b;
  }
  return s;
}
void from_hex(const std::string& s, void* out, size_t n) {
  for (size_t i = 0; i < n && 2 * i + 1 < s.size(); ++i)
    static_cast<unsigned char*>(out)[i] =
        static_cast<unsigned char>(std::stoul(s.substr(2 * i, 2), nullptr, 16));
}

// The exporter: 48 MiB from cudaMalloc, its IPC handle, then `argv0 ipc_import <path> <handle>`
// in a new process with GPUMEM_LIMIT=<cap> (the importer's cap), waited for; its status is ours.
int ipc_export(const char* self, const std::string& path, const std::string& cap) {
  void* p = nullptr;
  EXPECT_CODE(cudaMalloc(&p, kExported), cudaSuccess);
  cudaIpcMemHandle_t h{};
  EXPECT_CODE(cudaIpcGetMemHandle(&h, p), cudaSuccess);
  // CUDA refuses a process its own handle.
  void* own = nullptr;
  EXPECT_CODE(cudaIpcOpenMemHandle(&own, h, cudaIpcMemLazyEnablePeerAccess),
              cudaErrorDeviceUninitialized);
  if (g_failures != 0) return g_failures;
  std::fflush(stdout);
  setenv("GPUMEM_LIMIT", cap.c_str(), 1);
  const std::string hex = to_hex(&h, sizeof h);
  const char* args[] = {self, "ipc_import", path.c_str(), hex.c_str(), nullptr};
  pid_t child = -1;
  if (posix_spawn(&child, self, nullptr, nullptr, const_cast<char**>(args), environ) != 0) return 4;
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_CODE(cudaFree(p), cudaSuccess);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? g_failures : 5;
}

// The importer: opens the handle through `path`, allocates 8 MiB of its own, reports the size of
// the import and what cudaMemGetInfo says, closes the import.
int ipc_import(const std::string& path, const std::string& hex) {
  cudaIpcMemHandle_t h{};
  from_hex(hex, &h, sizeof h);
  EXPECT_CODE(cudaFree(nullptr), cudaSuccess);  // the runtime's context, current for the driver
  CUipcMemHandle ch{};
  std::memcpy(&ch, &h, sizeof ch);
  using Open = CUresult (*)(CUdeviceptr*, CUipcMemHandle, unsigned int);
  using Close = CUresult (*)(CUdeviceptr);
  Open open = &cuIpcOpenMemHandle;  // cuda.h: cuIpcOpenMemHandle_v2
  Close close = &cuIpcCloseMemHandle;
  if (path == "driver_dlsym") {
    void* lib = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    open = reinterpret_cast<Open>(dlsym(lib, "cuIpcOpenMemHandle_v2"));
    close = reinterpret_cast<Close>(dlsym(lib, "cuIpcCloseMemHandle"));
  } else if (path == "driver_resolver") {
    CUdriverProcAddressQueryResult st{};
    EXPECT_CODE(
        cuGetProcAddress("cuIpcOpenMemHandle", reinterpret_cast<void**>(&open), 13000, 0, &st),
        CUDA_SUCCESS);
    EXPECT_CODE(
        cuGetProcAddress("cuIpcCloseMemHandle", reinterpret_cast<void**>(&close), 13000, 0, &st),
        CUDA_SUCCESS);
  }
  void* mine = nullptr;
  EXPECT_CODE(cudaMalloc(&mine, 8 * kMiB), cudaSuccess);
  CUdeviceptr imported = 0;
  if (path == "runtime") {
    void* p = nullptr;
    EXPECT_CODE(cudaIpcOpenMemHandle(&p, h, cudaIpcMemLazyEnablePeerAccess), cudaSuccess);
    imported = reinterpret_cast<CUdeviceptr>(p);
  } else {
    EXPECT_CODE(open(&imported, ch, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS), CUDA_SUCCESS);
  }
  CUdeviceptr base = 0;
  size_t size = 0;
  EXPECT_CODE(cuMemGetAddressRange(&base, &size, imported), CUDA_SUCCESS);
  std::printf("imported %zu\n", size);
  size_t f = 0, t = 0;
  EXPECT_CODE(cudaMemGetInfo(&f, &t), cudaSuccess);
  std::printf("importer_runtime %zu %zu\n", f, t);
  if (path == "runtime")
    EXPECT_CODE(cudaIpcCloseMemHandle(reinterpret_cast<void*>(imported)), cudaSuccess);
  else
    EXPECT_CODE(close(imported), CUDA_SUCCESS);
  EXPECT_CODE(cudaIpcCloseMemHandle(reinterpret_cast<void*>(imported)), cudaErrorInvalidValue);
  EXPECT_CODE(cudaFree(mine), cudaSuccess);
  return g_failures;
}

// NVML alone, no CUDA call (libcuda.so.1 stays unloaded): what a monitoring tool sees.
int nvml_only() {
  NvmlApi nvml = nvml_api();
  EXPECT_CODE(nvml.init(), NVML_SUCCESS);
  nvmlDevice_t dev = nullptr;
  EXPECT_CODE(nvml.handle(0, &dev), NVML_SUCCESS);
  nvmlMemory_t m{};
  EXPECT_CODE(nvml.memory(dev, &m), NVML_SUCCESS);
  std::printf("nvml %llu %llu %llu\n", m.free, m.total, m.used);
  EXPECT_CODE(nvml.shutdown(), NVML_SUCCESS);
  return g_failures;
}

// What PyTorch's NVML-based device check (PYTORCH_NVML_BASED_CUDA_CHECK=1) lets a parent do: ask
// NVML, then fork() workers that use CUDA. The NVML query must leave CUDA uninitialised here (a
// child cannot use CUDA its parent initialised); the child then initialises it and allocates, and
// so does the parent, whose NVML answer afterwards counts its 6 MiB.
int nvml_then_fork() {
  NvmlApi nvml = nvml_api();
  EXPECT_CODE(nvml.init(), NVML_SUCCESS);
  nvmlDevice_t dev = nullptr;
  EXPECT_CODE(nvml.handle(0, &dev), NVML_SUCCESS);
  print_memory(nvml, dev, "nvml_before", "nvml_v2_before");
  int count = -1;
  EXPECT_CODE(cuDeviceGetCount(&count), CUDA_ERROR_NOT_INITIALIZED);
  std::fflush(stdout);
  const pid_t child = fork();
  if (child == 0) {
    g_failures = 0;  // the child's status says whether its own CUDA worked
    EXPECT_CODE(cuInit(0), CUDA_SUCCESS);
    void* p = nullptr;
    EXPECT_CODE(cudaMalloc(&p, kMiB), cudaSuccess);
    EXPECT_CODE(cudaFree(p), cudaSuccess);
    std::_Exit(g_failures);
  }
  int status = -1;
  if (child < 0 || waitpid(child, &status, 0) != child) return 4;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "nvml_ipc_prog: the forked child's CUDA failed (status %d)\n", status);
    return 5;
  }
  void* p = nullptr;
  EXPECT_CODE(cudaMalloc(&p, 6 * kMiB), cudaSuccess);
  nvmlMemory_t m{};
  EXPECT_CODE(nvml.memory(dev, &m), NVML_SUCCESS);
  std::printf("nvml_after %llu %llu %llu\n", m.free, m.total, m.used);
  EXPECT_CODE(cudaFree(p), cudaSuccess);
  EXPECT_CODE(nvml.shutdown(), NVML_SUCCESS);
  return g_failures;
}

// Holds `mib` MiB from cudaMalloc while `argv0 rest...` runs in a new process; its status is ours.
int hold_and_run(const char* self, size_t mib, char** rest) {
  void* p = nullptr;
  EXPECT_CODE(cudaMalloc(&p, mib * kMiB), cudaSuccess);
  if (g_failures != 0) return g_failures;
  std::fflush(stdout);
  std::vector<char*> args{const_cast<char*>(self)};
  for (char** a = rest; *a != nullptr; ++a) args.push_back(*a);
  args.push_back(nullptr);
  pid_t child = -1;
  if (posix_spawn(&child, self, nullptr, nullptr, args.data(), environ) != 0) return 4;
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_CODE(cudaFree(p), cudaSuccess);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? g_failures : 5;
}

}  // namespace

int main(int argc, char** argv) {
  if (cmd_is(argc, argv, "nvml_only")) return nvml_only();
  if (cmd_is(argc, argv, "hold_and_run") && argc > 3)
    return hold_and_run(argv[0], std::strtoull(argv[2], nullptr, 10), argv + 3);
  if (cmd_is(argc, argv, "ipc_export") && argc == 4) return ipc_export(argv[0], argv[2], argv[3]);
  if (cmd_is(argc, argv, "ipc_import") && argc == 4) return ipc_import(argv[2], argv[3]);
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "capacity") return capacity();
  if (cmd == "cuda_only") return cuda_only();
  if (cmd == "nvml_then_fork") return nvml_then_fork();
  std::fprintf(stderr,
               "usage: nvml_ipc_prog capacity | cuda_only | nvml_only | nvml_then_fork | "
               "ipc_export PATH CAP | "
               "hold_and_run MIB ARGS...\n");
  return 2;
}
