// The simulated driver, reached the way TensorFlow, JAX and NCCL reach a real one:
// dlopen("libcuda.so.1") + dlsym, then cuGetProcAddress_v2 for everything else.
// Environment (CMakeLists.txt): SIMCUDA_MEMORY=256MiB, SIMCUDA_DEVICES=2. Tests run in file
// order in one process; the first one runs before cuInit.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include "vmm_prop.h"

namespace {

constexpr size_t kMiB = 1ull << 20;
constexpr size_t kCapacity = 256 * kMiB;

void* driver_handle() {
  static void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  return h;
}

template <typename Pfn>
Pfn sym(const char* name) {
  return reinterpret_cast<Pfn>(dlsym(driver_handle(), name));
}

// Resolves through the driver's own resolver at CUDA 13.0, as cudart does.
template <typename Pfn>
Pfn proc(const char* name, cuuint64_t flags = CU_GET_PROC_ADDRESS_DEFAULT, int version = 13000) {
  auto get = sym<PFN_cuGetProcAddress_v12000>("cuGetProcAddress_v2");
  void* fn = nullptr;
  CUdriverProcAddressQueryResult status{};
  if (get(name, &fn, version, flags, &status) != CUDA_SUCCESS) return nullptr;
  return reinterpret_cast<Pfn>(fn);
}

size_t free_bytes() {
  size_t free = 0, total = 0;
  EXPECT_EQ(proc<PFN_cuMemGetInfo_v3020>("cuMemGetInfo")(&free, &total), CUDA_SUCCESS);
  EXPECT_EQ(total, kCapacity);
  return free;
}

TEST(Driver, CallsBeforeCuInitFailWithNotInitialized) {
  ASSERT_NE(driver_handle(), nullptr) << dlerror();
  auto is_sim = sym<int (*)()>("simcuda_is_simulated");
  ASSERT_NE(is_sim, nullptr);
  EXPECT_EQ(is_sim(), 1);
  int count = -1;
  EXPECT_EQ(sym<PFN_cuDeviceGetCount_v2000>("cuDeviceGetCount")(&count),
            CUDA_ERROR_NOT_INITIALIZED);
  CUdeviceptr p = 0;
  EXPECT_EQ(sym<PFN_cuMemAlloc_v3020>("cuMemAlloc_v2")(&p, 4096), CUDA_ERROR_NOT_INITIALIZED);
  // The resolver itself works before cuInit: cudart needs it to find cuInit.
  ASSERT_NE(proc<PFN_cuInit_v2000>("cuInit"), nullptr);
  ASSERT_EQ(proc<PFN_cuInit_v2000>("cuInit")(0), CUDA_SUCCESS);
  EXPECT_EQ(sym<PFN_cuDeviceGetCount_v2000>("cuDeviceGetCount")(&count), CUDA_SUCCESS);
  EXPECT_EQ(count, 2);
  // Initialised but no current context: allocation needs one.
  EXPECT_EQ(sym<PFN_cuMemAlloc_v3020>("cuMemAlloc_v2")(&p, 4096), CUDA_ERROR_INVALID_CONTEXT);
}

TEST(Driver, ContextsAndDevices) {
  CUcontext primary = nullptr, created = nullptr, current = nullptr;
  ASSERT_EQ(proc<PFN_cuDevicePrimaryCtxRetain_v7000>("cuDevicePrimaryCtxRetain")(&primary, 1),
            CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuCtxSetCurrent_v4000>("cuCtxSetCurrent")(primary), CUDA_SUCCESS);
  CUdevice dev = -1;
  EXPECT_EQ(sym<PFN_cuCtxGetDevice_v2000>("cuCtxGetDevice")(&dev), CUDA_SUCCESS);
  EXPECT_EQ(dev, 1);
  ASSERT_EQ(sym<PFN_cuCtxCreate_v12050>("cuCtxCreate_v4")(&created, nullptr, 0, 0), CUDA_SUCCESS);
  EXPECT_EQ(proc<PFN_cuCtxGetCurrent_v4000>("cuCtxGetCurrent")(&current), CUDA_SUCCESS);
  EXPECT_EQ(current, created);  // cuCtxCreate makes the new context current
  EXPECT_EQ(proc<PFN_cuCtxGetDevice_v13000>("cuCtxGetDevice")(&dev, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(dev, 0);
  char name[64] = {};
  EXPECT_EQ(sym<PFN_cuDeviceGetName_v2000>("cuDeviceGetName")(name, sizeof(name), 1), CUDA_SUCCESS);
  EXPECT_STREQ(name, "gpumem simulated device");
  size_t total = 0;
  EXPECT_EQ(sym<PFN_cuDeviceTotalMem_v3020>("cuDeviceTotalMem_v2")(&total, 0), CUDA_SUCCESS);
  EXPECT_EQ(total, kCapacity);
  EXPECT_EQ(sym<PFN_cuDeviceTotalMem_v3020>("cuDeviceTotalMem_v2")(&total, 2),
            CUDA_ERROR_INVALID_DEVICE);
  EXPECT_EQ(proc<PFN_cuCtxSetCurrent_v4000>("cuCtxSetCurrent")(reinterpret_cast<CUcontext>(&total)),
            CUDA_ERROR_INVALID_CONTEXT);
  EXPECT_EQ(sym<PFN_cuCtxSynchronize_v2000>("cuCtxSynchronize")(), CUDA_SUCCESS);
  EXPECT_EQ(sym<PFN_cuDevicePrimaryCtxRelease_v11000>("cuDevicePrimaryCtxRelease_v2")(1),
            CUDA_SUCCESS);
  // Leave the created context (device 0) current for the tests below.
}

TEST(Driver, ResolverPicksTheVersionedEntryPoint) {
  auto get = sym<PFN_cuGetProcAddress_v12000>("cuGetProcAddress_v2");
  ASSERT_NE(get, nullptr);
  void* fn = nullptr;
  CUdriverProcAddressQueryResult status{};
  ASSERT_EQ(get("cuMemAlloc", &fn, 12000, 0, &status), CUDA_SUCCESS);
  EXPECT_EQ(status, CU_GET_PROC_ADDRESS_SUCCESS);
  EXPECT_EQ(fn, dlsym(driver_handle(), "cuMemAlloc_v2"));
  ASSERT_EQ(get("cuMemGetInfo", &fn, 12000, 0, &status), CUDA_SUCCESS);
  EXPECT_EQ(fn, dlsym(driver_handle(), "cuMemGetInfo_v2"));
  // Version selection: cuCtxGetDevice gained a context argument in 13.0.
  ASSERT_EQ(get("cuCtxGetDevice", &fn, 12080, 0, &status), CUDA_SUCCESS);
  EXPECT_EQ(fn, dlsym(driver_handle(), "cuCtxGetDevice"));
  ASSERT_EQ(get("cuCtxGetDevice", &fn, 13000, 0, &status), CUDA_SUCCESS);
  EXPECT_EQ(fn, dlsym(driver_handle(), "cuCtxGetDevice_v2"));
  // Per-thread default stream variants by flag.
  ASSERT_EQ(
      get("cuMemAllocAsync", &fn, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &status),
      CUDA_SUCCESS);
  EXPECT_EQ(fn, dlsym(driver_handle(), "cuMemAllocAsync_ptsz"));
  ASSERT_EQ(get("cuMemAllocAsync", &fn, 12000, CU_GET_PROC_ADDRESS_LEGACY_STREAM, &status),
            CUDA_SUCCESS);
  EXPECT_EQ(fn, dlsym(driver_handle(), "cuMemAllocAsync"));
  // A function without a per-thread variant falls back to the plain one.
  ASSERT_EQ(get("cuMemAlloc", &fn, 12000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &status),
            CUDA_SUCCESS);
  EXPECT_EQ(fn, dlsym(driver_handle(), "cuMemAlloc_v2"));
  // The resolver resolves itself.
  ASSERT_EQ(get("cuGetProcAddress", &fn, 12000, 0, &status), CUDA_SUCCESS);
  EXPECT_EQ(fn, reinterpret_cast<void*>(get));
  ASSERT_EQ(get("cuGetProcAddress", &fn, 11030, 0, &status), CUDA_SUCCESS);
  EXPECT_EQ(fn, dlsym(driver_handle(), "cuGetProcAddress"));
  // Unknown names, versioned names and too-old versions.
  fn = reinterpret_cast<void*>(1);
  EXPECT_EQ(get("cuNoSuchFunction", &fn, 13000, 0, &status), CUDA_ERROR_NOT_FOUND);
  EXPECT_EQ(status, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  EXPECT_EQ(fn, nullptr);
  EXPECT_EQ(get("cuMemAlloc_v2", &fn, 13000, 0, &status), CUDA_ERROR_NOT_FOUND);
  EXPECT_EQ(status, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
  EXPECT_EQ(get("cuMemAllocAsync", &fn, 11000, 0, &status), CUDA_ERROR_NOT_FOUND);
  EXPECT_EQ(status, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
  EXPECT_EQ(get(nullptr, &fn, 13000, 0, &status), CUDA_ERROR_INVALID_VALUE);
  // The v1 resolver (no status argument).
  auto get_v1 = sym<PFN_cuGetProcAddress_v11030>("cuGetProcAddress");
  ASSERT_EQ(get_v1("cuMemFree", &fn, 12000, 0), CUDA_SUCCESS);
  EXPECT_EQ(fn, dlsym(driver_handle(), "cuMemFree_v2"));
}

TEST(Driver, EverythingOutsideTheSurfaceIsNotSupported) {
  auto module_load = sym<PFN_cuModuleLoad_v2000>("cuModuleLoad");
  ASSERT_NE(module_load, nullptr);
  CUmodule module = nullptr;
  EXPECT_EQ(module_load(&module, "kernels.cubin"), CUDA_ERROR_NOT_SUPPORTED);
  void* fn = nullptr;
  CUdriverProcAddressQueryResult status{};
  auto get = sym<PFN_cuGetProcAddress_v12000>("cuGetProcAddress_v2");
  ASSERT_EQ(get("cuLaunchKernel", &fn, 13000, 0, &status), CUDA_SUCCESS);
  ASSERT_NE(fn, nullptr);
  EXPECT_EQ(reinterpret_cast<PFN_cuLaunchKernel_v4000>(fn)(nullptr, 1, 1, 1, 1, 1, 1, 0, nullptr,
                                                           nullptr, nullptr),
            CUDA_ERROR_NOT_SUPPORTED);
  EXPECT_EQ(get("cuMemcpyHtoD_v2", &fn, 13000, 0, &status), CUDA_ERROR_NOT_FOUND);
}

TEST(Driver, ResolvedFunctionsWork) {
  size_t before = free_bytes();
  auto alloc = proc<PFN_cuMemAlloc_v3020>("cuMemAlloc");
  auto free_fn = proc<PFN_cuMemFree_v3020>("cuMemFree");
  CUdeviceptr p = 0;
  ASSERT_EQ(alloc(&p, 5 * kMiB), CUDA_SUCCESS);
  EXPECT_EQ(before - free_bytes(), 6 * kMiB);
  CUdeviceptr base = 0;
  size_t size = 0;
  ASSERT_EQ(proc<PFN_cuMemGetAddressRange_v3020>("cuMemGetAddressRange")(&base, &size, p + 100),
            CUDA_SUCCESS);
  EXPECT_EQ(base, p);
  EXPECT_EQ(size, 5 * kMiB);
  EXPECT_EQ(alloc(&p, kCapacity), CUDA_ERROR_OUT_OF_MEMORY);
  EXPECT_EQ(free_fn(p), CUDA_SUCCESS);
  EXPECT_EQ(free_fn(p), CUDA_ERROR_INVALID_VALUE);
  EXPECT_EQ(free_fn(0), CUDA_SUCCESS);
  EXPECT_EQ(free_bytes(), before);
  const char* text = nullptr;
  EXPECT_EQ(proc<PFN_cuGetErrorName_v6000>("cuGetErrorName")(CUDA_ERROR_OUT_OF_MEMORY, &text),
            CUDA_SUCCESS);
  EXPECT_STREQ(text, "CUDA_ERROR_OUT_OF_MEMORY");
  EXPECT_EQ(
      proc<PFN_cuGetErrorString_v6000>("cuGetErrorString")(static_cast<CUresult>(123456), &text),
      CUDA_ERROR_INVALID_VALUE);
  // Every code simcuda returns has a name and a text: the VMM, peer-access and access-check ones
  // too (simcuda/src/driver/errors.cpp).
  for (CUresult code : {CUDA_ERROR_MAP_FAILED, CUDA_ERROR_OPERATING_SYSTEM,
                        CUDA_ERROR_PEER_ACCESS_UNSUPPORTED, CUDA_ERROR_ILLEGAL_ADDRESS,
                        CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED, CUDA_ERROR_PEER_ACCESS_NOT_ENABLED,
                        CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, CUDA_ERROR_NOT_SUPPORTED}) {
    SCOPED_TRACE(static_cast<int>(code));
    text = nullptr;
    EXPECT_EQ(proc<PFN_cuGetErrorName_v6000>("cuGetErrorName")(code, &text), CUDA_SUCCESS);
    ASSERT_NE(text, nullptr);
    EXPECT_EQ(std::string(text).rfind("CUDA_ERROR_", 0), 0u) << text;
    text = nullptr;
    EXPECT_EQ(proc<PFN_cuGetErrorString_v6000>("cuGetErrorString")(code, &text), CUDA_SUCCESS);
    EXPECT_NE(text, nullptr);
  }
  EXPECT_EQ(proc<PFN_cuGetErrorName_v6000>("cuGetErrorName")(CUDA_ERROR_PEER_ACCESS_NOT_ENABLED,
                                                             &text),
            CUDA_SUCCESS);
  EXPECT_STREQ(text, "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED");
}

TEST(Driver, PitchedManagedAndHostMemory) {
  size_t before = free_bytes();
  CUdeviceptr p = 0, m = 0;
  size_t pitch = 0;
  ASSERT_EQ(proc<PFN_cuMemAllocPitch_v3020>("cuMemAllocPitch")(&p, &pitch, 1000, 2048, 4),
            CUDA_SUCCESS);
  EXPECT_EQ(pitch, 1024u);
  EXPECT_EQ(before - free_bytes(), 2 * kMiB);  // 1024 * 2048 = 2 MiB
  EXPECT_EQ(proc<PFN_cuMemAllocPitch_v3020>("cuMemAllocPitch")(&p, &pitch, 1000, 2, 3),
            CUDA_ERROR_INVALID_VALUE);
  ASSERT_EQ(proc<PFN_cuMemAllocManaged_v6000>("cuMemAllocManaged")(&m, 100, CU_MEM_ATTACH_GLOBAL),
            CUDA_SUCCESS);
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);  // plus one small page
  unsigned managed = 0;
  EXPECT_EQ(proc<PFN_cuPointerGetAttribute_v4000>("cuPointerGetAttribute")(
                &managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, m),
            CUDA_SUCCESS);
  EXPECT_EQ(managed, 1u);
  void* host = nullptr;
  ASSERT_EQ(proc<PFN_cuMemAllocHost_v3020>("cuMemAllocHost")(&host, 3 * kMiB), CUDA_SUCCESS);
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);  // pinned host memory is not device memory
  std::memset(host, 1, 3 * kMiB);
  EXPECT_EQ(proc<PFN_cuMemFreeHost_v2000>("cuMemFreeHost")(host), CUDA_SUCCESS);
  EXPECT_EQ(proc<PFN_cuMemFree_v3020>("cuMemFree")(p), CUDA_SUCCESS);
  EXPECT_EQ(proc<PFN_cuMemFree_v3020>("cuMemFree")(m), CUDA_SUCCESS);
  EXPECT_EQ(free_bytes(), before);
}

// A charge near 2^64 (an array whose size formula saturates) is refused, whatever is charged
// already: large pages + the charge once wrapped past 2^64 and "fitted" when a small page was in
// use, and the device then reported the pages it held as free.
TEST(Driver, AChargePastTheAddressSpaceIsRefused) {
  const size_t before = free_bytes();
  CUdeviceptr large = 0, small = 0;
  ASSERT_EQ(proc<PFN_cuMemAlloc_v3020>("cuMemAlloc")(&large, 2 * kMiB), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuMemAlloc_v3020>("cuMemAlloc")(&small, 512), CUDA_SUCCESS);
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);
  CUDA_ARRAY3D_DESCRIPTOR d{};
  d.Width = d.Height = d.Depth = size_t{1} << 21;  // 2^63 texels of 16 B
  d.Format = CU_AD_FORMAT_FLOAT;
  d.NumChannels = 4;
  CUarray array = nullptr;
  EXPECT_EQ(proc<PFN_cuArray3DCreate_v3020>("cuArray3DCreate")(&array, &d),
            CUDA_ERROR_OUT_OF_MEMORY);
  EXPECT_EQ(array, nullptr);
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);
  EXPECT_EQ(proc<PFN_cuMemFree_v3020>("cuMemFree")(large), CUDA_SUCCESS);
  EXPECT_EQ(proc<PFN_cuMemFree_v3020>("cuMemFree")(small), CUDA_SUCCESS);
  EXPECT_EQ(free_bytes(), before);
}

TEST(Driver, VirtualMemoryAccounting) {
  size_t before = free_bytes();
  CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
  size_t granularity = 0;
  ASSERT_EQ(proc<PFN_cuMemGetAllocationGranularity_v10020>("cuMemGetAllocationGranularity")(
                &granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM),
            CUDA_SUCCESS);
  ASSERT_EQ(granularity, 2 * kMiB);

  CUdeviceptr va = 0;
  ASSERT_EQ(proc<PFN_cuMemAddressReserve_v10020>("cuMemAddressReserve")(&va, 8 * kMiB, 0, 0, 0),
            CUDA_SUCCESS);
  EXPECT_EQ(va % (2 * kMiB), 0u);
  EXPECT_EQ(free_bytes(), before);  // address space costs no device memory

  CUmemGenericAllocationHandle h = 0;
  EXPECT_EQ(proc<PFN_cuMemCreate_v10020>("cuMemCreate")(&h, 3 * kMiB, &prop, 0),
            CUDA_ERROR_INVALID_VALUE);  // not a multiple of the granularity
  ASSERT_EQ(proc<PFN_cuMemCreate_v10020>("cuMemCreate")(&h, 4 * kMiB, &prop, 0), CUDA_SUCCESS);
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);

  auto map = proc<PFN_cuMemMap_v10020>("cuMemMap");
  auto unmap = proc<PFN_cuMemUnmap_v10020>("cuMemUnmap");
  ASSERT_EQ(map(va, 4 * kMiB, 0, h, 0), CUDA_SUCCESS);
  ASSERT_EQ(map(va + 4 * kMiB, 2 * kMiB, 2 * kMiB, h, 0), CUDA_SUCCESS);  // second view
  EXPECT_EQ(map(va, 2 * kMiB, 0, h, 0), CUDA_ERROR_INVALID_VALUE);        // already mapped
  CUmemAccessDesc access{};
  access.location = prop.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  ASSERT_EQ(proc<PFN_cuMemSetAccess_v10020>("cuMemSetAccess")(va, 6 * kMiB, &access, 1),
            CUDA_SUCCESS);
  // The mapping is real memory, and both views show the same physical bytes.
  auto* bytes = reinterpret_cast<unsigned char*>(va);
  bytes[2 * kMiB + 7] = 42;
  EXPECT_EQ(bytes[4 * kMiB + 7], 42);

  CUmemGenericAllocationHandle retained = 0;
  ASSERT_EQ(proc<PFN_cuMemRetainAllocationHandle_v11000>("cuMemRetainAllocationHandle")(
                &retained, reinterpret_cast<void*>(va + 100)),
            CUDA_SUCCESS);
  EXPECT_EQ(retained, h);
  CUdeviceptr base = 0;
  size_t size = 0;
  ASSERT_EQ(
      proc<PFN_cuMemGetAddressRange_v3020>("cuMemGetAddressRange")(&base, &size, va + 5 * kMiB),
      CUDA_SUCCESS);
  EXPECT_EQ(base, va + 4 * kMiB);
  EXPECT_EQ(size, 2 * kMiB);

  auto release = proc<PFN_cuMemRelease_v10020>("cuMemRelease");
  ASSERT_EQ(release(h), CUDA_SUCCESS);
  ASSERT_EQ(release(retained), CUDA_SUCCESS);
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);  // released but still mapped: still charged
  EXPECT_EQ(release(h), CUDA_ERROR_INVALID_VALUE);
  EXPECT_EQ(proc<PFN_cuMemAddressFree_v10020>("cuMemAddressFree")(va, 8 * kMiB),
            CUDA_ERROR_INVALID_VALUE);  // still mapped
  ASSERT_EQ(unmap(va, 4 * kMiB), CUDA_SUCCESS);
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);  // one mapping left
  ASSERT_EQ(unmap(va + 4 * kMiB, 2 * kMiB), CUDA_SUCCESS);
  EXPECT_EQ(free_bytes(), before);
  EXPECT_EQ(unmap(va, 2 * kMiB), CUDA_ERROR_INVALID_VALUE);
  EXPECT_EQ(proc<PFN_cuMemAddressFree_v10020>("cuMemAddressFree")(va, 8 * kMiB), CUDA_SUCCESS);

  // A handle that does not fit fails and changes nothing.
  EXPECT_EQ(proc<PFN_cuMemCreate_v10020>("cuMemCreate")(&h, kCapacity + 2 * kMiB, &prop, 0),
            CUDA_ERROR_OUT_OF_MEMORY);
  EXPECT_EQ(free_bytes(), before);
}

// Sizes whose end passes 2^64 are refused: nothing is reserved, unmapped or made accessible.
TEST(Driver, VirtualMemoryRangesPastTheAddressSpaceAreRefused) {
  auto reserve = proc<PFN_cuMemAddressReserve_v10020>("cuMemAddressReserve");
  CUdeviceptr va = 0;
  // size + alignment wraps to 2 MiB: this once reserved "16 EiB" out of a 2 MiB mapping.
  EXPECT_EQ(reserve(&va, ~uint64_t{0} - 2 * kMiB + 1, 4 * kMiB, 0, 0), CUDA_ERROR_OUT_OF_MEMORY);
  EXPECT_EQ(va, 0u);

  CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
  const size_t before = free_bytes();
  ASSERT_EQ(reserve(&va, 2 * kMiB, 0, 0, 0), CUDA_SUCCESS);
  CUmemGenericAllocationHandle h = 0;
  ASSERT_EQ(proc<PFN_cuMemCreate_v10020>("cuMemCreate")(&h, 2 * kMiB, &prop, 0), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuMemMap_v10020>("cuMemMap")(va, 2 * kMiB, 0, h, 0), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuMemRelease_v10020>("cuMemRelease")(h), CUDA_SUCCESS);
  // va + wrapping is 2 MiB, below every mapping.
  const size_t wrapping = 0 - static_cast<size_t>(va) + 2 * kMiB;
  CUmemAccessDesc access{};
  access.location = prop.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  auto set_access = proc<PFN_cuMemSetAccess_v10020>("cuMemSetAccess");
  EXPECT_EQ(set_access(va, wrapping, &access, 1), CUDA_ERROR_INVALID_VALUE);
  auto unmap = proc<PFN_cuMemUnmap_v10020>("cuMemUnmap");
  EXPECT_EQ(unmap(va, wrapping), CUDA_ERROR_INVALID_VALUE);
  EXPECT_EQ(before - free_bytes(), 2 * kMiB);  // still mapped, still charged
  ASSERT_EQ(unmap(va, 2 * kMiB), CUDA_SUCCESS);
  EXPECT_EQ(free_bytes(), before);
  EXPECT_EQ(proc<PFN_cuMemAddressFree_v10020>("cuMemAddressFree")(va, 2 * kMiB), CUDA_SUCCESS);
}

// VMM memory is reachable only from the devices cuMemSetAccess named, whatever peer access says;
// cuMemAlloc memory of another device only with peer access enabled to it.
TEST(Driver, PeerAccessReachesAllocationsButNotUnnamedMappings) {
  using Access = int (*)(int, const void*, size_t, int);
  auto access = sym<Access>("simcuda_device_access");
  ASSERT_NE(access, nullptr);
  auto enable = proc<PFN_cuCtxEnablePeerAccess_v4000>("cuCtxEnablePeerAccess");
  auto disable = proc<PFN_cuCtxDisablePeerAccess_v4000>("cuCtxDisablePeerAccess");
  auto can_access = proc<PFN_cuDeviceCanAccessPeer_v4000>("cuDeviceCanAccessPeer");
  auto retain = proc<PFN_cuDevicePrimaryCtxRetain_v7000>("cuDevicePrimaryCtxRetain");
  auto set_current = proc<PFN_cuCtxSetCurrent_v4000>("cuCtxSetCurrent");
  ASSERT_TRUE(enable && disable && can_access && retain && set_current);
  CUcontext ctx0 = nullptr, ctx1 = nullptr;
  ASSERT_EQ(retain(&ctx0, 0), CUDA_SUCCESS);
  ASSERT_EQ(retain(&ctx1, 1), CUDA_SUCCESS);
  int can = -1;
  ASSERT_EQ(can_access(&can, 1, 0), CUDA_SUCCESS);
  EXPECT_EQ(can, 1);
  EXPECT_EQ(can_access(&can, 1, 2), CUDA_ERROR_INVALID_DEVICE);

  ASSERT_EQ(set_current(ctx0), CUDA_SUCCESS);
  CUdeviceptr plain = 0;
  ASSERT_EQ(proc<PFN_cuMemAlloc_v3020>("cuMemAlloc")(&plain, kMiB), CUDA_SUCCESS);
  CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
  CUdeviceptr va = 0;
  CUmemGenericAllocationHandle h = 0;
  ASSERT_EQ(proc<PFN_cuMemAddressReserve_v10020>("cuMemAddressReserve")(&va, 4 * kMiB, 0, 0, 0),
            CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuMemCreate_v10020>("cuMemCreate")(&h, 2 * kMiB, &prop, 0), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuMemMap_v10020>("cuMemMap")(va, 2 * kMiB, 0, h, 0), CUDA_SUCCESS);
  const void* mapped = reinterpret_cast<const void*>(va);
  EXPECT_EQ(access(0, mapped, 2 * kMiB, 0), CUDA_ERROR_ILLEGAL_ADDRESS);  // mapped, no access yet
  CUmemAccessDesc desc{};
  desc.location = prop.location;
  desc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  auto set_access = proc<PFN_cuMemSetAccess_v10020>("cuMemSetAccess");
  ASSERT_EQ(set_access(va, 2 * kMiB, &desc, 1), CUDA_SUCCESS);
  EXPECT_EQ(access(0, mapped, 2 * kMiB, 1), CUDA_SUCCESS);
  EXPECT_EQ(access(0, mapped, 4 * kMiB, 0), CUDA_ERROR_ILLEGAL_ADDRESS);  // runs into no mapping

  ASSERT_EQ(set_current(ctx1), CUDA_SUCCESS);
  EXPECT_EQ(disable(ctx0), CUDA_ERROR_PEER_ACCESS_NOT_ENABLED);
  EXPECT_EQ(enable(ctx1, 0), CUDA_ERROR_INVALID_CONTEXT);  // the current context itself
  EXPECT_EQ(enable(nullptr, 0), CUDA_ERROR_INVALID_CONTEXT);
  EXPECT_EQ(enable(ctx0, 1), CUDA_ERROR_INVALID_VALUE);
  ASSERT_EQ(enable(ctx0, 0), CUDA_SUCCESS);
  EXPECT_EQ(enable(ctx0, 0), CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED);
  EXPECT_EQ(access(1, reinterpret_cast<const void*>(plain), kMiB, 1), CUDA_SUCCESS);
  EXPECT_EQ(access(1, mapped, 2 * kMiB, 0), CUDA_ERROR_ILLEGAL_ADDRESS);  // peer access: no help
  // Naming device 1 read-only opens reads, not writes; device 0 keeps read/write.
  desc.location.id = 1;
  desc.flags = CU_MEM_ACCESS_FLAGS_PROT_READ;
  ASSERT_EQ(set_access(va, 2 * kMiB, &desc, 1), CUDA_SUCCESS);
  EXPECT_EQ(access(1, mapped, 2 * kMiB, 0), CUDA_SUCCESS);
  EXPECT_EQ(access(1, mapped, 2 * kMiB, 1), CUDA_ERROR_ILLEGAL_ADDRESS);
  EXPECT_EQ(access(0, mapped, 2 * kMiB, 1), CUDA_SUCCESS);
  desc.flags = CU_MEM_ACCESS_FLAGS_PROT_NONE;  // revoked
  ASSERT_EQ(set_access(va, 2 * kMiB, &desc, 1), CUDA_SUCCESS);
  EXPECT_EQ(access(1, mapped, 2 * kMiB, 0), CUDA_ERROR_ILLEGAL_ADDRESS);
  ASSERT_EQ(disable(ctx0), CUDA_SUCCESS);
  EXPECT_EQ(access(1, reinterpret_cast<const void*>(plain), kMiB, 0), CUDA_ERROR_ILLEGAL_ADDRESS);

  ASSERT_EQ(set_current(ctx0), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuMemUnmap_v10020>("cuMemUnmap")(va, 2 * kMiB), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuMemRelease_v10020>("cuMemRelease")(h), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuMemAddressFree_v10020>("cuMemAddressFree")(va, 4 * kMiB), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuMemFree_v3020>("cuMemFree")(plain), CUDA_SUCCESS);
}

TEST(Driver, DefaultPoolAttributes) {
  size_t before = free_bytes();
  CUmemoryPool pool = nullptr;
  ASSERT_EQ(proc<PFN_cuDeviceGetDefaultMemPool_v11020>("cuDeviceGetDefaultMemPool")(&pool, 0),
            CUDA_SUCCESS);
  auto get = proc<PFN_cuMemPoolGetAttribute_v11020>("cuMemPoolGetAttribute");
  auto set = proc<PFN_cuMemPoolSetAttribute_v11020>("cuMemPoolSetAttribute");
  auto attr = [&](CUmemPool_attribute a) {
    cuuint64_t v = 0;
    EXPECT_EQ(get(pool, a, &v), CUDA_SUCCESS);
    return v;
  };
  cuuint64_t threshold = UINT64_MAX;  // keep everything, as TensorFlow does
  ASSERT_EQ(set(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &threshold), CUDA_SUCCESS);
  auto alloc = proc<PFN_cuMemAllocFromPoolAsync_v11020>("cuMemAllocFromPoolAsync");
  auto free_async = proc<PFN_cuMemFreeAsync_v11020>("cuMemFreeAsync");
  CUdeviceptr a = 0, b = 0;
  ASSERT_EQ(alloc(&a, 3 * kMiB, pool, nullptr), CUDA_SUCCESS);
  ASSERT_EQ(alloc(&b, 1000, pool, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(attr(CU_MEMPOOL_ATTR_USED_MEM_CURRENT), 3 * kMiB + 1024);
  EXPECT_EQ(attr(CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), 4 * kMiB);
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);
  ASSERT_EQ(free_async(a, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(attr(CU_MEMPOOL_ATTR_USED_MEM_CURRENT), 1024u);
  EXPECT_EQ(attr(CU_MEMPOOL_ATTR_USED_MEM_HIGH), 3 * kMiB + 1024);
  EXPECT_EQ(attr(CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), 4 * kMiB);  // cached in the pool
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);
  ASSERT_EQ(proc<PFN_cuMemPoolTrimTo_v11020>("cuMemPoolTrimTo")(pool, 0), CUDA_SUCCESS);
  EXPECT_EQ(attr(CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), 2 * kMiB);  // what b still needs
  EXPECT_EQ(attr(CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH), 4 * kMiB);
  EXPECT_EQ(before - free_bytes(), 2 * kMiB);
  cuuint64_t zero = 0;
  ASSERT_EQ(set(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH, &zero), CUDA_SUCCESS);
  EXPECT_EQ(attr(CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH), 2 * kMiB);
  // With the default threshold (0) a free returns the memory at once.
  ASSERT_EQ(set(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &zero), CUDA_SUCCESS);
  ASSERT_EQ(free_async(b, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(attr(CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), 0u);
  EXPECT_EQ(free_bytes(), before);
  // A pool allocation that cannot fit fails with nothing changed.
  EXPECT_EQ(alloc(&a, kCapacity + 1, pool, nullptr), CUDA_ERROR_OUT_OF_MEMORY);
  EXPECT_EQ(attr(CU_MEMPOOL_ATTR_USED_MEM_CURRENT), 0u);
  EXPECT_EQ(attr(CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), 0u);
  EXPECT_EQ(free_async(a, nullptr), CUDA_ERROR_INVALID_VALUE);
}

// Explicit pools: made on a device, their memory charged there; destroying one gives its reserve
// back, leaves what is still allocated from it valid, and makes the handle unknown; the handle
// comes back from a later create only once nothing is allocated from it. A device's own pool
// cannot be destroyed.
TEST(Driver, CreatedPoolsAreDestroyedAndTheirHandlesReused) {
  auto create = proc<PFN_cuMemPoolCreate_v11020>("cuMemPoolCreate");
  auto destroy = proc<PFN_cuMemPoolDestroy_v11020>("cuMemPoolDestroy");
  auto alloc = proc<PFN_cuMemAllocFromPoolAsync_v11020>("cuMemAllocFromPoolAsync");
  auto free_async = proc<PFN_cuMemFreeAsync_v11020>("cuMemFreeAsync");
  auto get = proc<PFN_cuMemPoolGetAttribute_v11020>("cuMemPoolGetAttribute");
  ASSERT_NE(create, nullptr);
  ASSERT_NE(destroy, nullptr);
  const size_t before = free_bytes();
  CUmemPoolProps props{};
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  props.location.id = 0;
  CUmemoryPool pool = nullptr, other = nullptr;
  ASSERT_EQ(create(&pool, &props), CUDA_SUCCESS);
  CUdeviceptr a = 0, b = 0;
  ASSERT_EQ(alloc(&a, 3 * kMiB, pool, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);
  ASSERT_EQ(destroy(pool), CUDA_SUCCESS);
  EXPECT_EQ(destroy(pool), CUDA_ERROR_INVALID_VALUE);  // unknown once destroyed
  cuuint64_t v = 0;
  EXPECT_EQ(get(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT, &v), CUDA_ERROR_INVALID_VALUE);
  EXPECT_EQ(alloc(&b, kMiB, pool, nullptr), CUDA_ERROR_INVALID_VALUE);
  ASSERT_EQ(create(&other, &props), CUDA_SUCCESS);
  EXPECT_NE(other, pool) << "memory is still allocated from the destroyed pool";
  EXPECT_EQ(before - free_bytes(), 4 * kMiB);  // a is still charged
  ASSERT_EQ(free_async(a, nullptr), CUDA_SUCCESS);
  EXPECT_EQ(free_bytes(), before);
  CUmemoryPool again = nullptr;
  ASSERT_EQ(create(&again, &props), CUDA_SUCCESS);
  EXPECT_EQ(again, pool) << "the drained handle is handed out again";
  EXPECT_EQ(destroy(again), CUDA_SUCCESS);
  EXPECT_EQ(destroy(other), CUDA_SUCCESS);
  // Bad properties and a device's own pool.
  props.location.id = 99;
  EXPECT_EQ(create(&other, &props), CUDA_ERROR_INVALID_DEVICE);
  props.location.id = 0;
  props.allocType = CU_MEM_ALLOCATION_TYPE_INVALID;
  EXPECT_EQ(create(&other, &props), CUDA_ERROR_INVALID_VALUE);
  props.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
  props.handleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  EXPECT_EQ(create(&other, &props), CUDA_ERROR_NOT_SUPPORTED);
  EXPECT_EQ(create(nullptr, &props), CUDA_ERROR_INVALID_VALUE);
  CUmemoryPool own = nullptr;
  ASSERT_EQ(proc<PFN_cuDeviceGetDefaultMemPool_v11020>("cuDeviceGetDefaultMemPool")(&own, 0),
            CUDA_SUCCESS);
  EXPECT_EQ(destroy(own), CUDA_ERROR_INVALID_VALUE);
  EXPECT_EQ(free_bytes(), before);
}

TEST(Driver, StreamsAndEvents) {
  CUstream s = nullptr;
  ASSERT_EQ(proc<PFN_cuStreamCreate_v2000>("cuStreamCreate")(&s, 0), CUDA_SUCCESS);
  CUevent start = nullptr, stop = nullptr;
  ASSERT_EQ(proc<PFN_cuEventCreate_v2000>("cuEventCreate")(&start, 0), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuEventCreate_v2000>("cuEventCreate")(&stop, 0), CUDA_SUCCESS);
  float ms = -1;
  auto elapsed = proc<PFN_cuEventElapsedTime_v12080>("cuEventElapsedTime");
  EXPECT_EQ(elapsed(&ms, start, stop), CUDA_ERROR_INVALID_HANDLE);  // not recorded yet
  ASSERT_EQ(proc<PFN_cuEventRecord_v2000>("cuEventRecord")(start, s), CUDA_SUCCESS);
  CUdeviceptr p = 0;
  ASSERT_EQ(proc<PFN_cuMemAllocAsync_v11020>("cuMemAllocAsync")(&p, 4096, s), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuMemFreeAsync_v11020>("cuMemFreeAsync")(p, s), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuEventRecord_v2000>("cuEventRecord")(stop, s), CUDA_SUCCESS);
  ASSERT_EQ(elapsed(&ms, start, stop), CUDA_SUCCESS);
  EXPECT_GE(ms, 0.0f);
  EXPECT_EQ(proc<PFN_cuStreamSynchronize_v2000>("cuStreamSynchronize")(s), CUDA_SUCCESS);
  EXPECT_EQ(proc<PFN_cuStreamDestroy_v4000>("cuStreamDestroy")(s), CUDA_SUCCESS);
  EXPECT_EQ(proc<PFN_cuStreamSynchronize_v2000>("cuStreamSynchronize")(s),
            CUDA_ERROR_INVALID_HANDLE);
  EXPECT_EQ(proc<PFN_cuEventDestroy_v4000>("cuEventDestroy")(start), CUDA_SUCCESS);
  EXPECT_EQ(proc<PFN_cuEventDestroy_v4000>("cuEventDestroy")(stop), CUDA_SUCCESS);
}

// cuStreamGetDevice answers the device a stream was created on, whichever is current; the
// default streams belong to the current device. cuMemPoolGetAccess: only a pool's own device
// reaches it.
TEST(Driver, StreamsAndPoolsKnowTheirDevice) {
  CUcontext current = nullptr, primary1 = nullptr;
  ASSERT_EQ(proc<PFN_cuCtxGetCurrent_v4000>("cuCtxGetCurrent")(&current), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuDevicePrimaryCtxRetain_v7000>("cuDevicePrimaryCtxRetain")(&primary1, 1),
            CUDA_SUCCESS);
  auto set_current = proc<PFN_cuCtxSetCurrent_v4000>("cuCtxSetCurrent");
  CUstream on1 = nullptr;
  ASSERT_EQ(set_current(primary1), CUDA_SUCCESS);
  ASSERT_EQ(proc<PFN_cuStreamCreate_v2000>("cuStreamCreate")(&on1, 0), CUDA_SUCCESS);
  ASSERT_EQ(set_current(current), CUDA_SUCCESS);  // device 0

  auto get =
      proc<PFN_cuStreamGetDevice_v12080>("cuStreamGetDevice", CU_GET_PROC_ADDRESS_DEFAULT, 12080);
  auto get_ptsz = proc<PFN_cuStreamGetDevice_v12080_ptsz>(
      "cuStreamGetDevice", CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, 12080);
  ASSERT_NE(get, nullptr);
  ASSERT_NE(get_ptsz, nullptr);
  EXPECT_EQ(
      proc<PFN_cuStreamGetDevice_v12080>("cuStreamGetDevice", CU_GET_PROC_ADDRESS_DEFAULT, 12070),
      nullptr)
      << "cuStreamGetDevice is CUDA 12.8's";
  CUdevice dev = -1;
  EXPECT_EQ(get(on1, &dev), CUDA_SUCCESS);
  EXPECT_EQ(dev, 1);
  dev = -1;
  EXPECT_EQ(get_ptsz(on1, &dev), CUDA_SUCCESS);
  EXPECT_EQ(dev, 1);
  for (CUstream s : {static_cast<CUstream>(nullptr), CU_STREAM_LEGACY, CU_STREAM_PER_THREAD}) {
    dev = -1;
    EXPECT_EQ(get(s, &dev), CUDA_SUCCESS);
    EXPECT_EQ(dev, 0);
  }
  EXPECT_EQ(get(on1, nullptr), CUDA_ERROR_INVALID_VALUE);
  ASSERT_EQ(proc<PFN_cuStreamDestroy_v4000>("cuStreamDestroy")(on1), CUDA_SUCCESS);
  dev = -1;
  EXPECT_EQ(get(on1, &dev), CUDA_ERROR_INVALID_HANDLE);
  EXPECT_EQ(dev, -1);

  CUmemoryPool pool1 = nullptr;
  ASSERT_EQ(proc<PFN_cuDeviceGetDefaultMemPool_v11020>("cuDeviceGetDefaultMemPool")(&pool1, 1),
            CUDA_SUCCESS);
  auto access = proc<PFN_cuMemPoolGetAccess_v11020>("cuMemPoolGetAccess");
  ASSERT_NE(access, nullptr);
  CUmemLocation where{};
  where.type = CU_MEM_LOCATION_TYPE_DEVICE;
  CUmemAccess_flags flags = CU_MEM_ACCESS_FLAGS_PROT_MAX;
  where.id = 1;
  EXPECT_EQ(access(&flags, pool1, &where), CUDA_SUCCESS);
  EXPECT_EQ(flags, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
  where.id = 0;
  EXPECT_EQ(access(&flags, pool1, &where), CUDA_SUCCESS);
  EXPECT_EQ(flags, CU_MEM_ACCESS_FLAGS_PROT_NONE);
  where.id = 2;
  EXPECT_EQ(access(&flags, pool1, &where), CUDA_ERROR_INVALID_VALUE);
  where.id = 0;
  EXPECT_EQ(access(&flags, reinterpret_cast<CUmemoryPool>(&where), &where),
            CUDA_ERROR_INVALID_VALUE);
  EXPECT_EQ(access(nullptr, pool1, &where), CUDA_ERROR_INVALID_VALUE);

  // Peer access: device 0 given read-write on device 1's pool, then taken away. The pool's own
  // device keeps read-write; read-only is not modelled; a bad entry changes nothing.
  auto set_access = proc<PFN_cuMemPoolSetAccess_v11020>("cuMemPoolSetAccess");
  ASSERT_NE(set_access, nullptr);
  CUmemAccessDesc grant{};
  grant.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  grant.location.id = 0;
  grant.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  CUmemAccessDesc bad = grant;
  bad.location.id = 2;
  const CUmemAccessDesc grant_then_bad[] = {grant, bad};
  EXPECT_EQ(set_access(pool1, grant_then_bad, 2), CUDA_ERROR_INVALID_VALUE);
  where.id = 0;
  EXPECT_EQ(access(&flags, pool1, &where), CUDA_SUCCESS);
  EXPECT_EQ(flags, CU_MEM_ACCESS_FLAGS_PROT_NONE) << "a refused call changes nothing";
  EXPECT_EQ(set_access(pool1, &grant, 1), CUDA_SUCCESS);
  EXPECT_EQ(access(&flags, pool1, &where), CUDA_SUCCESS);
  EXPECT_EQ(flags, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
  CUmemAccessDesc read_only = grant;
  read_only.flags = CU_MEM_ACCESS_FLAGS_PROT_READ;
  EXPECT_EQ(set_access(pool1, &read_only, 1), CUDA_ERROR_NOT_SUPPORTED);
  CUmemAccessDesc own = grant;
  own.location.id = 1;
  own.flags = CU_MEM_ACCESS_FLAGS_PROT_NONE;
  EXPECT_EQ(set_access(pool1, &own, 1), CUDA_ERROR_INVALID_DEVICE);
  CUmemAccessDesc revoke = grant;
  revoke.flags = CU_MEM_ACCESS_FLAGS_PROT_NONE;
  EXPECT_EQ(set_access(pool1, &revoke, 1), CUDA_SUCCESS);
  EXPECT_EQ(access(&flags, pool1, &where), CUDA_SUCCESS);
  EXPECT_EQ(flags, CU_MEM_ACCESS_FLAGS_PROT_NONE);
  EXPECT_EQ(set_access(pool1, nullptr, 1), CUDA_ERROR_INVALID_VALUE);
  EXPECT_EQ(sym<PFN_cuDevicePrimaryCtxRelease_v11000>("cuDevicePrimaryCtxRelease_v2")(1),
            CUDA_SUCCESS);
}

}  // namespace
