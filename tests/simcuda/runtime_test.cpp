// The simulated runtime as a real program sees it: this file is compiled and linked against the
// CUDA 13 toolkit's own libcudart.so and runs with LD_LIBRARY_PATH=<build>/simcuda-lib.
// Environment (CMakeLists.txt): SIMCUDA_MEMORY=1GiB, SIMCUDA_DEVICES=2.
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kMiB = 1ull << 20;
constexpr size_t kCapacity = 1024 * kMiB;

size_t free_bytes() {
  size_t free = 0, total = 0;
  EXPECT_EQ(cudaMemGetInfo(&free, &total), cudaSuccess);
  EXPECT_EQ(total, kCapacity);
  return free;
}

TEST(Runtime, LoadedLibcudartIsSimcuda) {
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(&cudaMalloc), &info), 0);
  EXPECT_NE(std::string(info.dli_fname).find("simcuda-lib/libcudart.so.13"), std::string::npos)
      << info.dli_fname;
  auto is_sim = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "simcuda_is_simulated"));
  ASSERT_NE(is_sim, nullptr);
  EXPECT_EQ(is_sim(), 1);
}

TEST(Runtime, DevicesAndProperties) {
  int count = 0;
  ASSERT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
  EXPECT_EQ(count, 2);
  cudaDeviceProp prop{};
  ASSERT_EQ(cudaGetDeviceProperties(&prop, 1), cudaSuccess);
  EXPECT_STREQ(prop.name, "gpumem simulated device");
  EXPECT_EQ(prop.totalGlobalMem, kCapacity);
  EXPECT_EQ(cudaGetDeviceProperties(&prop, 2), cudaErrorInvalidDevice);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidDevice);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  int version = 0;
  EXPECT_EQ(cudaRuntimeGetVersion(&version), cudaSuccess);
  EXPECT_EQ(version, 13000);
  EXPECT_EQ(cudaDriverGetVersion(&version), cudaSuccess);
  EXPECT_EQ(version, 13000);
}

TEST(Runtime, FreeNullInitialisesAndSucceeds) {
  EXPECT_EQ(cudaFree(nullptr), cudaSuccess);
}

TEST(Runtime, LargeAllocationsTakeWhole2MiBPages) {
  size_t before = free_bytes();
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 3 * kMiB + 1), cudaSuccess);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 256, 0u);
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);
  void* q = nullptr;
  ASSERT_EQ(cudaMalloc(&q, 1 * kMiB), cudaSuccess);  // 1 MiB is "large": a whole page
  EXPECT_EQ(before - free_bytes(), 6 * kMiB);
  // The memory is usable by host code.
  std::memset(p, 0xab, 3 * kMiB + 1);
  EXPECT_EQ(static_cast<unsigned char*>(p)[3 * kMiB], 0xab);
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_EQ(cudaFree(q), cudaSuccess);
  EXPECT_EQ(free_bytes(), before);
}

TEST(Runtime, SmallAllocationsArePackedInto2MiBPages) {
  size_t before = free_bytes();
  std::vector<void*> ptrs;
  // 4096 allocations of 500 B round to 512 B each: exactly 1 small page of 2 MiB.
  for (int i = 0; i < 4096; ++i) {
    void* p = nullptr;
    ASSERT_EQ(cudaMalloc(&p, 500), cudaSuccess);
    ptrs.push_back(p);
    if (i == 0) {
      EXPECT_EQ(before - free_bytes(), 2 * kMiB);
    }
  }
  EXPECT_EQ(before - free_bytes(), 2 * kMiB);
  void* extra = nullptr;
  ASSERT_EQ(cudaMalloc(&extra, 1), cudaSuccess);  // the 4097th needs a second small page
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);
  ASSERT_EQ(cudaFree(extra), cudaSuccess);
  for (void* p : ptrs) ASSERT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_EQ(free_bytes(), before);
}

TEST(Runtime, OutOfMemoryChangesNothing) {
  size_t before = free_bytes();
  void* p = reinterpret_cast<void*>(0x1234);
  EXPECT_EQ(cudaMalloc(&p, kCapacity + 1), cudaErrorMemoryAllocation);
  EXPECT_EQ(p, reinterpret_cast<void*>(0x1234));
  EXPECT_EQ(cudaGetLastError(), cudaErrorMemoryAllocation);
  EXPECT_EQ(free_bytes(), before);
  // Exactly the whole device fits when nothing else is allocated.
  ASSERT_EQ(before, kCapacity);
  ASSERT_EQ(cudaMalloc(&p, kCapacity), cudaSuccess);
  EXPECT_EQ(free_bytes(), 0u);
  void* q = nullptr;
  EXPECT_EQ(cudaMalloc(&q, 1), cudaErrorMemoryAllocation);
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_EQ(free_bytes(), kCapacity);
}

TEST(Runtime, InvalidFreesAreRejected) {
  int on_stack = 0;
  EXPECT_EQ(cudaFree(&on_stack), cudaErrorInvalidValue);
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 4096), cudaSuccess);
  EXPECT_EQ(cudaFree(static_cast<char*>(p) + 256), cudaErrorInvalidValue);  // interior
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_EQ(cudaFree(p), cudaErrorInvalidValue);  // double free
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFreeHost(&on_stack), cudaErrorInvalidValue);
}

TEST(Runtime, NullOutParametersAreInvalidValues) {
  EXPECT_EQ(cudaMalloc(nullptr, 16), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemGetInfo(nullptr, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetDeviceCount(nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaStreamCreate(nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaEventCreate(nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaPointerGetAttributes(nullptr, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMallocAsync(nullptr, 16, nullptr), cudaErrorInvalidValue);
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, 0), cudaSuccess);
  EXPECT_EQ(p, nullptr);
}

TEST(Runtime, PitchedAnd3DAllocations) {
  size_t before = free_bytes();
  void* p = nullptr;
  size_t pitch = 0;
  ASSERT_EQ(cudaMallocPitch(&p, &pitch, 1000, 1024), cudaSuccess);
  EXPECT_EQ(pitch, 1024u);
  EXPECT_EQ(before - free_bytes(), 2 * kMiB);  // 1024 B * 1024 rows = 1 MiB: a whole page
  cudaPitchedPtr pp{};
  ASSERT_EQ(cudaMalloc3D(&pp, cudaExtent{100, 4, 2}), cudaSuccess);
  EXPECT_EQ(pp.pitch, 512u);
  EXPECT_EQ(pp.xsize, 100u);
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);  // 512 * 8 = 4 KiB: one small page
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_EQ(cudaFree(pp.ptr), cudaSuccess);
  EXPECT_EQ(free_bytes(), before);
}

TEST(Runtime, HostAndManagedMemoryAndPointerAttributes) {
  size_t before = free_bytes();
  void *host = nullptr, *host2 = nullptr, *managed = nullptr, *dev = nullptr;
  ASSERT_EQ(cudaMallocHost(&host, 4 * kMiB), cudaSuccess);
  ASSERT_EQ(cudaHostAlloc(&host2, 100, cudaHostAllocPortable), cudaSuccess);
  EXPECT_EQ(free_bytes(), before);  // pinned host memory is not device memory
  ASSERT_EQ(cudaMallocManaged(&managed, 2 * kMiB, cudaMemAttachGlobal), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dev, 256), cudaSuccess);
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);
  cudaPointerAttributes a{};
  ASSERT_EQ(cudaPointerGetAttributes(&a, static_cast<char*>(dev) + 10), cudaSuccess);
  EXPECT_EQ(a.type, cudaMemoryTypeDevice);
  EXPECT_EQ(a.device, 0);
  ASSERT_EQ(cudaPointerGetAttributes(&a, managed), cudaSuccess);
  EXPECT_EQ(a.type, cudaMemoryTypeManaged);
  ASSERT_EQ(cudaPointerGetAttributes(&a, host), cudaSuccess);
  EXPECT_EQ(a.type, cudaMemoryTypeHost);
  int local = 0;
  ASSERT_EQ(cudaPointerGetAttributes(&a, &local), cudaSuccess);
  EXPECT_EQ(a.type, cudaMemoryTypeUnregistered);
  // Copies and fills are real.
  ASSERT_EQ(cudaMemset(dev, 7, 256), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(host, dev, 256, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(static_cast<unsigned char*>(host)[255], 7);
  ASSERT_EQ(cudaMemsetAsync(dev, 9, 16, nullptr), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(host, dev, 16, cudaMemcpyDefault, nullptr), cudaSuccess);
  EXPECT_EQ(static_cast<unsigned char*>(host)[15], 9);
  EXPECT_EQ(cudaMemcpy(host, dev, 16, static_cast<cudaMemcpyKind>(17)),
            cudaErrorInvalidMemcpyDirection);
  EXPECT_EQ(cudaFreeHost(host), cudaSuccess);
  EXPECT_EQ(cudaFreeHost(host2), cudaSuccess);
  EXPECT_EQ(cudaFree(managed), cudaSuccess);
  EXPECT_EQ(cudaFree(dev), cudaSuccess);
  EXPECT_EQ(free_bytes(), before);
}

TEST(Runtime, DevicesHaveSeparateAccounting) {
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  int device = -1;
  EXPECT_EQ(cudaGetDevice(&device), cudaSuccess);
  EXPECT_EQ(device, 1);
  size_t before1 = free_bytes();
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 10 * kMiB), cudaSuccess);
  EXPECT_EQ(before1 - free_bytes(), 10 * kMiB);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  EXPECT_EQ(free_bytes(), kCapacity);
  EXPECT_EQ(cudaFree(p), cudaSuccess);  // a free finds the allocation's own device
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  EXPECT_EQ(free_bytes(), before1);
  EXPECT_EQ(cudaSetDevice(2), cudaErrorInvalidDevice);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
}

TEST(Runtime, StreamOrderedAllocationAndPoolAttributes) {
  size_t before = free_bytes();
  cudaMemPool_t pool = nullptr;
  ASSERT_EQ(cudaDeviceGetDefaultMemPool(&pool, 0), cudaSuccess);
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  uint64_t keep = 64 * kMiB;
  ASSERT_EQ(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), cudaSuccess);
  void *a = nullptr, *b = nullptr;
  ASSERT_EQ(cudaMallocAsync(&a, 5 * kMiB, s), cudaSuccess);
  ASSERT_EQ(cudaMallocFromPoolAsync(&b, 1 * kMiB, pool, s), cudaSuccess);
  auto attr = [&](cudaMemPoolAttr which) {
    uint64_t v = 0;
    EXPECT_EQ(cudaMemPoolGetAttribute(pool, which, &v), cudaSuccess);
    return v;
  };
  EXPECT_EQ(attr(cudaMemPoolAttrUsedMemCurrent), 6 * kMiB);
  EXPECT_EQ(attr(cudaMemPoolAttrReservedMemCurrent), 6 * kMiB);
  EXPECT_EQ(before - free_bytes(), 6 * kMiB);
  ASSERT_EQ(cudaFreeAsync(a, s), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(s), cudaSuccess);
  EXPECT_EQ(attr(cudaMemPoolAttrUsedMemCurrent), 1 * kMiB);
  EXPECT_EQ(attr(cudaMemPoolAttrReservedMemCurrent), 6 * kMiB);  // below the threshold: kept
  // Reuse of the cached memory costs nothing more.
  ASSERT_EQ(cudaMallocAsync(&a, 4 * kMiB, s), cudaSuccess);
  EXPECT_EQ(before - free_bytes(), 6 * kMiB);
  ASSERT_EQ(cudaFreeAsync(a, s), cudaSuccess);
  ASSERT_EQ(cudaFree(b), cudaSuccess);  // cudaFree also frees stream-ordered memory
  EXPECT_EQ(attr(cudaMemPoolAttrUsedMemCurrent), 0u);
  EXPECT_EQ(attr(cudaMemPoolAttrUsedMemHigh), 6 * kMiB);
  ASSERT_EQ(cudaMemPoolTrimTo(pool, 0), cudaSuccess);
  EXPECT_EQ(attr(cudaMemPoolAttrReservedMemCurrent), 0u);
  EXPECT_EQ(free_bytes(), before);
  // The _ptsz variant, as a program built with --default-stream per-thread calls it.
  auto alloc_ptsz = reinterpret_cast<cudaError_t (*)(void**, size_t, cudaStream_t)>(
      dlsym(RTLD_DEFAULT, "cudaMallocAsync_ptsz"));
  auto free_ptsz = reinterpret_cast<cudaError_t (*)(void*, cudaStream_t)>(
      dlsym(RTLD_DEFAULT, "cudaFreeAsync_ptsz"));
  ASSERT_NE(alloc_ptsz, nullptr);
  ASSERT_NE(free_ptsz, nullptr);
  ASSERT_EQ(alloc_ptsz(&a, 3 * kMiB, cudaStreamPerThread), cudaSuccess);
  EXPECT_EQ(attr(cudaMemPoolAttrUsedMemCurrent), 3 * kMiB);
  ASSERT_EQ(free_ptsz(a, cudaStreamPerThread), cudaSuccess);
  uint64_t zero = 0;
  ASSERT_EQ(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &zero), cudaSuccess);
  EXPECT_EQ(free_bytes(), before);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
}

// cudaStreamGetDevice answers the device a stream was created on, whichever is current; the
// default streams belong to the current device. cudaMemPoolGetAccess: only a pool's own device
// reaches it.
TEST(Runtime, StreamsAndPoolsKnowTheirDevice) {
  cudaStream_t on1 = nullptr;
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  ASSERT_EQ(cudaStreamCreate(&on1), cudaSuccess);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  int dev = -1;
  EXPECT_EQ(cudaStreamGetDevice(on1, &dev), cudaSuccess);
  EXPECT_EQ(dev, 1);
  auto get_ptsz = reinterpret_cast<cudaError_t (*)(cudaStream_t, int*)>(
      dlsym(RTLD_DEFAULT, "cudaStreamGetDevice_ptsz"));
  ASSERT_NE(get_ptsz, nullptr);
  dev = -1;
  EXPECT_EQ(get_ptsz(on1, &dev), cudaSuccess);
  EXPECT_EQ(dev, 1);
  for (cudaStream_t s :
       {static_cast<cudaStream_t>(nullptr), cudaStreamLegacy, cudaStreamPerThread}) {
    dev = -1;
    EXPECT_EQ(cudaStreamGetDevice(s, &dev), cudaSuccess);
    EXPECT_EQ(dev, 0);
  }
  EXPECT_EQ(cudaStreamGetDevice(on1, nullptr), cudaErrorInvalidValue);
  ASSERT_EQ(cudaStreamDestroy(on1), cudaSuccess);
  dev = -1;
  EXPECT_EQ(cudaStreamGetDevice(on1, &dev), cudaErrorInvalidResourceHandle);
  EXPECT_EQ(dev, -1);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidResourceHandle);

  cudaMemPool_t pool1 = nullptr;
  ASSERT_EQ(cudaDeviceGetDefaultMemPool(&pool1, 1), cudaSuccess);
  cudaMemLocation where{};
  where.type = cudaMemLocationTypeDevice;
  cudaMemAccessFlags flags = cudaMemAccessFlagsProtRead;
  where.id = 1;
  EXPECT_EQ(cudaMemPoolGetAccess(&flags, pool1, &where), cudaSuccess);
  EXPECT_EQ(flags, cudaMemAccessFlagsProtReadWrite);
  where.id = 0;
  EXPECT_EQ(cudaMemPoolGetAccess(&flags, pool1, &where), cudaSuccess);
  EXPECT_EQ(flags, cudaMemAccessFlagsProtNone);
  where.id = 2;
  EXPECT_EQ(cudaMemPoolGetAccess(&flags, pool1, &where), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
}

TEST(Runtime, EventsMeasureElapsedTime) {
  cudaEvent_t start = nullptr, stop = nullptr;
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&stop, cudaEventBlockingSync), cudaSuccess);
  ASSERT_EQ(cudaEventRecord(start, nullptr), cudaSuccess);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(cudaEventRecord(stop, nullptr), cudaSuccess);
  ASSERT_EQ(cudaEventSynchronize(stop), cudaSuccess);
  EXPECT_EQ(cudaEventQuery(stop), cudaSuccess);
  float ms = 0;
  ASSERT_EQ(cudaEventElapsedTime(&ms, start, stop), cudaSuccess);
  EXPECT_GE(ms, 19.0f);
  EXPECT_LT(ms, 2000.0f);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(start), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(stop), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(stop), cudaErrorInvalidResourceHandle);
}

TEST(Runtime, DriverEntryPointsGoThroughTheDriverResolver) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult status{};
  ASSERT_EQ(cudaGetDriverEntryPointByVersion("cuMemAlloc", &fn, 12000, cudaEnableDefault, &status),
            cudaSuccess);
  EXPECT_EQ(status, cudaDriverEntryPointSuccess);
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(driver, nullptr);  // the runtime loaded it
  EXPECT_EQ(fn, dlsym(driver, "cuMemAlloc_v2"));
  // The function works: allocate through the driver, free through the runtime.
  using Alloc = int (*)(unsigned long long*, size_t);
  unsigned long long p = 0;
  size_t before = free_bytes();
  ASSERT_EQ(reinterpret_cast<Alloc>(fn)(&p, 2 * kMiB), 0);
  EXPECT_EQ(before - free_bytes(), 2 * kMiB);
  EXPECT_EQ(cudaFree(reinterpret_cast<void*>(p)), cudaSuccess);
  ASSERT_EQ(cudaGetDriverEntryPointByVersion("cuMemFreeAsync", &fn, 12000,
                                             cudaEnablePerThreadDefaultStream, &status),
            cudaSuccess);
  EXPECT_EQ(fn, dlsym(driver, "cuMemFreeAsync_ptsz"));
  // Not found: success, a null pointer and the status saying why.
  ASSERT_EQ(cudaGetDriverEntryPointByVersion("cuNotAFunction", &fn, 13000, 0, &status),
            cudaSuccess);
  EXPECT_EQ(fn, nullptr);
  EXPECT_EQ(status, cudaDriverEntryPointSymbolNotFound);
  ASSERT_EQ(cudaGetDriverEntryPointByVersion("cuMemAllocAsync", &fn, 11000, 0, &status),
            cudaSuccess);
  EXPECT_EQ(status, cudaDriverEntryPointVersionNotSufficent);
  EXPECT_EQ(cudaGetDriverEntryPointByVersion("cuMemAlloc", nullptr, 13000, 0, &status),
            cudaErrorInvalidValue);
  dlclose(driver);
}

TEST(Runtime, EverythingOutsideTheSurfaceIsNotSupported) {
  int value = -1;
  EXPECT_EQ(cudaDeviceGetAttribute(&value, cudaDevAttrWarpSize, 0), cudaErrorNotSupported);
  EXPECT_EQ(cudaGetLastError(), cudaErrorNotSupported);
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaGraphCreate(&graph, 0), cudaErrorNotSupported);
}

TEST(Runtime, ErrorNamesAndStrings) {
  EXPECT_STREQ(cudaGetErrorName(cudaErrorMemoryAllocation), "cudaErrorMemoryAllocation");
  EXPECT_STREQ(cudaGetErrorString(cudaErrorMemoryAllocation), "out of memory");
  EXPECT_STREQ(cudaGetErrorName(cudaErrorInvalidValue), "cudaErrorInvalidValue");
  EXPECT_STREQ(cudaGetErrorName(static_cast<cudaError_t>(12345)), "unrecognized error code");
  // The peer-access and access-check codes simcuda returns are named too.
  EXPECT_STREQ(cudaGetErrorName(cudaErrorPeerAccessAlreadyEnabled),
               "cudaErrorPeerAccessAlreadyEnabled");
  EXPECT_STREQ(cudaGetErrorName(cudaErrorPeerAccessNotEnabled), "cudaErrorPeerAccessNotEnabled");
  EXPECT_STREQ(cudaGetErrorName(cudaErrorPeerAccessUnsupported), "cudaErrorPeerAccessUnsupported");
  EXPECT_STREQ(cudaGetErrorName(cudaErrorIllegalAddress), "cudaErrorIllegalAddress");
  EXPECT_STREQ(cudaGetErrorString(cudaErrorPeerAccessNotEnabled), "peer access has not been enabled");
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, kCapacity * 2), cudaErrorMemoryAllocation);
  EXPECT_EQ(cudaPeekAtLastError(), cudaErrorMemoryAllocation);
  EXPECT_EQ(cudaGetLastError(), cudaErrorMemoryAllocation);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

// simcuda_device_access (simcuda/src/driver/peer.cpp): what a kernel on `device` touching the
// range would meet, as a CUresult.
int device_access(int device, const void* p, size_t bytes, int write) {
  using Fn = int (*)(int, const void*, size_t, int);
  auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "simcuda_device_access"));
  EXPECT_NE(fn, nullptr);
  return fn != nullptr ? fn(device, p, bytes, write) : -1;
}
constexpr int kIllegalAddress = 700;  // CUDA_ERROR_ILLEGAL_ADDRESS

// cudaMalloc memory of device 0 is reachable from device 1 exactly while peer access from 1 to 0
// is enabled; the error codes are those of the CUDA runtime documentation.
TEST(Runtime, PeerAccessOpensAnotherDevicesAllocations) {
  int can = -1;
  ASSERT_EQ(cudaDeviceCanAccessPeer(&can, 1, 0), cudaSuccess);
  EXPECT_EQ(can, 1);
  ASSERT_EQ(cudaDeviceCanAccessPeer(&can, 0, 0), cudaSuccess);
  EXPECT_EQ(can, 0);  // a device is not its own peer
  EXPECT_EQ(cudaDeviceCanAccessPeer(&can, 0, 2), cudaErrorInvalidDevice);

  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, kMiB), cudaSuccess);
  EXPECT_EQ(device_access(0, p, kMiB, 1), 0);
  EXPECT_EQ(device_access(1, p, kMiB, 0), kIllegalAddress);

  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  EXPECT_EQ(cudaDeviceDisablePeerAccess(0), cudaErrorPeerAccessNotEnabled);
  EXPECT_EQ(cudaDeviceEnablePeerAccess(0, 1), cudaErrorInvalidValue);
  EXPECT_EQ(cudaDeviceEnablePeerAccess(1, 0), cudaErrorInvalidDevice);  // itself
  EXPECT_EQ(cudaDeviceEnablePeerAccess(7, 0), cudaErrorInvalidDevice);
  ASSERT_EQ(cudaDeviceEnablePeerAccess(0, 0), cudaSuccess);
  EXPECT_EQ(cudaDeviceEnablePeerAccess(0, 0), cudaErrorPeerAccessAlreadyEnabled);
  EXPECT_EQ(device_access(1, p, kMiB, 1), 0);
  EXPECT_EQ(device_access(1, static_cast<char*>(p) + 1, kMiB, 0), kIllegalAddress);  // past end
  // One way only: device 0 still cannot reach device 1's memory.
  void* q = nullptr;
  ASSERT_EQ(cudaMalloc(&q, kMiB), cudaSuccess);
  EXPECT_EQ(device_access(0, q, kMiB, 0), kIllegalAddress);

  ASSERT_EQ(cudaDeviceDisablePeerAccess(0), cudaSuccess);
  EXPECT_EQ(device_access(1, p, kMiB, 0), kIllegalAddress);
  EXPECT_EQ(cudaDeviceDisablePeerAccess(0), cudaErrorPeerAccessNotEnabled);
  (void)cudaGetLastError();
  EXPECT_EQ(cudaFree(q), cudaSuccess);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  EXPECT_EQ(cudaFree(p), cudaSuccess);
}

// 8 threads allocate and free a random mix of sizes; at the end the device is exactly as full as
// at the start, and every allocation held distinct, writable memory.
TEST(Runtime, EightThreadsKeepExactAccounting) {
  size_t before = free_bytes();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([t, &failures] {
      std::mt19937 rng(t);
      std::vector<std::pair<unsigned char*, size_t>> live;
      for (int i = 0; i < 400; ++i) {
        if (!live.empty() && rng() % 3 == 0) {
          auto [p, n] = live[rng() % live.size()];
          if (p[0] != static_cast<unsigned char>(t) || p[n - 1] != static_cast<unsigned char>(t))
            failures++;
          if (cudaFree(p) != cudaSuccess) failures++;
          live.erase(std::find(live.begin(), live.end(), std::make_pair(p, n)));
          continue;
        }
        // Large ones of 256 KiB to 1 MiB: the eight threads' peaks add up to about 360 MiB, so
        // however the scheduler overlaps them (a loaded machine runs them all at once) they fit
        // the 1 GiB device; with 1 to 4 MiB they added up to 1.4 GiB and failed under load.
        size_t n = (rng() % 2) ? 1 + rng() % 4096 : kMiB / 4 + rng() % (3 * kMiB / 4);
        void* p = nullptr;
        cudaError_t e = (i % 2) ? cudaMalloc(&p, n) : cudaMallocAsync(&p, n, cudaStreamPerThread);
        if (e != cudaSuccess) {
          failures++;
          continue;
        }
        auto* bytes = static_cast<unsigned char*>(p);
        bytes[0] = bytes[n - 1] = static_cast<unsigned char>(t);
        live.emplace_back(bytes, n);
      }
      for (auto [p, n] : live)
        if (cudaFree(p) != cudaSuccess) failures++;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(free_bytes(), before);
}

}  // namespace
