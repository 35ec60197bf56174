// The program the interposition tests run under LD_PRELOAD=libgpumem.so on simcuda. Each
// subcommand reaches CUDA one particular way and does a known, fixed set of allocations, so the
// test (interpose_test.cpp) can check the trace's exact content. Exit status 0 = all calls
// returned what they should; anything else names the failed call on stderr.
//
// Built against the real CUDA 13 headers, linked to the real libcudart.so.13 and the driver stub
// (SONAME libcuda.so.1): at run time LD_LIBRARY_PATH puts simcuda's libraries first.
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "expect_code.h"
#include "gpumem/gpumem.h"
#include "vmm_prop.h"

namespace {

int g_failures = 0;
const char* const kProgram = "interpose_prog";

#define CHECK_RT(call)                                                                        \
  do {                                                                                        \
    cudaError_t e_ = (call);                                                                  \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "interpose_prog: %s failed: %d (line %d)\n", #call, e_, __LINE__); \
      ++g_failures;                                                                           \
    }                                                                                         \
  } while (0)
#define CHECK_CU(call)                                                                        \
  do {                                                                                        \
    CUresult e_ = (call);                                                                     \
    if (e_ != CUDA_SUCCESS) {                                                                 \
      std::fprintf(stderr, "interpose_prog: %s failed: %d (line %d)\n", #call, e_, __LINE__); \
      ++g_failures;                                                                           \
    }                                                                                         \
  } while (0)

void init_driver() {
  CHECK_CU(cuInit(0));
  CUdevice dev;
  CHECK_CU(cuDeviceGet(&dev, 0));
  CUcontext ctx;
  CHECK_CU(cuDevicePrimaryCtxRetain(&ctx, dev));
  CHECK_CU(cuCtxSetCurrent(ctx));
}

// The device-0 statistics of the C API on one line (nothing without the preload).
void print_stats() {
  gpumem_stats st{};
  if (!gpumem_present() || gpumem_get_stats(0, &st) != 0) return;
  std::printf("stats allocs %" PRIu64 " frees %" PRIu64 " failed %" PRIu64 " allocated %" PRIu64
              " peak_allocated %" PRIu64 " reserved %" PRIu64 " peak_reserved %" PRIu64
              " largest_free %" PRIu64 " limit %" PRIu64 "\n",
              st.alloc_count, st.free_count, st.failed_count, st.allocated_bytes,
              st.peak_allocated_bytes, st.reserved_bytes, st.peak_reserved_bytes,
              st.largest_free_block_bytes, st.limit_bytes);
}

constexpr size_t kMiB = size_t{1} << 20;

// One allocation API family: allocate into *out, free, and the API's out-of-memory code.
struct Family {
  std::function<int(CUdeviceptr*, size_t)> alloc;
  std::function<int(CUdeviceptr)> release;
  int oom;
};

bool family_for(const std::string& name, Family* f) {
  const int rt_oom = cudaErrorMemoryAllocation, cu_oom = CUDA_ERROR_OUT_OF_MEMORY;
  if (name == "runtime") {
    *f = {[](CUdeviceptr* p, size_t n) {
            return static_cast<int>(cudaMalloc(reinterpret_cast<void**>(p), n));
          },
          [](CUdeviceptr p) { return static_cast<int>(cudaFree(reinterpret_cast<void*>(p))); },
          rt_oom};
    return true;
  }
  if (name == "managed") {
    *f = {[](CUdeviceptr* p, size_t n) {
            return static_cast<int>(
                cudaMallocManaged(reinterpret_cast<void**>(p), n, cudaMemAttachGlobal));
          },
          [](CUdeviceptr p) { return static_cast<int>(cudaFree(reinterpret_cast<void*>(p))); },
          rt_oom};
    return true;
  }
  if (name == "async_runtime") {
    *f = {[](CUdeviceptr* p, size_t n) {
            return static_cast<int>(cudaMallocAsync(reinterpret_cast<void**>(p), n, nullptr));
          },
          [](CUdeviceptr p) {
            const int e = cudaFreeAsync(reinterpret_cast<void*>(p), nullptr);
            return e != 0 ? e : static_cast<int>(cudaStreamSynchronize(nullptr));
          },
          rt_oom};
    return true;
  }
  init_driver();
  if (name == "driver") {
    *f = {[](CUdeviceptr* p, size_t n) { return static_cast<int>(cuMemAlloc(p, n)); },
          [](CUdeviceptr p) { return static_cast<int>(cuMemFree(p)); }, cu_oom};
    return true;
  }
  if (name == "async_driver") {
    *f = {[](CUdeviceptr* p, size_t n) { return static_cast<int>(cuMemAllocAsync(p, n, nullptr)); },
          [](CUdeviceptr p) { return static_cast<int>(cuMemFreeAsync(p, nullptr)); }, cu_oom};
    return true;
  }
  if (name == "pool_driver") {
    static CUmemoryPool pool;
    if (cuDeviceGetDefaultMemPool(&pool, 0) != CUDA_SUCCESS) return false;
    *f = {[](CUdeviceptr* p, size_t n) {
            return static_cast<int>(cuMemAllocFromPoolAsync(p, n, pool, nullptr));
          },
          [](CUdeviceptr p) { return static_cast<int>(cuMemFreeAsync(p, nullptr)); }, cu_oom};
    return true;
  }
  if (name == "dlsym") {
    void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) return false;
    static auto alloc = reinterpret_cast<decltype(&cuMemAlloc_v2)>(dlsym(h, "cuMemAlloc_v2"));
    static auto mfree = reinterpret_cast<decltype(&cuMemFree_v2)>(dlsym(h, "cuMemFree_v2"));
    if (alloc == nullptr || mfree == nullptr) return false;
    *f = {[](CUdeviceptr* p, size_t n) { return static_cast<int>(alloc(p, n)); },
          [](CUdeviceptr p) { return static_cast<int>(mfree(p)); }, cu_oom};
    return true;
  }
  if (name == "resolver") {
    void* fn = nullptr;
    CUdriverProcAddressQueryResult st;
    if (cuGetProcAddress("cuMemAlloc", &fn, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &st) != 0)
      return false;
    static auto alloc = reinterpret_cast<decltype(&cuMemAlloc_v2)>(fn);
    if (cuGetProcAddress("cuMemFree", &fn, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &st) != 0)
      return false;
    static auto mfree = reinterpret_cast<decltype(&cuMemFree_v2)>(fn);
    *f = {[](CUdeviceptr* p, size_t n) { return static_cast<int>(alloc(p, n)); },
          [](CUdeviceptr p) { return static_cast<int>(mfree(p)); }, cu_oom};
    return true;
  }
  if (name == "vmm") {
    *f = {[](CUdeviceptr* p, size_t n) {
            CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
            CUmemGenericAllocationHandle h = 0;
            const int e = cuMemCreate(&h, n, &prop, 0);
            *p = h;
            return e;
          },
          [](CUdeviceptr h) { return static_cast<int>(cuMemRelease(h)); }, cu_oom};
    return true;
  }
  return false;
}

// cap FAMILY, under GPUMEM_LIMIT=8MiB: 6 MiB fits, 4 MiB more is refused with the family's own
// out-of-memory code, and fits again once the 6 MiB are freed.
int cap(const std::string& name) {
  Family f;
  if (!family_for(name, &f)) return std::fprintf(stderr, "no family %s\n", name.c_str()), 1;
  CUdeviceptr a = 0, b = 0, c = 0;
  EXPECT_CODE(f.alloc(&a, 6 * kMiB), 0);
  EXPECT_CODE(f.alloc(&b, 4 * kMiB), f.oom);
  EXPECT_CODE(f.release(a), 0);
  EXPECT_CODE(f.alloc(&c, 4 * kMiB), 0);
  EXPECT_CODE(f.release(c), 0);
  return g_failures;
}

// The TensorFlow way of sizing itself: the driver through dlopen/dlsym, cuMemGetInfo_v2, then
// regions of 2, 4, 8 ... MiB until one fails. Prints what it saw.
int tensorflow_style() {
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return 1;
#define BIND(name) auto name = reinterpret_cast<decltype(&::name)>(dlsym(h, #name))
  BIND(cuInit);
  BIND(cuDeviceGet);
  BIND(cuDevicePrimaryCtxRetain);
  BIND(cuCtxSetCurrent);
  BIND(cuMemGetInfo_v2);
  BIND(cuMemAlloc_v2);
#undef BIND
  if (!cuInit || !cuDeviceGet || !cuDevicePrimaryCtxRetain || !cuCtxSetCurrent ||
      !cuMemGetInfo_v2 || !cuMemAlloc_v2)
    return 1;
  CUdevice dev;
  CUcontext ctx;
  CHECK_CU(cuInit(0));
  CHECK_CU(cuDeviceGet(&dev, 0));
  CHECK_CU(cuDevicePrimaryCtxRetain(&ctx, dev));
  CHECK_CU(cuCtxSetCurrent(ctx));
  size_t free_b = 0, total_b = 0;
  CHECK_CU(cuMemGetInfo_v2(&free_b, &total_b));
  uint64_t sum = 0;
  size_t region = 2 * kMiB;
  int code = 0;
  for (; region <= total_b * 2; region *= 2) {
    CUdeviceptr p = 0;
    code = cuMemAlloc_v2(&p, region);
    if (code != CUDA_SUCCESS) break;
    sum += region;
  }
  std::printf("total %zu free %zu sum %" PRIu64 " failed_at %zu code %d\n", total_b, free_b, sum,
              region, code);
  return g_failures;
}

// meminfo MIB: holds MIB MiB from cudaMalloc, then prints what the three capacity queries say.
int meminfo(size_t mib) {
  void* p = nullptr;
  CHECK_RT(cudaMalloc(&p, mib * kMiB));
  init_driver();
  size_t f = 0, t = 0;
  CHECK_RT(cudaMemGetInfo(&f, &t));
  std::printf("runtime %zu %zu\n", f, t);
  CHECK_CU(cuMemGetInfo(&f, &t));
  std::printf("driver %zu %zu\n", f, t);
  CHECK_CU(cuDeviceTotalMem(&t, 0));
  std::printf("total %zu\n", t);
  EXPECT_CODE(cudaMemGetInfo(nullptr, &t), cudaErrorInvalidValue);
  EXPECT_CODE(cuMemGetInfo(&f, nullptr), CUDA_ERROR_INVALID_VALUE);
  EXPECT_CODE(cuDeviceTotalMem(nullptr, 0), CUDA_ERROR_INVALID_VALUE);
  CHECK_RT(cudaFree(p));
  return g_failures;
}

// pool: under GPUMEM_POOL=growth. Reuse of a cudaFree'd block, pointer queries and IPC refusal on
// a pooled block, a double free refused, then gpumem_empty_cache.
int pool_behaviour() {
  const size_t n = 1000000;  // two fill a 2 MiB small segment (blocks of 1000448 bytes)
  void* a = nullptr;
  void* b = nullptr;
  void* c = nullptr;
  CHECK_RT(cudaMalloc(&a, n));
  CHECK_RT(cudaMalloc(&c, n));
  CHECK_RT(cudaFree(a));
  CHECK_RT(cudaMalloc(&b, n));  // the pool synchronizes rather than grows, then reuses a's block
  std::printf("reused %d\n", a == b ? 1 : 0);
  CHECK_RT(cudaFree(c));
  init_driver();
  char* inside = static_cast<char*>(b) + 100;
  CUdeviceptr base = 0;
  size_t size = 0;
  CHECK_CU(cuMemGetAddressRange(&base, &size, reinterpret_cast<CUdeviceptr>(inside)));
  std::printf("range %d %zu\n", base == reinterpret_cast<CUdeviceptr>(b) ? 1 : 0, size);
  cudaPointerAttributes attr{};
  CHECK_RT(cudaPointerGetAttributes(&attr, inside));
  std::printf("attributes type %d device %d\n", static_cast<int>(attr.type), attr.device);
  cudaIpcMemHandle_t rt_handle;
  EXPECT_CODE(cudaIpcGetMemHandle(&rt_handle, b), cudaErrorInvalidValue);
  CUipcMemHandle cu_handle;
  EXPECT_CODE(cuIpcGetMemHandle(&cu_handle, reinterpret_cast<CUdeviceptr>(b)),
              CUDA_ERROR_INVALID_VALUE);
  CHECK_RT(cudaFree(b));
  EXPECT_CODE(cudaFree(b), cudaErrorInvalidValue);  // a double free never reaches CUDA's free
  std::printf("released %" PRIu64 "\n", gpumem_empty_cache(0));
  print_stats();
  return g_failures;
}

// retry: 12 MiB allocated and freed (cached), then 24 MiB: on a device (or under a limit) that
// cannot hold both, the pool releases its empty segment and asks again. Prints the second code.
int retry() {
  void* a = nullptr;
  void* b = nullptr;
  CHECK_RT(cudaMalloc(&a, 12 * kMiB));
  CHECK_RT(cudaFree(a));
  const int e = cudaMalloc(&b, 24 * kMiB);
  std::printf("second %d\n", e);
  if (e == cudaSuccess) CHECK_RT(cudaFree(b));
  print_stats();
  return g_failures;
}

// fixed MIB: 1 MiB, then MIB MiB (expected out of memory in a smaller fixed pool).
int fixed(size_t mib) {
  void* a = nullptr;
  void* b = nullptr;
  CHECK_RT(cudaMalloc(&a, kMiB));
  const int e = cudaMalloc(&b, mib * kMiB);
  std::printf("second %d\n", e);
  if (e == cudaSuccess) CHECK_RT(cudaFree(b));
  CHECK_RT(cudaFree(a));
  print_stats();
  return g_failures;
}

// cudaMalloc 1 MiB + 3 MiB, cudaFree both; cudaFree(0) first (no event).
int runtime_basic() {
  CHECK_RT(cudaFree(nullptr));
  void* a = nullptr;
  void* b = nullptr;
  CHECK_RT(cudaMalloc(&a, 1 << 20));
  CHECK_RT(cudaMalloc(&b, 3 << 20));
  CHECK_RT(cudaFree(a));
  CHECK_RT(cudaFree(b));
  return g_failures;
}

// The rest of the runtime family, one call each.
int runtime_family() {
  cudaStream_t s;
  CHECK_RT(cudaStreamCreate(&s));
  void* p = nullptr;
  CHECK_RT(cudaMallocAsync(&p, 4096, s));
  CHECK_RT(cudaFreeAsync(p, s));
  cudaMemPool_t pool;
  CHECK_RT(cudaDeviceGetDefaultMemPool(&pool, 0));
  CHECK_RT(cudaMallocFromPoolAsync(&p, 8192, pool, s));
  CHECK_RT(cudaFreeAsync(p, s));
  CHECK_RT(cudaStreamSynchronize(s));
  CHECK_RT(cudaMallocManaged(&p, 16384, cudaMemAttachGlobal));
  CHECK_RT(cudaFree(p));
  size_t pitch = 0;
  CHECK_RT(cudaMallocPitch(&p, &pitch, 100, 10));  // records 1000 bytes asked for
  CHECK_RT(cudaFree(p));
  cudaPitchedPtr pp{};
  CHECK_RT(cudaMalloc3D(&pp, cudaExtent{64, 4, 2}));  // 512 bytes asked for
  CHECK_RT(cudaFree(pp.ptr));
  CHECK_RT(cudaMallocHost(&p, 1000));
  CHECK_RT(cudaFreeHost(p));
  CHECK_RT(cudaHostAlloc(&p, 2000, cudaHostAllocDefault));
  CHECK_RT(cudaFreeHost(p));
  size_t free_b = 0, total_b = 0;
  CHECK_RT(cudaMemGetInfo(&free_b, &total_b));
  CHECK_RT(cudaStreamDestroy(s));
  return g_failures;
}

// Driver bound at link time: cuMemAlloc_v2 2 MiB, cuMemAllocPitch_v2, managed, cuMemGetInfo_v2,
// cuDeviceTotalMem_v2.
int driver_direct() {
  init_driver();
  CUdeviceptr d = 0;
  CHECK_CU(cuMemAlloc(&d, 2 << 20));
  CHECK_CU(cuMemFree(d));
  size_t pitch = 0;
  CHECK_CU(cuMemAllocPitch(&d, &pitch, 256, 4, 4));  // 1024 bytes asked for
  CHECK_CU(cuMemFree(d));
  CHECK_CU(cuMemAllocManaged(&d, 4096, CU_MEM_ATTACH_GLOBAL));
  CHECK_CU(cuMemFree(d));
  size_t f = 0, t = 0;
  CHECK_CU(cuMemGetInfo(&f, &t));
  CHECK_CU(cuDeviceTotalMem(&t, 0));
  return g_failures;
}

// The TensorFlow/JAX way: dlopen the driver privately and look every function up by name.
int driver_dlsym() {
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return std::fprintf(stderr, "dlopen libcuda.so.1: %s\n", dlerror()), 1;
  auto init = reinterpret_cast<decltype(&cuInit)>(dlsym(h, "cuInit"));
  auto alloc = reinterpret_cast<decltype(&cuMemAlloc_v2)>(dlsym(h, "cuMemAlloc_v2"));
  auto mfree = reinterpret_cast<decltype(&cuMemFree_v2)>(dlsym(h, "cuMemFree_v2"));
  if (!init || !alloc || !mfree) return std::fprintf(stderr, "dlsym failed\n"), 1;
  // A name that is not wrapped, and a prefix of a wrapped one, come back untouched.
  if (dlsym(h, "cuMemAlloc_v2_nonexistent") != nullptr) ++g_failures;
  init_driver();
  CUdeviceptr d = 0;
  CHECK_CU(alloc(&d, 5 << 20));
  CHECK_CU(mfree(d));
  return g_failures;
}

// Through cuGetProcAddress_v2 (the CUDA 12/13 runtime's way), per-thread-default-stream too.
int driver_resolver() {
  init_driver();
  void* fn = nullptr;
  CUdriverProcAddressQueryResult st;
  CHECK_CU(cuGetProcAddress("cuMemAlloc", &fn, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &st));
  auto alloc = reinterpret_cast<decltype(&cuMemAlloc_v2)>(fn);
  CHECK_CU(cuGetProcAddress("cuMemFree", &fn, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &st));
  auto mfree = reinterpret_cast<decltype(&cuMemFree_v2)>(fn);
  CHECK_CU(cuGetProcAddress("cuMemAllocAsync", &fn, 13000,
                            CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &st));
  auto alloc_async = reinterpret_cast<decltype(&cuMemAllocAsync)>(fn);
  CHECK_CU(cuGetProcAddress("cuMemFreeAsync", &fn, 13000,
                            CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &st));
  auto free_async = reinterpret_cast<decltype(&cuMemFreeAsync)>(fn);
  if (!alloc || !mfree || !alloc_async || !free_async)
    return std::fprintf(stderr, "resolve failed\n"), 1;
  CUdeviceptr d = 0;
  CHECK_CU(alloc(&d, 6 << 20));
  CHECK_CU(mfree(d));
  CHECK_CU(alloc_async(&d, 7 << 20, nullptr));
  CHECK_CU(free_async(d, nullptr));
  CHECK_CU(cuCtxSynchronize());
  return g_failures;
}

// Through the runtime's cudaGetDriverEntryPointByVersion.
int entry_point() {
  CHECK_RT(cudaFree(nullptr));
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult st;
  CHECK_RT(cudaGetDriverEntryPointByVersion("cuMemAlloc", &fn, 13000, cudaEnableDefault, &st));
  auto alloc = reinterpret_cast<decltype(&cuMemAlloc_v2)>(fn);
  CHECK_RT(cudaGetDriverEntryPointByVersion("cuMemFree", &fn, 13000, cudaEnableDefault, &st));
  auto mfree = reinterpret_cast<decltype(&cuMemFree_v2)>(fn);
  if (!alloc || !mfree) return std::fprintf(stderr, "entry point failed\n"), 1;
  CUdeviceptr d = 0;
  CHECK_CU(alloc(&d, 9 << 20));
  CHECK_CU(mfree(d));
  return g_failures;
}

// Stream-ordered driver allocations: the stream's pool and an explicitly named pool, trim.
int async_pools() {
  init_driver();
  CUstream s;
  CHECK_CU(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr d = 0;
  CHECK_CU(cuMemAllocAsync(&d, 1 << 16, s));
  CHECK_CU(cuMemFreeAsync(d, s));
  CUmemoryPool pool;
  CHECK_CU(cuDeviceGetDefaultMemPool(&pool, 0));
  CHECK_CU(cuMemAllocFromPoolAsync(&d, 1 << 17, pool, s));
  CHECK_CU(cuMemFreeAsync(d, s));
  CHECK_CU(cuStreamSynchronize(s));
  CHECK_CU(cuMemPoolTrimTo(pool, 0));
  CHECK_CU(cuStreamDestroy(s));
  return g_failures;
}

// Virtual memory management: create 2 MiB physical, reserve, map, unmap, release.
int vmm() {
  init_driver();
  CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
  size_t gran = 0;
  CHECK_CU(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
  if (gran == 0) gran = 2 << 20;
  CUmemGenericAllocationHandle h = 0;
  CHECK_CU(cuMemCreate(&h, gran, &prop, 0));
  CUdeviceptr va = 0;
  CHECK_CU(cuMemAddressReserve(&va, gran, 0, 0, 0));
  CHECK_CU(cuMemMap(va, gran, 0, h, 0));
  CHECK_CU(cuMemUnmap(va, gran));
  CHECK_CU(cuMemAddressFree(va, gran));
  CHECK_CU(cuMemRelease(h));
  // A location that is not a device must not crash the hook (the driver may refuse it).
  CUmemAllocationProp host = prop;
  host.location.type = CU_MEM_LOCATION_TYPE_HOST;
  CUmemGenericAllocationHandle h2 = 0;
  if (cuMemCreate(&h2, gran, &host, 0) == CUDA_SUCCESS) cuMemRelease(h2);
  std::printf("granularity %zu\n", gran);
  return g_failures;
}

// NVIDIA's VMM sample and NCCL's way: each 2 MiB handle is released right after it is mapped, so
// the memory lives on through its mapping until cuMemUnmap. Maps three of them (6 MiB), printing
// each cuMemCreate's code ("create 0 0 create 1 0 create 2 2" when the third is out of memory),
// prints gpumem's device-0 statistics while they are mapped, unmaps them, then creates and
// releases 2 MiB once more (the unmaps gave the memory back).
int vmm_release_mapped() {
  init_driver();
  const CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
  constexpr size_t kChunk = 2 << 20;
  CUdeviceptr va = 0;
  CHECK_CU(cuMemAddressReserve(&va, 3 * kChunk, 0, 0, 0));
  int mapped = 0;
  for (int i = 0; i < 3; ++i) {
    CUmemGenericAllocationHandle h = 0;
    const CUresult e = cuMemCreate(&h, kChunk, &prop, 0);
    std::printf("%screate %d %d", i == 0 ? "" : " ", i, static_cast<int>(e));
    if (e != CUDA_SUCCESS) break;
    CHECK_CU(cuMemMap(va + i * kChunk, kChunk, 0, h, 0));
    CHECK_CU(cuMemRelease(h));  // still mapped: the memory stays
    ++mapped;
  }
  std::printf("\n");
  print_stats();
  for (int i = 0; i < mapped; ++i) CHECK_CU(cuMemUnmap(va + i * kChunk, kChunk));
  CHECK_CU(cuMemAddressFree(va, 3 * kChunk));
  CUmemGenericAllocationHandle again = 0;
  CHECK_CU(cuMemCreate(&again, kChunk, &prop, 0));
  CHECK_CU(cuMemRelease(again));
  print_stats();
  return g_failures;
}

// 80 handles of 2 MiB mapped end to end and released, then one cuMemUnmap of the whole range:
// more handles go with one call than the hook's batch of 64. Prints the statistics before and
// after the unmap.
int vmm_one_unmap_many() {
  init_driver();
  const CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
  constexpr size_t kChunk = 2 << 20;
  constexpr int kHandles = 80;
  CUdeviceptr va = 0;
  CHECK_CU(cuMemAddressReserve(&va, kHandles * kChunk, 0, 0, 0));
  for (int i = 0; i < kHandles; ++i) {
    CUmemGenericAllocationHandle h = 0;
    CHECK_CU(cuMemCreate(&h, kChunk, &prop, 0));
    CHECK_CU(cuMemMap(va + i * kChunk, kChunk, 0, h, 0));
    CHECK_CU(cuMemRelease(h));
  }
  print_stats();
  CHECK_CU(cuMemUnmap(va, kHandles * kChunk));
  CHECK_CU(cuMemAddressFree(va, kHandles * kChunk));
  print_stats();
  return g_failures;
}

// NCCL's ncclCuMemAlloc / ncclCuMemFree: create, map and keep the handle; to free, retain the
// handle from the address, release that reference, unmap, release the creator's reference.
int vmm_nccl() {
  init_driver();
  const CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
  constexpr size_t kSize = 4 << 20;
  CUmemGenericAllocationHandle h = 0;
  CHECK_CU(cuMemCreate(&h, kSize, &prop, 0));
  CUdeviceptr va = 0;
  CHECK_CU(cuMemAddressReserve(&va, kSize, 0, 0, 0));
  CHECK_CU(cuMemMap(va, kSize, 0, h, 0));
  CUmemAccessDesc access{};
  access.location = prop.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  CHECK_CU(cuMemSetAccess(va, kSize, &access, 1));
  CUmemGenericAllocationHandle retained = 0;
  CHECK_CU(cuMemRetainAllocationHandle(&retained, reinterpret_cast<void*>(va)));
  if (retained != h) ++g_failures;
  CHECK_CU(cuMemRelease(retained));
  print_stats();  // still live: one reference and the mapping
  CHECK_CU(cuMemUnmap(va, kSize));
  print_stats();  // still live: the creator's reference
  CHECK_CU(cuMemRelease(h));
  CHECK_CU(cuMemAddressFree(va, kSize));
  print_stats();
  return g_failures;
}

// The driver's pinned host memory on every lookup path: cuMemAllocHost_v2 and cuMemHostAlloc,
// each freed with cuMemFreeHost. Sizes 1, 2 KiB (direct), 3, 4 KiB (dlsym), 5, 6 KiB (resolver).
int driver_pinned() {
  init_driver();
  using AllocHost = CUresult (*)(void**, size_t);
  using HostAlloc = CUresult (*)(void**, size_t, unsigned int);
  using FreeHost = CUresult (*)(void*);
  struct Path {
    AllocHost alloc_host;
    HostAlloc host_alloc;
    FreeHost free_host;
  };
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) return std::fprintf(stderr, "dlopen libcuda.so.1: %s\n", dlerror()), 1;
  void* fn[3] = {};
  CUdriverProcAddressQueryResult st;
  CHECK_CU(cuGetProcAddress("cuMemAllocHost", &fn[0], 13000, CU_GET_PROC_ADDRESS_DEFAULT, &st));
  CHECK_CU(cuGetProcAddress("cuMemHostAlloc", &fn[1], 13000, CU_GET_PROC_ADDRESS_DEFAULT, &st));
  CHECK_CU(cuGetProcAddress("cuMemFreeHost", &fn[2], 13000, CU_GET_PROC_ADDRESS_DEFAULT, &st));
  const Path paths[3] = {
      {&cuMemAllocHost_v2, &cuMemHostAlloc, &cuMemFreeHost},
      {reinterpret_cast<AllocHost>(dlsym(lib, "cuMemAllocHost_v2")),
       reinterpret_cast<HostAlloc>(dlsym(lib, "cuMemHostAlloc")),
       reinterpret_cast<FreeHost>(dlsym(lib, "cuMemFreeHost"))},
      {reinterpret_cast<AllocHost>(fn[0]), reinterpret_cast<HostAlloc>(fn[1]),
       reinterpret_cast<FreeHost>(fn[2])},
  };
  size_t kib = 1;
  for (const Path& p : paths) {
    if (!p.alloc_host || !p.host_alloc || !p.free_host) return std::fprintf(stderr, "lookup\n"), 1;
    void* a = nullptr;
    void* b = nullptr;
    CHECK_CU(p.alloc_host(&a, (kib++) << 10));
    CHECK_CU(p.host_alloc(&b, (kib++) << 10, CU_MEMHOSTALLOC_PORTABLE));
    CHECK_CU(p.free_host(a));
    CHECK_CU(p.free_host(b));
  }
  return g_failures;
}

// NULL out-parameters, unknown frees, zero-size requests.
int misuse() {
  init_driver();
  EXPECT_CODE(cudaMalloc(nullptr, 64), cudaErrorInvalidValue);
  EXPECT_CODE(cuMemAlloc(nullptr, 64), CUDA_ERROR_INVALID_VALUE);
  EXPECT_CODE(cuMemGetInfo(nullptr, nullptr), CUDA_ERROR_INVALID_VALUE);
  EXPECT_CODE(cudaMemGetInfo(nullptr, nullptr), cudaErrorInvalidValue);
  int local = 0;
  (void)cudaFree(&local);  // not a device pointer: forwarded, anomaly
  (void)cuMemFree(reinterpret_cast<CUdeviceptr>(&local));
  CHECK_CU(cuMemFree(0));  // no event
  return g_failures;
}

// Phase markers through the public C API.
int marks() {
  GPUMEM_MARK_BEGIN("epoch");
  void* p = nullptr;
  CHECK_RT(cudaMalloc(&p, 1024));
  GPUMEM_MARK("checkpoint");
  CHECK_RT(cudaFree(p));
  GPUMEM_MARK_END();
  gpumem_stats st{};
  if (gpumem_present() && gpumem_get_stats(0, &st) == 0 && st.alloc_count != 1) ++g_failures;
  return g_failures;
}

// threads [n_threads] [iterations]: each thread allocates 256 * (i % 13 + 1) bytes per iteration,
// alternating cudaMalloc (even i) and cuMemAlloc_v2 (odd i), keeping at most 8 live and freeing
// the oldest first (with the matching free); everything is freed at the end.
int threads(int n_threads, int iterations) {
  init_driver();
  CHECK_RT(cudaFree(nullptr));
  std::atomic<int> failures{0};
  auto body = [&]() {
    CUcontext ctx;
    cuDevicePrimaryCtxRetain(&ctx, 0);
    cuCtxSetCurrent(ctx);
    struct Live {
      uint64_t ptr;
      bool runtime;
    };
    Live window[8];
    int head = 0, count = 0;
    auto release = [&](const Live& l) {
      if (l.runtime ? cudaFree(reinterpret_cast<void*>(l.ptr)) != cudaSuccess
                    : cuMemFree(static_cast<CUdeviceptr>(l.ptr)) != CUDA_SUCCESS)
        failures.fetch_add(1);
    };
    for (int i = 0; i < iterations; ++i) {
      if (count == 8) {
        release(window[head]);
        head = (head + 1) % 8;
        --count;
      }
      const size_t bytes = 256u * static_cast<size_t>(i % 13 + 1);
      Live l{0, i % 2 == 0};
      if (l.runtime) {
        void* p = nullptr;
        if (cudaMalloc(&p, bytes) != cudaSuccess) failures.fetch_add(1);
        l.ptr = reinterpret_cast<uint64_t>(p);
      } else {
        CUdeviceptr d = 0;
        if (cuMemAlloc(&d, bytes) != CUDA_SUCCESS) failures.fetch_add(1);
        l.ptr = d;
      }
      window[(head + count) % 8] = l;
      ++count;
    }
    while (count > 0) {
      release(window[head]);
      head = (head + 1) % 8;
      --count;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < n_threads; ++t) pool.emplace_back(body);
  for (auto& t : pool) t.join();
  print_stats();
  return failures.load();
}

// progress FILE: cudaMalloc 4 KiB forever (freeing every other one), publishing in FILE (8 bytes)
// how many calls have returned, until killed.
int progress(const char* path) {
  int fd = ::open(path, O_RDWR);
  if (fd < 0) return std::perror(path), 1;
  auto* counter = static_cast<std::atomic<uint64_t>*>(
      mmap(nullptr, 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (counter == MAP_FAILED) return std::perror("mmap"), 1;
  CHECK_RT(cudaFree(nullptr));
  for (uint64_t i = 1;; ++i) {
    void* p = nullptr;
    if (cudaMalloc(&p, 4096) != cudaSuccess) return 1;
    if (i % 2 == 0) cudaFree(p);  // keeps the simulated device from filling up
    counter->store(i, std::memory_order_release);
  }
}

// fork: the parent allocates 1 MiB, forks; the child asks for 2 MiB and exits; the parent
// allocates 3 MiB after the child is done. The simulated device serves the child; a real one
// refuses CUDA in a forked child (the child's trace then holds an alloc_failed). Prints
// "child PID OK|FAILED".
int fork_test() {
  void* p = nullptr;
  CHECK_RT(cudaMalloc(&p, 1 << 20));
  pid_t child = fork();
  if (child == 0) {
    // The simulated device works in a child (a real one would need a fresh process).
    void* q = nullptr;
    const bool ok = cudaMalloc(&q, 2 << 20) == cudaSuccess;
    std::printf("child %d %s\n", getpid(), ok ? "OK" : "FAILED");
    std::fflush(stdout);
    _exit(0);  // no exit handlers: the preload's _exit closes the child's trace
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++g_failures;
  CHECK_RT(cudaMalloc(&p, 3 << 20));
  return g_failures;
}

// One allocation of MIB MiB, freed: a worker, or the exec'd child of `tree`.
int worker(unsigned long mib) {
  void* p = nullptr;
  CHECK_RT(cudaMalloc(&p, mib << 20));
  CHECK_RT(cudaFree(p));
  return g_failures;
}

// A launcher's process tree (issue 27, items 6 and 7): 1 MiB here; two forked workers (2 and 3
// MiB) that end with _exit(0), as multiprocessing and DataLoader workers do; then a forked child
// that execs `interpose_prog worker 4`. Prints nothing; exit status 0 when every child did.
int tree() {
  void* p = nullptr;
  CHECK_RT(cudaMalloc(&p, 1 << 20));
  pid_t kids[3];
  for (int i = 0; i < 2; ++i) {
    kids[i] = fork();
    if (kids[i] == 0) _exit(worker(2 + i));
  }
  kids[2] = fork();
  if (kids[2] == 0) {
    execl("/proc/self/exe", "interpose_prog", "worker", "4", static_cast<char*>(nullptr));
    _exit(127);
  }
  for (pid_t k : kids) {
    int status = 0;
    waitpid(k, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++g_failures;
  }
  CHECK_RT(cudaFree(p));
  return g_failures;
}

}  // namespace

// Stacks: two allocations from each of two call sites (exported, so dladdr can name them).
__attribute__((noinline)) void interpose_site_a(void** p) {
  CHECK_RT(cudaMalloc(p, 111));
}
__attribute__((noinline)) void interpose_site_b(void** p) {
  CHECK_RT(cudaMalloc(p, 222));
}

namespace {
int stacks() {
  void* p[4];
  volatile int two = 2;  // keeps the loops rolled: one call instruction, one return address each
  for (int i = 0; i < two; ++i) interpose_site_a(&p[i]);
  for (int i = 2; i < 2 + two; ++i) interpose_site_b(&p[i]);
  for (void* q : p) CHECK_RT(cudaFree(q));
  return g_failures;
}

// Page faults of a growth pool walking fresh block addresses: PAIRS cudaMalloc/cudaFree pairs of
// 256 B .. 4 KiB after one warm pair. Prints "faults N" (minor faults during the pairs).
int pool_faults(int pairs) {
  void* p = nullptr;
  CHECK_RT(cudaMalloc(&p, 256));
  CHECK_RT(cudaFree(p));
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  for (int i = 0; i < pairs; ++i) {
    CHECK_RT(cudaMalloc(&p, 256u * static_cast<unsigned>(i % 16 + 1)));
    CHECK_RT(cudaFree(p));
  }
  getrusage(RUSAGE_SELF, &after);
  std::printf("faults %ld\n", after.ru_minflt - before.ru_minflt);
  return g_failures;
}

// The first CUDA call of the process (it opens the trace) from a thread with a stack of `kib`
// KiB (16: PTHREAD_STACK_MIN), as a worker pool with small stacks makes it: one cudaMalloc and
// its cudaFree. Prints the two codes.
int small_stack(size_t kib) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (pthread_attr_setstacksize(&attr, kib * 1024) != 0) return 3;
  static int codes[2] = {-1, -1};
  pthread_t thread;
  const int made = pthread_create(
      &thread, &attr,
      [](void*) -> void* {
        void* p = nullptr;
        codes[0] = cudaMalloc(&p, 4096);
        codes[1] = codes[0] == cudaSuccess ? cudaFree(p) : -1;
        return nullptr;
      },
      nullptr);
  pthread_attr_destroy(&attr);
  if (made != 0 || pthread_join(thread, nullptr) != 0) return 4;
  std::printf("%d %d\n", codes[0], codes[1]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: interpose_prog runtime|runtime_family|driver|dlsym|resolver|entry_point|"
                 "async|tree|worker "
                 "MIB|vmm|vmm_release_mapped|vmm_nccl|vmm_one_unmap_many|driver_pinned|misuse|"
                 "marks|threads N "
                 "ITER|progress FILE|fork|stacks|cap FAMILY|tf|"
                 "meminfo MIB|pool|pool_faults PAIRS|retry|fixed MIB|small_stack KIB\n");
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "runtime") return runtime_basic();
  if (cmd == "small_stack" && argc == 3) return small_stack(std::strtoul(argv[2], nullptr, 10));
  if (cmd == "runtime_family") return runtime_family();
  if (cmd == "driver") return driver_direct();
  if (cmd == "dlsym") return driver_dlsym();
  if (cmd == "resolver") return driver_resolver();
  if (cmd == "entry_point") return entry_point();
  if (cmd == "async") return async_pools();
  if (cmd == "vmm") return vmm();
  if (cmd == "vmm_release_mapped") return vmm_release_mapped();
  if (cmd == "vmm_nccl") return vmm_nccl();
  if (cmd == "vmm_one_unmap_many") return vmm_one_unmap_many();
  if (cmd == "driver_pinned") return driver_pinned();
  if (cmd == "misuse") return misuse();
  if (cmd == "marks") return marks();
  if (cmd == "threads" && argc == 4) return threads(std::atoi(argv[2]), std::atoi(argv[3]));
  if (cmd == "progress" && argc == 3) return progress(argv[2]);
  if (cmd == "fork") return fork_test();
  if (cmd == "tree") return tree();
  if (cmd == "worker" && argc == 3) return worker(std::strtoul(argv[2], nullptr, 10));
  if (cmd == "stacks") return stacks();
  if (cmd == "cap" && argc == 3) return cap(argv[2]);
  if (cmd == "tf") return tensorflow_style();
  if (cmd == "meminfo" && argc == 3) return meminfo(std::strtoull(argv[2], nullptr, 10));
  if (cmd == "pool") return pool_behaviour();
  if (cmd == "pool_faults" && argc == 3) return pool_faults(std::atoi(argv[2]));
  if (cmd == "retry") return retry();
  if (cmd == "fixed" && argc == 3) return fixed(std::strtoull(argv[2], nullptr, 10));
  std::fprintf(stderr, "interpose_prog: unknown subcommand '%s'\n", cmd.c_str());
  return 2;
}
