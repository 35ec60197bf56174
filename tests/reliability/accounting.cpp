// The program the accounting tests (accounting_test.cpp) run under LD_PRELOAD=libgpumem.so on
// simcuda: calls whose counts the trace, the report and the cap must get exactly right. Prints
// "key value" lines (return codes, addresses) and exits 0 when every call answered as expected.
//
//   accounting failed_free     cudaMalloc 32 MiB, cudaFreeHost of it (fails), cudaFree of it,
//                              cudaMalloc 48 MiB, cudaFree (run it under GPUMEM_LIMIT=64MiB)
//   accounting failed_free_held  the same, with the 48 MiB asked while the 32 MiB is held (refused
//                              under the cap), then the cudaFree
//   accounting refused         cudaMalloc 64 MiB twice (the second is refused under a 110 MiB
//                              limit), then frees; exits 0 whatever the second call answers
//   accounting double_free     a pointer freed twice by cudaFree, another twice by cuMemFree_v2,
//                              and one free of a pointer CUDA never gave out
//   accounting malloc3d        a cudaMalloc3D whose extent overflows size_t
//   accounting pitch           a cuMemAllocPitch_v2 whose width * height overflows size_t
//   accounting vmm_null_prop   cuMemCreate of 2 MiB with a NULL prop, then with device 0's
//                              (created and released)
//   accounting ipc_null        cudaIpcOpenMemHandle and cuIpcOpenMemHandle_v2 with a NULL
//                              out-parameter
//   accounting nvml_first      NVML's memory query of device 0 before CUDA is initialised, then
//                              cudaMalloc 1 MiB and cudaFree
//   accounting missing_device  cuMemCreate on device 3 (simcuda has one), then cudaMalloc 1 MiB
//   accounting retain_pool     cudaMalloc 4 MiB, NCCL's check of it: cuMemRetainAllocationHandle
//                              and cuMemRelease, twice; cudaFree (run it under
//                              GPUMEM_POOL=expandable, whose segments are cuMem memory)
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "driver_context.h"
#include "vmm_prop.h"

namespace {

constexpr size_t kMiB = size_t{1} << 20;

using reliability::init_driver;

void print(const char* key, long long value) {
  std::printf("%s %lld\n", key, value);
}
void print_address(const char* key, const void* p) {
  std::printf("%s %llu\n", key, static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(p)));
}

int failed_free() {
  void* p = nullptr;
  const cudaError_t alloc = cudaMalloc(&p, 32 * kMiB);
  print("alloc32", alloc);
  print_address("address", p);
  if (alloc != cudaSuccess) return 1;
  const cudaError_t wrong = cudaFreeHost(p);  // a device pointer: CUDA refuses it
  print("free_host", wrong);
  const cudaError_t right = cudaFree(p);
  print("free", right);
  void* q = nullptr;
  const cudaError_t alloc48 = cudaMalloc(&q, 48 * kMiB);
  print("alloc48", alloc48);
  const cudaError_t free48 = alloc48 == cudaSuccess ? cudaFree(q) : cudaSuccess;
  print("free48", free48);
  return wrong != cudaSuccess && right == cudaSuccess && alloc48 == cudaSuccess &&
                 free48 == cudaSuccess
             ? 0
             : 1;
}

// The same wrong free, but the 48 MiB comes while the 32 MiB is still held: under a 64 MiB cap it
// is refused, and a replay of the trace must fail there too.
int failed_free_held() {
  void* p = nullptr;
  if (cudaMalloc(&p, 32 * kMiB) != cudaSuccess) return 1;
  const cudaError_t wrong = cudaFreeHost(p);
  void* q = nullptr;
  const cudaError_t alloc48 = cudaMalloc(&q, 48 * kMiB);
  print("free_host", wrong);
  print("alloc48", alloc48);
  if (alloc48 == cudaSuccess) cudaFree(q);
  return wrong != cudaSuccess && cudaFree(p) == cudaSuccess ? 0 : 1;
}

int refused() {
  void* a = nullptr;
  void* b = nullptr;
  const cudaError_t first = cudaMalloc(&a, 64 * kMiB);
  const cudaError_t second = cudaMalloc(&b, 64 * kMiB);
  print("first", first);
  print("second", second);
  if (second == cudaSuccess) cudaFree(b);
  if (first == cudaSuccess) cudaFree(a);
  return first == cudaSuccess ? 0 : 1;
}

int double_free() {
  if (!init_driver()) return 1;
  void* p = nullptr;
  if (cudaMalloc(&p, 1000) != cudaSuccess) return 1;
  print_address("runtime", p);
  print("runtime_first", cudaFree(p));
  print("runtime_second", cudaFree(p));
  CUdeviceptr d = 0;
  if (cuMemAlloc(&d, 3000) != CUDA_SUCCESS) return 1;
  print_address("driver", reinterpret_cast<void*>(d));
  print("driver_first", cuMemFree(d));
  print("driver_second", cuMemFree(d));
  static int never_allocated[4];
  print_address("unknown", &never_allocated[1]);
  print("unknown_free", cudaFree(&never_allocated[1]));
  return 0;
}

int malloc3d() {
  // width * height * depth = 2^64 + 4: wraps to 4 in 64-bit arithmetic.
  const cudaExtent extent{(size_t{1} << 62) + 1, 4, 1};
  cudaPitchedPtr out{};
  const cudaError_t e = cudaMalloc3D(&out, extent);
  print("malloc3d", e);
  print_address("ptr", out.ptr);
  if (e == cudaSuccess) cudaFree(out.ptr);
  // A normal 3D allocation next to it is recorded as asked: 64 * 32 * 2 bytes.
  cudaPitchedPtr ok{};
  const cudaError_t e2 = cudaMalloc3D(&ok, cudaExtent{64, 32, 2});
  print("malloc3d_small", e2);
  if (e2 == cudaSuccess) cudaFree(ok.ptr);
  return e2 == cudaSuccess ? 0 : 1;
}

int pitch() {
  if (!init_driver()) return 1;
  // width * height = 2^64 + 4: wraps to 4 in 64-bit arithmetic.
  CUdeviceptr d = 0;
  size_t row = 0;
  const CUresult e = cuMemAllocPitch(&d, &row, (size_t{1} << 62) + 1, 4, 4);
  print("pitch", e);
  if (e == CUDA_SUCCESS) cuMemFree(d);
  // A normal one next to it is recorded as asked: 256 * 4 bytes.
  const CUresult e2 = cuMemAllocPitch(&d, &row, 256, 4, 4);
  print("pitch_small", e2);
  if (e2 == CUDA_SUCCESS) cuMemFree(d);
  return e2 == CUDA_SUCCESS ? 0 : 1;
}

// CUDA refuses a NULL prop; the program must get CUDA's code and the trace a failed allocation.
int vmm_null_prop() {
  if (!init_driver()) return 1;
  CUmemGenericAllocationHandle h = 0;
  print("null_prop", cuMemCreate(&h, 2 * kMiB, nullptr, 0));
  CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
  const CUresult e = cuMemCreate(&h, 2 * kMiB, &prop, 0);
  print("create", e);
  return e == CUDA_SUCCESS && cuMemRelease(h) == CUDA_SUCCESS ? 0 : 1;
}

// IPC opens pass a NULL out-parameter to CUDA, which refuses it; each refusal must be in the trace.
int ipc_null() {
  if (!init_driver()) return 1;
  print("runtime_open",
        cudaIpcOpenMemHandle(nullptr, cudaIpcMemHandle_t{}, cudaIpcMemLazyEnablePeerAccess));
  print("driver_open",
        cuIpcOpenMemHandle(nullptr, CUipcMemHandle{}, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS));
  return 0;
}

// NVML's query first, as a program choosing its GPU with pynvml does: CUDA is not initialised yet.
int nvml_first() {
  struct Memory {
    unsigned long long total, free, used;
  };
  void* nvml = dlopen("libnvidia-ml.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (nvml == nullptr) return 1;
  auto init = reinterpret_cast<int (*)()>(dlsym(nvml, "nvmlInit_v2"));
  auto handle =
      reinterpret_cast<int (*)(unsigned, void**)>(dlsym(nvml, "nvmlDeviceGetHandleByIndex_v2"));
  auto memory = reinterpret_cast<int (*)(void*, Memory*)>(dlsym(nvml, "nvmlDeviceGetMemoryInfo"));
  void* device = nullptr;
  Memory m{};
  if (init == nullptr || handle == nullptr || memory == nullptr || init() != 0 ||
      handle(0, &device) != 0)
    return 1;
  print("nvml", memory(device, &m));
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, kMiB);
  print("malloc", e);
  return e == cudaSuccess && cudaFree(p) == cudaSuccess ? 0 : 1;
}

int missing_device() {
  if (!init_driver()) return 1;
  CUmemAllocationProp prop = gpumem::test::device_memory_prop(3);
  CUmemGenericAllocationHandle h = 0;
  print("create", cuMemCreate(&h, 2 * kMiB, &prop, 0));
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, kMiB);
  print("malloc", e);
  return e == cudaSuccess && cudaFree(p) == cudaSuccess ? 0 : 1;
}

int retain_pool() {
  if (!init_driver()) return 1;
  void* p = nullptr;
  if (cudaMalloc(&p, 4 * kMiB) != cudaSuccess) return 1;
  for (const char* round : {"first", "second"}) {
    CUmemGenericAllocationHandle h = 0;
    const CUresult retain = cuMemRetainAllocationHandle(&h, p);
    std::printf("%s_retain %d\n", round, static_cast<int>(retain));
    if (retain == CUDA_SUCCESS)
      std::printf("%s_release %d\n", round, static_cast<int>(cuMemRelease(h)));
  }
  return cudaFree(p) == cudaSuccess ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "failed_free") return failed_free();
  if (mode == "failed_free_held") return failed_free_held();
  if (mode == "refused") return refused();
  if (mode == "double_free") return double_free();
  if (mode == "malloc3d") return malloc3d();
  if (mode == "pitch") return pitch();
  if (mode == "vmm_null_prop") return vmm_null_prop();
  if (mode == "ipc_null") return ipc_null();
  if (mode == "nvml_first") return nvml_first();
  if (mode == "missing_device") return missing_device();
  if (mode == "retain_pool") return retain_pool();
  std::fprintf(stderr,
               "usage: accounting failed_free|failed_free_held|refused|double_free|malloc3d|pitch|"
               "vmm_null_prop|ipc_null|nvml_first|missing_device|retain_pool\n");
  return 2;
}
