// The simulated runtime as a real program sees it: this file is compiled and linked against the
// CUDA 13 toolkit's own libcudart.so and runs with LD_LIBRARY_PATH=<build>/simcuda-lib.
// Environment (CMakeLists.txt): SIMCUDA_MEMORY=1GiB, SIMCUDA_DEVICES=2.
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
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

TEST(Runtime, FreeNullInitialisesAndSucceeds) { EXPECT_EQ(cudaFree(nullptr), cudaSuccess); }

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

}  // namespace
