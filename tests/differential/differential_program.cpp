// The differential suite's program (issue 28): every hooked allocation entry point, runtime and
// driver, with valid, invalid and cross-kind arguments, one line per call: the call, its return
// code and what it answered, with addresses written as "a<index>+<offset>" of the program's own
// allocations (so runs with different addresses compare). differential_check.sh runs it on the
// raw simulated device and under each policy and compares the lines (docs/policies.md,
// "Pools do not change what CUDA answers").
//
// Capacity queries print only their code and whether their numbers are consistent: a pool's
// cache and a cap change the numbers by design (docs/policies.md, "Capacity queries").
// A call that needs an allocation the configuration refused prints "skipped".
//
// Built against the real CUDA 13 headers and linked to the real libcudart and the driver stub;
// at run time LD_LIBRARY_PATH puts simcuda's libraries first (or a GPU's, scripts/gpu-check).
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gpumem/nvml_api.h"
#include "vmm_prop.h"

namespace {

struct Allocation {
  uint64_t base;
  uint64_t size;
};
std::vector<Allocation> g_allocations;  // every allocation the program made, in order
int g_foreign = 0;                      // a host variable: memory CUDA never saw

constexpr uint64_t kMiB = 1 << 20;

// "null", "a3+4096" (the newest allocation containing it), "foreign" or "other".
std::string where(uint64_t p) {
  if (p == 0) return "null";
  if (p == reinterpret_cast<uint64_t>(&g_foreign)) return "foreign";
  for (size_t i = g_allocations.size(); i-- > 0;) {
    const Allocation& a = g_allocations[i];
    if (a.base != 0 && p >= a.base && p - a.base < (a.size == 0 ? 1 : a.size))
      return "a" + std::to_string(i) + "+" + std::to_string(p - a.base);
  }
  return "other";
}
std::string where(const void* p) {
  return where(reinterpret_cast<uint64_t>(p));
}

// Numbers every allocation call, failed ones too (so that a refusal does not renumber the rest);
// returns the index of a successful one, -1 when the call failed.
int remember(int code, uint64_t base, uint64_t size) {
  const bool ok = code == 0 && base != 0;
  g_allocations.push_back({ok ? base : 0, ok ? size : 0});
  return ok ? static_cast<int>(g_allocations.size() - 1) : -1;
}

void line(const char* call, int code, const std::string& answer = "") {
  std::printf("%s | %d | %s\n", call, code, answer.c_str());
}
void skipped(const char* call) {
  std::printf("%s | skipped |\n", call);
}

uint64_t base_of(int index) {
  return index < 0 ? 0 : g_allocations[static_cast<size_t>(index)].base;
}
void* ptr_of(int index, uint64_t offset = 0) {
  return reinterpret_cast<void*>(base_of(index) + offset);
}
CUdeviceptr dptr_of(int index, uint64_t offset = 0) {
  return static_cast<CUdeviceptr>(base_of(index) + offset);
}

// ---- runtime ----

int rt_malloc(const char* call, size_t size) {
  void* p = nullptr;
  const int e = cudaMalloc(&p, size);
  const int i = remember(e, reinterpret_cast<uint64_t>(p), size);
  line(call, e, where(p));
  return i;
}

void rt_free(const char* call, int index, uint64_t offset = 0) {
  if (index < 0) return skipped(call);
  line(call, cudaFree(ptr_of(index, offset)));
}

void rt_attributes(const char* call, const void* p) {
  cudaPointerAttributes a{};
  const int e = cudaPointerGetAttributes(&a, p);
  char text[160];
  std::snprintf(text, sizeof text, "type %d device %d device_ptr %s host_ptr %s",
                static_cast<int>(a.type), a.device, where(a.devicePointer).c_str(),
                where(a.hostPointer).c_str());
  line(call, e, e == 0 ? text : "");
}
void rt_attributes_of(const char* call, int index, uint64_t offset = 0) {
  if (index < 0) return skipped(call);
  rt_attributes(call, ptr_of(index, offset));
}

void range(const char* call, CUdeviceptr p) {
  CUdeviceptr base = 0;
  size_t size = 0;
  const CUresult e = cuMemGetAddressRange(&base, &size, p);
  line(call, e, e == 0 ? "base " + where(base) + " size " + std::to_string(size) : "");
}
void range_of(const char* call, int index, uint64_t offset = 0) {
  if (index < 0) return skipped(call);
  range(call, dptr_of(index, offset));
}

// cuPointerGetAttribute's range of an address: start and size, each asked on its own.
void attribute_range(const char* call, CUdeviceptr p) {
  CUdeviceptr start = 0;
  size_t size = 0;
  const CUresult e1 = cuPointerGetAttribute(&start, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, p);
  const CUresult e2 = cuPointerGetAttribute(&size, CU_POINTER_ATTRIBUTE_RANGE_SIZE, p);
  line(call, e1, e1 == 0 ? "start " + where(start) : "");
  line((std::string(call) + " size").c_str(), e2, e2 == 0 ? std::to_string(size) : "");
}
void attribute_range_of(const char* call, int index, uint64_t offset = 0) {
  if (index < 0) return skipped(call), skipped((std::string(call) + " size").c_str());
  attribute_range(call, dptr_of(index, offset));
}

void rt_meminfo(const char* call) {
  size_t free_bytes = 0, total = 0;
  const int e = cudaMemGetInfo(&free_bytes, &total);
  line(call, e, e == 0 ? (total > 0 && free_bytes <= total ? "consistent" : "inconsistent") : "");
}

void runtime_calls() {
  line("cudaFree(NULL) initialises", cudaFree(nullptr));

  // Plain device memory: valid, zero, NULL out-parameter, huge.
  const int a = rt_malloc("cudaMalloc(1 MiB)", kMiB);
  const int small = rt_malloc("cudaMalloc(100 B)", 100);
  const int big = rt_malloc("cudaMalloc(12 MiB)", 12 * kMiB);
  {
    void* p = reinterpret_cast<void*>(1);
    const int e = cudaMalloc(&p, 0);
    line("cudaMalloc(0)", e, where(p));
  }
  line("cudaMalloc(NULL out)", cudaMalloc(nullptr, 1024));
  rt_malloc("cudaMalloc(1 PiB)", uint64_t{1} << 50);

  // Pointer queries: base, interior, small, foreign, NULL, NULL out-parameter.
  rt_attributes_of("cudaPointerGetAttributes(a)", a);
  rt_attributes_of("cudaPointerGetAttributes(a+4096)", a, 4096);
  rt_attributes_of("cudaPointerGetAttributes(small+99)", small, 99);
  rt_attributes_of("cudaPointerGetAttributes(big+11 MiB)", big, 11 * kMiB);
  rt_attributes("cudaPointerGetAttributes(foreign)", &g_foreign);
  rt_attributes("cudaPointerGetAttributes(NULL)", nullptr);
  if (a >= 0)
    line("cudaPointerGetAttributes(NULL out)", cudaPointerGetAttributes(nullptr, ptr_of(a)));
  else
    skipped("cudaPointerGetAttributes(NULL out)");

  // Wrong-kind, interior and double frees.
  if (a >= 0)
    line("cudaFreeHost(device a)", cudaFreeHost(ptr_of(a)));
  else
    skipped("cudaFreeHost(device a)");
  rt_attributes_of("cudaPointerGetAttributes(a) after cudaFreeHost", a);
  rt_free("cudaFree(a+512) interior", a, 512);
  rt_free("cudaFree(a)", a);
  rt_attributes_of("cudaPointerGetAttributes(a) freed", a);
  rt_free("cudaFree(a) again", a);
  rt_free("cudaFree(small)", small);
  rt_free("cudaFree(small) again", small);
  rt_free("cudaFree(big)", big);
  line("cudaFree(foreign)", cudaFree(&g_foreign));

  // Stream-ordered memory, freed either way.
  {
    void* p = nullptr;
    int e = cudaMallocAsync(&p, 2 * kMiB, nullptr);
    const int async = remember(e, reinterpret_cast<uint64_t>(p), 2 * kMiB);
    line("cudaMallocAsync(2 MiB)", e, where(p));
    rt_attributes_of("cudaPointerGetAttributes(async+8)", async, 8);
    range_of("cuMemGetAddressRange(async+8)", async, 8);
    rt_free("cudaFree(async) syncs and frees", async);
    rt_free("cudaFree(async) again", async);
    line("cudaMallocAsync(NULL out)", cudaMallocAsync(nullptr, 1024, nullptr));
    p = reinterpret_cast<void*>(1);
    e = cudaMallocAsync(&p, 0, nullptr);
    line("cudaMallocAsync(0)", e, where(p));
  }
  {
    const int plain = rt_malloc("cudaMalloc(3 MiB) for cudaFreeAsync", 3 * kMiB);
    if (plain >= 0) {
      line("cudaFreeAsync(plain)", cudaFreeAsync(ptr_of(plain), nullptr));
      line("cudaStreamSynchronize(0)", cudaStreamSynchronize(nullptr));
      line("cudaFreeAsync(plain) again", cudaFreeAsync(ptr_of(plain), nullptr));
    } else {
      skipped("cudaFreeAsync(plain)");
      skipped("cudaStreamSynchronize(0)");
      skipped("cudaFreeAsync(plain) again");
    }
  }
  {
    void* p = nullptr;
    const int e = cudaMallocAsync(&p, 300, nullptr);
    const int async = remember(e, reinterpret_cast<uint64_t>(p), 300);
    line("cudaMallocAsync(300 B)", e, where(p));
    if (async >= 0) {
      line("cudaFreeAsync(async+256) interior", cudaFreeAsync(ptr_of(async, 256), nullptr));
      line("cudaFreeAsync(async)", cudaFreeAsync(ptr_of(async), nullptr));
    } else {
      skipped("cudaFreeAsync(async+256) interior");
      skipped("cudaFreeAsync(async)");
    }
  }
  {
    cudaMemPool_t pool = nullptr;
    line("cudaDeviceGetDefaultMemPool", cudaDeviceGetDefaultMemPool(&pool, 0));
    void* p = nullptr;
    const int e = cudaMallocFromPoolAsync(&p, kMiB, pool, nullptr);
    const int from_pool = remember(e, reinterpret_cast<uint64_t>(p), kMiB);
    line("cudaMallocFromPoolAsync(1 MiB)", e, where(p));
    if (from_pool >= 0)
      line("cudaFreeAsync(from pool)", cudaFreeAsync(ptr_of(from_pool), nullptr));
    else
      skipped("cudaFreeAsync(from pool)");
    line("cudaMemPoolTrimTo(default, 0)", cudaMemPoolTrimTo(pool, 0));
  }

  // Managed memory.
  {
    void* p = nullptr;
    const int e = cudaMallocManaged(&p, kMiB, cudaMemAttachGlobal);
    const int managed = remember(e, reinterpret_cast<uint64_t>(p), kMiB);
    line("cudaMallocManaged(1 MiB)", e, where(p));
    rt_attributes_of("cudaPointerGetAttributes(managed+1)", managed, 1);
    if (managed >= 0)
      line("cudaFreeHost(managed)", cudaFreeHost(ptr_of(managed)));
    else
      skipped("cudaFreeHost(managed)");
    rt_free("cudaFree(managed)", managed);
    line("cudaMallocManaged(NULL out)", cudaMallocManaged(nullptr, 64, cudaMemAttachGlobal));
  }

  // Pitched memory.
  {
    void* p = nullptr;
    size_t pitch = 0;
    const int e = cudaMallocPitch(&p, &pitch, 1000, 10);
    const int pitched = remember(e, reinterpret_cast<uint64_t>(p), pitch * 10);
    line("cudaMallocPitch(1000 x 10)", e, where(p) + " pitch " + std::to_string(pitch));
    range_of("cuMemGetAddressRange(pitched+1500)", pitched, 1500);
    rt_free("cudaFree(pitched)", pitched);
    line("cudaMallocPitch(NULL pitch)", cudaMallocPitch(&p, nullptr, 10, 10));
    cudaPitchedPtr pp{};
    const int e3 = cudaMalloc3D(&pp, cudaExtent{300, 4, 2});
    const int cube = remember(e3, reinterpret_cast<uint64_t>(pp.ptr), pp.pitch * 8);
    line("cudaMalloc3D(300 x 4 x 2)", e3, where(pp.ptr) + " pitch " + std::to_string(pp.pitch));
    rt_free("cudaFree(3d)", cube);
    line("cudaMalloc3D(NULL out)", cudaMalloc3D(nullptr, cudaExtent{1, 1, 1}));
  }

  // Pinned host memory, freed the wrong way first.
  {
    void* p = nullptr;
    int e = cudaMallocHost(&p, 4096);
    const int host = remember(e, reinterpret_cast<uint64_t>(p), 4096);
    line("cudaMallocHost(4096)", e, where(p));
    rt_attributes_of("cudaPointerGetAttributes(host+8)", host, 8);
    rt_free("cudaFree(host)", host);
    if (host >= 0) {
      line("cudaFreeHost(host)", cudaFreeHost(ptr_of(host)));
      line("cudaFreeHost(host) again", cudaFreeHost(ptr_of(host)));
    } else {
      skipped("cudaFreeHost(host)");
      skipped("cudaFreeHost(host) again");
    }
    p = nullptr;
    e = cudaHostAlloc(&p, 8192, cudaHostAllocPortable);
    const int host2 = remember(e, reinterpret_cast<uint64_t>(p), 8192);
    line("cudaHostAlloc(8192)", e, where(p));
    if (host2 >= 0)
      line("cudaFreeHost(hostalloc)", cudaFreeHost(ptr_of(host2)));
    else
      skipped("cudaFreeHost(hostalloc)");
    line("cudaFreeHost(NULL)", cudaFreeHost(nullptr));
    line("cudaFreeHost(foreign)", cudaFreeHost(&g_foreign));
  }

  rt_meminfo("cudaMemGetInfo");
  size_t f = 0;
  line("cudaMemGetInfo(NULL total)", cudaMemGetInfo(&f, nullptr));
}

// ---- driver ----

int cu_alloc(const char* call, size_t size) {
  CUdeviceptr p = 0;
  const CUresult e = cuMemAlloc(&p, size);
  const int i = remember(e, p, size);
  line(call, e, where(p));
  return i;
}
void cu_free(const char* call, int index, uint64_t offset = 0) {
  if (index < 0) return skipped(call);
  line(call, cuMemFree(dptr_of(index, offset)));
}

void driver_calls() {
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  line("cuInit", cuInit(0));
  line("cuDeviceGet", cuDeviceGet(&dev, 0));
  line("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(&ctx, dev));
  line("cuCtxSetCurrent", cuCtxSetCurrent(ctx));

  const int d = cu_alloc("cuMemAlloc(3 MiB)", 3 * kMiB);
  const int d_small = cu_alloc("cuMemAlloc(4000 B)", 4000);
  {
    CUdeviceptr p = 7;
    const CUresult e = cuMemAlloc(&p, 0);
    line("cuMemAlloc(0)", e, where(p));
  }
  line("cuMemAlloc(NULL out)", cuMemAlloc(nullptr, 64));
  cu_alloc("cuMemAlloc(1 PiB)", uint64_t{1} << 50);

  range_of("cuMemGetAddressRange(d)", d);
  range_of("cuMemGetAddressRange(d+2 MiB)", d, 2 * kMiB);
  range_of("cuMemGetAddressRange(d_small+3999)", d_small, 3999);
  range("cuMemGetAddressRange(foreign)", reinterpret_cast<CUdeviceptr>(&g_foreign));
  range("cuMemGetAddressRange(NULL)", 0);
  attribute_range_of("cuPointerGetAttribute(range, d+2 MiB)", d, 2 * kMiB);
  attribute_range_of("cuPointerGetAttribute(range, d_small+3999)", d_small, 3999);
  attribute_range("cuPointerGetAttribute(range, foreign)",
                  reinterpret_cast<CUdeviceptr>(&g_foreign));
  if (d >= 0) {
    CUdeviceptr base = 0;
    const CUresult e = cuMemGetAddressRange(&base, nullptr, dptr_of(d, 100));
    line("cuMemGetAddressRange(d+100, base only)", e, "base " + where(base));
  } else {
    skipped("cuMemGetAddressRange(d+100, base only)");
  }
  if (d >= 0)
    line("cuMemFreeHost(device d)", cuMemFreeHost(ptr_of(d)));
  else
    skipped("cuMemFreeHost(device d)");
  range_of("cuMemGetAddressRange(d) after cuMemFreeHost", d);
  cu_free("cuMemFree(d+512) interior", d, 512);
  cu_free("cuMemFree(d)", d);
  range_of("cuMemGetAddressRange(d) freed", d);
  attribute_range_of("cuPointerGetAttribute(range, d) freed", d);
  cu_free("cuMemFree(d) again", d);
  cu_free("cuMemFree(d_small)", d_small);
  line("cuMemFree(foreign)", cuMemFree(reinterpret_cast<CUdeviceptr>(&g_foreign)));
  line("cuMemFree(0)", cuMemFree(0));

  // Across the families: runtime memory freed by the driver and back.
  {
    void* p = nullptr;
    const int e = cudaMalloc(&p, 5 * kMiB);
    const int rt = remember(e, reinterpret_cast<uint64_t>(p), 5 * kMiB);
    line("cudaMalloc(5 MiB) for cuMemFree", e, where(p));
    cu_free("cuMemFree(cudaMalloc'ed)", rt);
    const int drv = cu_alloc("cuMemAlloc(700 B) for cudaFree", 700);
    rt_free("cudaFree(cuMemAlloc'ed)", drv);
  }

  // Stream-ordered, freed either way.
  {
    CUdeviceptr p = 0;
    CUresult e = cuMemAllocAsync(&p, 6 * kMiB, nullptr);
    const int async = remember(e, p, 6 * kMiB);
    line("cuMemAllocAsync(6 MiB)", e, where(p));
    range_of("cuMemGetAddressRange(async+5 MiB)", async, 5 * kMiB);
    cu_free("cuMemFree(async)", async);
    const int plain = cu_alloc("cuMemAlloc(2 MiB) for cuMemFreeAsync", 2 * kMiB);
    if (plain >= 0) {
      line("cuMemFreeAsync(plain)", cuMemFreeAsync(dptr_of(plain), nullptr));
      line("cuMemFreeAsync(plain) again", cuMemFreeAsync(dptr_of(plain), nullptr));
    } else {
      skipped("cuMemFreeAsync(plain)");
      skipped("cuMemFreeAsync(plain) again");
    }
    line("cuMemAllocAsync(NULL out)", cuMemAllocAsync(nullptr, 64, nullptr));
    CUmemoryPool pool = nullptr;
    line("cuDeviceGetDefaultMemPool", cuDeviceGetDefaultMemPool(&pool, dev));
    p = 0;
    e = cuMemAllocFromPoolAsync(&p, 4096, pool, nullptr);
    const int from_pool = remember(e, p, 4096);
    line("cuMemAllocFromPoolAsync(4096)", e, where(p));
    if (from_pool >= 0)
      line("cuMemFreeAsync(from pool)", cuMemFreeAsync(dptr_of(from_pool), nullptr));
    else
      skipped("cuMemFreeAsync(from pool)");
    line("cuMemPoolTrimTo(default, 0)", cuMemPoolTrimTo(pool, 0));
  }

  // Managed and pitched.
  {
    CUdeviceptr p = 0;
    CUresult e = cuMemAllocManaged(&p, 2 * kMiB, CU_MEM_ATTACH_GLOBAL);
    const int managed = remember(e, p, 2 * kMiB);
    line("cuMemAllocManaged(2 MiB)", e, where(p));
    range_of("cuMemGetAddressRange(managed+1)", managed, 1);
    cu_free("cuMemFree(managed)", managed);
    line("cuMemAllocManaged(bad flags)", cuMemAllocManaged(&p, 64, 0x100));
    size_t pitch = 0;
    p = 0;
    e = cuMemAllocPitch(&p, &pitch, 700, 3, 8);
    const int pitched = remember(e, p, pitch * 3);
    line("cuMemAllocPitch(700 x 3)", e, where(p) + " pitch " + std::to_string(pitch));
    cu_free("cuMemFree(pitched)", pitched);
    line("cuMemAllocPitch(element 3)", cuMemAllocPitch(&p, &pitch, 700, 3, 3));
  }

  // Pinned host memory through the driver.
  {
    void* p = nullptr;
    CUresult e = cuMemAllocHost(&p, 4096);
    const int host = remember(e, reinterpret_cast<uint64_t>(p), 4096);
    line("cuMemAllocHost(4096)", e, where(p));
    cu_free("cuMemFree(host)", host);
    if (host >= 0)
      line("cuMemFreeHost(host)", cuMemFreeHost(ptr_of(host)));
    else
      skipped("cuMemFreeHost(host)");
    p = nullptr;
    e = cuMemHostAlloc(&p, 4096, CU_MEMHOSTALLOC_PORTABLE);
    const int host2 = remember(e, reinterpret_cast<uint64_t>(p), 4096);
    line("cuMemHostAlloc(4096)", e, where(p));
    if (host2 >= 0)
      line("cuMemFreeHost(hostalloc)", cuMemFreeHost(ptr_of(host2)));
    else
      skipped("cuMemFreeHost(hostalloc)");
  }

  // Capacity queries.
  {
    size_t free_bytes = 0, total = 0;
    CUresult e = cuMemGetInfo(&free_bytes, &total);
    line("cuMemGetInfo", e,
         e == 0 ? (total > 0 && free_bytes <= total ? "consistent" : "inconsistent") : "");
    line("cuMemGetInfo(NULL free)", cuMemGetInfo(nullptr, &total));
    e = cuDeviceTotalMem(&total, dev);
    line("cuDeviceTotalMem", e, e == 0 ? (total > 0 ? "positive" : "zero") : "");
    line("cuDeviceTotalMem(NULL out)", cuDeviceTotalMem(nullptr, dev));
  }

  // Virtual memory management.
  {
    CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
    size_t granularity = 0;
    CUresult e =
        cuMemGetAllocationGranularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    line("cuMemGetAllocationGranularity", e, std::to_string(granularity));
    if (granularity == 0) granularity = 2 * kMiB;
    CUmemGenericAllocationHandle handle = 0;
    e = cuMemCreate(&handle, 2 * granularity, &prop, 0);
    const bool created = e == CUDA_SUCCESS;
    line("cuMemCreate(2 granules)", e);
    CUmemGenericAllocationHandle other = 0;
    line("cuMemCreate(size 0)", cuMemCreate(&other, 0, &prop, 0));
    line("cuMemCreate(half a granule)", cuMemCreate(&other, granularity / 2, &prop, 0));
    line("cuMemCreate(NULL prop)", cuMemCreate(&other, granularity, nullptr, 0));
    line("cuMemCreate(NULL out)", cuMemCreate(nullptr, granularity, &prop, 0));
    CUdeviceptr va = 0;
    e = cuMemAddressReserve(&va, 4 * granularity, 0, 0, 0);
    const int reserved = remember(e, va, 4 * granularity);
    line("cuMemAddressReserve(4 granules)", e, where(va));
    if (created && reserved >= 0) {
      line("cuMemMap", cuMemMap(va, 2 * granularity, 0, handle, 0));
      CUmemAccessDesc access{};
      access.location = prop.location;
      access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
      line("cuMemSetAccess", cuMemSetAccess(va, 2 * granularity, &access, 1));
      range("cuMemGetAddressRange(mapped+100)", va + 100);
      CUmemGenericAllocationHandle retained = 0;
      e = cuMemRetainAllocationHandle(&retained, reinterpret_cast<void*>(va + granularity));
      line("cuMemRetainAllocationHandle(mapped)", e, retained == handle ? "same" : "different");
      if (e == CUDA_SUCCESS) line("cuMemRelease(retained)", cuMemRelease(retained));
      line("cuMemRelease(created) while mapped", cuMemRelease(handle));
      line("cuMemUnmap(half a mapping)", cuMemUnmap(va, granularity));
      line("cuMemUnmap", cuMemUnmap(va, 2 * granularity));
      line("cuMemRelease(created) again", cuMemRelease(handle));
    } else {
      for (const char* c : {"cuMemMap", "cuMemSetAccess", "cuMemGetAddressRange(mapped+100)",
                            "cuMemRetainAllocationHandle(mapped)", "cuMemRelease(retained)",
                            "cuMemRelease(created) while mapped", "cuMemUnmap(half a mapping)",
                            "cuMemUnmap", "cuMemRelease(created) again"})
        skipped(c);
      if (created) line("cuMemRelease(created)", cuMemRelease(handle));
    }
    if (reserved >= 0)
      line("cuMemAddressFree", cuMemAddressFree(va, 4 * granularity));
    else
      skipped("cuMemAddressFree");
    line("cuMemRelease(0)", cuMemRelease(0));
  }
}

// ---- CUDA arrays and host registration (issue 24) ----

// An array handle: the call's code, and whether it handed one out.
template <class Handle>
void created(const char* call, int code, const Handle& h) {  // read after the call
  line(call, code, h != nullptr ? "handle" : "null");
}
template <class Handle, class Destroy>
void destroyed(const char* call, Handle h, Destroy destroy) {
  if (h == nullptr) return skipped(call);
  line(call, destroy(h));
}

void array_calls() {
  const cudaChannelFormatDesc f1{32, 0, 0, 0, cudaChannelFormatKindFloat};
  const cudaChannelFormatDesc f2{32, 32, 0, 0, cudaChannelFormatKindFloat};
  cudaArray_t a = nullptr, layered = nullptr;
  cudaMipmappedArray_t m = nullptr;
  created("cudaMallocArray(256 x 256 float)", cudaMallocArray(&a, &f1, 256, 256, 0), a);
  line("cudaMallocArray(NULL out)", cudaMallocArray(nullptr, &f1, 16, 16, 0));
  cudaArray_t none = nullptr;
  created("cudaMallocArray(NULL desc)", cudaMallocArray(&none, nullptr, 16, 16, 0), none);
  created("cudaMallocArray(width 0)", cudaMallocArray(&none, &f1, 0, 16, 0), none);
  created("cudaMalloc3DArray(64 x 64 x 16 float2, layered)",
          cudaMalloc3DArray(&layered, &f2, cudaExtent{64, 64, 16}, cudaArrayLayered), layered);
  created("cudaMallocMipmappedArray(256 x 256 float, 9 levels)",
          cudaMallocMipmappedArray(&m, &f1, cudaExtent{256, 256, 0}, 9, 0), m);
  cudaMipmappedArray_t too_many = nullptr;  // CUDA clamps the count to the extent's 9
  created("cudaMallocMipmappedArray(256 x 256 float, 10 levels)",
          cudaMallocMipmappedArray(&too_many, &f1, cudaExtent{256, 256, 0}, 10, 0), too_many);
  destroyed("cudaFreeArray(a)", a, cudaFreeArray);
  destroyed("cudaFreeArray(a) again", a, cudaFreeArray);
  line("cudaFreeArray(NULL)", cudaFreeArray(nullptr));
  destroyed("cudaFreeArray(layered)", layered, cudaFreeArray);
  destroyed("cudaFreeMipmappedArray(m)", m, cudaFreeMipmappedArray);
  destroyed("cudaFreeMipmappedArray(too_many)", too_many, cudaFreeMipmappedArray);

  static char buffer[1 << 16] __attribute__((aligned(4096)));
  line("cudaHostRegister(64 KiB)", cudaHostRegister(buffer, sizeof buffer, 0));
  line("cudaHostRegister(64 KiB) again", cudaHostRegister(buffer, sizeof buffer, 0));
  line("cudaHostUnregister", cudaHostUnregister(buffer));
  line("cudaHostUnregister again", cudaHostUnregister(buffer));
  line("cudaHostUnregister(NULL)", cudaHostUnregister(nullptr));
  line("cudaHostRegister(bad flags)", cudaHostRegister(buffer, sizeof buffer, 0x100));
  void* pinned = nullptr;
  if (cudaMallocHost(&pinned, 4096) == cudaSuccess) {
    line("cudaHostRegister(cudaMallocHost memory)", cudaHostRegister(pinned, 4096, 0));
    cudaFreeHost(pinned);
  } else {
    skipped("cudaHostRegister(cudaMallocHost memory)");
  }

  CUarray c = nullptr, cube = nullptr, bad = nullptr;
  CUmipmappedArray cm = nullptr;
  const CUDA_ARRAY_DESCRIPTOR d2{100, 0, CU_AD_FORMAT_UNSIGNED_INT8, 4};
  const CUDA_ARRAY_DESCRIPTOR zero{0, 10, CU_AD_FORMAT_UNSIGNED_INT8, 1};
  CUDA_ARRAY3D_DESCRIPTOR d3{};
  d3.Width = d3.Height = 32;
  d3.Depth = 6;
  d3.Format = CU_AD_FORMAT_HALF;
  d3.NumChannels = 4;
  d3.Flags = CUDA_ARRAY3D_CUBEMAP;
  created("cuArrayCreate(100 uchar4)", cuArrayCreate(&c, &d2), c);
  created("cuArrayCreate(width 0)", cuArrayCreate(&bad, &zero), bad);
  line("cuArrayCreate(NULL out)", cuArrayCreate(nullptr, &d2));
  created("cuArray3DCreate(32 x 32 cubemap half4)", cuArray3DCreate(&cube, &d3), cube);
  d3.Flags = 0;
  d3.Depth = 0;
  created("cuMipmappedArrayCreate(32 x 32 half4, 3 levels)", cuMipmappedArrayCreate(&cm, &d3, 3),
          cm);
  // The wrong destroy for the kind: refused, and the array stays (freed below).
  destroyed("cuMipmappedArrayDestroy(plain array)", reinterpret_cast<CUmipmappedArray>(c),
            cuMipmappedArrayDestroy);
  destroyed("cuArrayDestroy(c)", c, cuArrayDestroy);
  destroyed("cuArrayDestroy(c) again", c, cuArrayDestroy);
  destroyed("cuArrayDestroy(cube)", cube, cuArrayDestroy);
  destroyed("cuMipmappedArrayDestroy(cm)", cm, cuMipmappedArrayDestroy);
  line("cuMemHostRegister(64 KiB)", cuMemHostRegister(buffer, sizeof buffer, 0));
  line("cuMemHostRegister(second half) overlapping",
       cuMemHostRegister(buffer + sizeof buffer / 2, sizeof buffer / 2, 0));
  line("cuMemHostUnregister(interior)", cuMemHostUnregister(buffer + 4096));
  line("cuMemHostUnregister", cuMemHostUnregister(buffer));
  line("cuMemHostRegister(size 0)", cuMemHostRegister(buffer, 0, 0));
}

// ---- IPC and shareable VMM handles (issue 24): this process exports, a child it spawns imports
// ----

constexpr int kChildFd = 10;

// Runs this program again as `<self> <mode> <arg>` (the shareable fd as descriptor kChildFd) and
// waits: its lines go to the same stdout, in order. Under the preload the child writes its own
// trace (GPUMEM_TRACE with "-child" appended).
void run_child(const char* mode, const std::string& arg, int fd = -1) {
  std::fflush(stdout);
  if (const char* t = std::getenv("GPUMEM_TRACE"); t != nullptr && std::strcmp(t, "off") != 0)
    setenv("GPUMEM_TRACE", (std::string(t) + "-child").c_str(), 1);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (fd >= 0) posix_spawn_file_actions_adddup2(&fa, fd, kChildFd);
  const char* args[] = {"/proc/self/exe", mode, arg.c_str(), nullptr};
  pid_t child = -1;
  int status = -1;
  if (posix_spawn(&child, args[0], &fa, nullptr, const_cast<char**>(args), environ) == 0)
    waitpid(child, &status, 0);
  posix_spawn_file_actions_destroy(&fa);
  line(mode, WIFEXITED(status) ? WEXITSTATUS(status) : -1, "exit status");
}

std::string to_hex(const void* p, size_t n) {
  std::string s;
  char b[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", static_cast<const unsigned char*>(p)[i]);
    s += b;
  }
  return s;
}

void ipc_calls() {
  // Pitched memory is never carved from a gpumem pool, so every policy can export it.
  CUdeviceptr p = 0;
  size_t pitch = 0;
  CUresult e = cuMemAllocPitch(&p, &pitch, 2048, 1024, 4);
  const int exported = remember(e, p, pitch * 1024);
  line("cuMemAllocPitch(2048 x 1024) for IPC", e, where(p));
  CUipcMemHandle h{}, other{};
  line("cuIpcGetMemHandle(foreign)",
       cuIpcGetMemHandle(&other, reinterpret_cast<CUdeviceptr>(&g_foreign)));
  if (exported < 0) {
    for (const char* c :
         {"cuIpcGetMemHandle(exported)", "cuIpcGetMemHandle(exported+256)",
          "cuIpcOpenMemHandle(own handle)", "cudaIpcGetMemHandle(exported)",
          "cudaIpcOpenMemHandle(own handle)", "  child: cuIpcOpenMemHandle",
          "  child: cuMemGetAddressRange(import+1)", "  child: cuIpcOpenMemHandle again",
          "  child: cuIpcCloseMemHandle", "  child: cuIpcCloseMemHandle (second open)",
          "  child: cuIpcCloseMemHandle again", "  child: cudaIpcOpenMemHandle",
          "  child: cudaIpcCloseMemHandle", "  child: cudaIpcCloseMemHandle again", "ipc_child",
          "cuIpcCloseMemHandle(exported, not an import)",
          "cudaIpcCloseMemHandle(exported, not an import)", "cuMemFree(exported)"})
      skipped(c);
  } else {
    line("cuIpcGetMemHandle(exported)", cuIpcGetMemHandle(&h, p));
    line("cuIpcGetMemHandle(exported+256)", cuIpcGetMemHandle(&other, p + 256));
    CUdeviceptr own = 0;
    line("cuIpcOpenMemHandle(own handle)",
         cuIpcOpenMemHandle(&own, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS));
    // The runtime's calls name the same memory by the same handle.
    cudaIpcMemHandle_t rh{};
    const int re = cudaIpcGetMemHandle(&rh, ptr_of(exported));
    line("cudaIpcGetMemHandle(exported)", re,
         std::memcmp(&rh, &h, sizeof h) == 0 ? "same bytes" : "other bytes");
    void* rown = nullptr;
    line("cudaIpcOpenMemHandle(own handle)",
         cudaIpcOpenMemHandle(&rown, rh, cudaIpcMemLazyEnablePeerAccess));
    run_child("ipc_child", to_hex(&h, sizeof h));
    line("cuIpcCloseMemHandle(exported, not an import)", cuIpcCloseMemHandle(p));
    line("cudaIpcCloseMemHandle(exported, not an import)", cudaIpcCloseMemHandle(ptr_of(exported)));
    cu_free("cuMemFree(exported)", exported);
  }
  CUipcMemHandle zeros{};
  CUdeviceptr q = 0;
  line("cuIpcOpenMemHandle(zeros)",
       cuIpcOpenMemHandle(&q, zeros, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS));
  line("cuIpcOpenMemHandle(NULL out)", cuIpcOpenMemHandle(nullptr, zeros, 0));

  // A VMM allocation exported as a POSIX file descriptor.
  CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
  const auto kFd = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  CUmemGenericAllocationHandle plain = 0, shared = 0, own = 0, bad = 0;
  e = cuMemCreate(&plain, 2 * kMiB, &prop, 0);
  line("cuMemCreate(2 MiB, not exportable)", e);
  int fd = -1;
  if (e == CUDA_SUCCESS) {
    line("cuMemExportToShareableHandle(not exportable)",
         cuMemExportToShareableHandle(&fd, plain, kFd, 0));
    line("cuMemRelease(not exportable)", cuMemRelease(plain));
  } else {
    skipped("cuMemExportToShareableHandle(not exportable)");
    skipped("cuMemRelease(not exportable)");
  }
  prop.requestedHandleTypes = kFd;
  e = cuMemCreate(&shared, 2 * kMiB, &prop, 0);
  line("cuMemCreate(2 MiB, POSIX fd)", e);
  const bool made = e == CUDA_SUCCESS;
  if (made) {
    line("cuMemExportToShareableHandle(flags 1)",
         cuMemExportToShareableHandle(&fd, shared, kFd, 1));
    line("cuMemExportToShareableHandle(fabric)",
         cuMemExportToShareableHandle(&fd, shared, CU_MEM_HANDLE_TYPE_FABRIC, 0));
    line("cuMemExportToShareableHandle(NULL out)",
         cuMemExportToShareableHandle(nullptr, shared, kFd, 0));
    e = cuMemExportToShareableHandle(&fd, shared, kFd, 0);
    line("cuMemExportToShareableHandle(fd)", e, e == CUDA_SUCCESS && fd >= 0 ? "fd" : "none");
  } else {
    for (const char* c :
         {"cuMemExportToShareableHandle(flags 1)", "cuMemExportToShareableHandle(fabric)",
          "cuMemExportToShareableHandle(NULL out)", "cuMemExportToShareableHandle(fd)"})
      skipped(c);
  }
  void* os = reinterpret_cast<void*>(static_cast<intptr_t>(fd));
  if (fd >= 0) {
    e = cuMemImportFromShareableHandle(&own, os, kFd);
    line("cuMemImportFromShareableHandle(own fd)", e);
    if (e == CUDA_SUCCESS) line("cuMemRelease(own import)", cuMemRelease(own));
    run_child("shareable_child", std::to_string(kChildFd), fd);
  } else {
    for (const char* c :
         {"cuMemImportFromShareableHandle(own fd)", "cuMemRelease(own import)",
          "  child: cuMemImportFromShareableHandle", "  child: cuMemAddressReserve",
          "  child: cuMemMap(import)", "  child: cuMemMap(import) again over its mapping",
          "  child: cuMemRelease(import) while mapped", "  child: cuMemUnmap",
          "  child: cuMemRelease(import) again", "  child: cuMemAddressFree", "shareable_child"})
      skipped(c);
  }
  line("cuMemImportFromShareableHandle(fd -1)",
       cuMemImportFromShareableHandle(&bad, reinterpret_cast<void*>(intptr_t{-1}), kFd));
  const int dev_null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  line("cuMemImportFromShareableHandle(/dev/null)",
       cuMemImportFromShareableHandle(
           &bad, reinterpret_cast<void*>(static_cast<intptr_t>(dev_null)), kFd));
  close(dev_null);
  line("cuMemImportFromShareableHandle(Win32)",
       cuMemImportFromShareableHandle(&bad, os, CU_MEM_HANDLE_TYPE_WIN32));
  line("cuMemImportFromShareableHandle(NULL out)",
       cuMemImportFromShareableHandle(nullptr, os, kFd));
  if (fd >= 0) close(fd);
  if (made)
    line("cuMemRelease(exported)", cuMemRelease(shared));
  else
    skipped("cuMemRelease(exported)");
}

// The importing child of ipc_calls: the parent's IPC handle (hex), opened twice and closed three
// times through the driver, then opened once and closed twice through the runtime.
int ipc_child(const char* hex) {
  cuInit(0);
  CUcontext ctx = nullptr;
  cuDevicePrimaryCtxRetain(&ctx, 0);
  cuCtxSetCurrent(ctx);
  CUipcMemHandle h{};
  for (size_t i = 0; i < sizeof h && hex[2 * i] != '\0' && hex[2 * i + 1] != '\0'; ++i)
    reinterpret_cast<unsigned char*>(&h)[i] =
        static_cast<unsigned char>(std::stoul(std::string(hex + 2 * i, 2), nullptr, 16));
  CUdeviceptr p = 0, again = 0;
  CUresult e = cuIpcOpenMemHandle(&p, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
  line("  child: cuIpcOpenMemHandle", e, p != 0 ? "mapped" : "null");
  CUdeviceptr base = 0;
  size_t size = 0;
  const CUresult r = cuMemGetAddressRange(&base, &size, p + 1);
  line("  child: cuMemGetAddressRange(import+1)", r,
       r == CUDA_SUCCESS ? (base == p ? "base " : "other ") + std::to_string(size) : "");
  e = cuIpcOpenMemHandle(&again, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS);
  line("  child: cuIpcOpenMemHandle again", e, again == p ? "same" : "different");
  line("  child: cuIpcCloseMemHandle", cuIpcCloseMemHandle(p));
  line("  child: cuIpcCloseMemHandle (second open)", cuIpcCloseMemHandle(p));
  line("  child: cuIpcCloseMemHandle again", cuIpcCloseMemHandle(p));
  cudaIpcMemHandle_t rh{};
  std::memcpy(&rh, &h, sizeof rh);
  void* rp = nullptr;
  const int re = cudaIpcOpenMemHandle(&rp, rh, cudaIpcMemLazyEnablePeerAccess);
  line("  child: cudaIpcOpenMemHandle", re, rp != nullptr ? "mapped" : "null");
  line("  child: cudaIpcCloseMemHandle", cudaIpcCloseMemHandle(rp));
  line("  child: cudaIpcCloseMemHandle again", cudaIpcCloseMemHandle(rp));
  return 0;
}

// The importing child of the shareable handle: import, map, read, release while mapped, unmap,
// release again.
int shareable_child(int fd) {
  cuInit(0);
  CUcontext ctx = nullptr;
  cuDevicePrimaryCtxRetain(&ctx, 0);
  cuCtxSetCurrent(ctx);
  CUmemGenericAllocationHandle h = 0;
  const auto kFd = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
  CUresult e =
      cuMemImportFromShareableHandle(&h, reinterpret_cast<void*>(static_cast<intptr_t>(fd)), kFd);
  line("  child: cuMemImportFromShareableHandle", e);
  if (e != CUDA_SUCCESS) return 0;
  CUdeviceptr va = 0;
  line("  child: cuMemAddressReserve", cuMemAddressReserve(&va, 2 * kMiB, 0, 0, 0));
  line("  child: cuMemMap(import)", cuMemMap(va, 2 * kMiB, 0, h, 0));
  line("  child: cuMemMap(import) again over its mapping", cuMemMap(va, 2 * kMiB, 0, h, 0));
  line("  child: cuMemRelease(import) while mapped", cuMemRelease(h));
  line("  child: cuMemUnmap", cuMemUnmap(va, 2 * kMiB));
  line("  child: cuMemRelease(import) again", cuMemRelease(h));
  line("  child: cuMemAddressFree", cuMemAddressFree(va, 2 * kMiB));
  return 0;
}

}  // namespace

// NVML's memory queries, reached as pynvml reaches them (dlopen + dlsym of libnvidia-ml.so.1):
// their codes with good and bad arguments, and whether each answer is consistent in itself (a
// cap changes the figures, as it changes cudaMemGetInfo's, so they are not printed).
void nvml_calls() {
  const char* names[] = {"nvmlInit_v2", "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetMemoryInfo",
                         "nvmlDeviceGetMemoryInfo_v2"};
  void* h = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  void* f[4] = {};
  for (int i = 0; i < 4 && h != nullptr; ++i) f[i] = dlsym(h, names[i]);
  if (h == nullptr || f[0] == nullptr || f[1] == nullptr || f[2] == nullptr || f[3] == nullptr) {
    line("libnvidia-ml.so.1 with its memory queries", 1);
    return;
  }
  const auto init = reinterpret_cast<decltype(&::nvmlInit_v2)>(f[0]);
  const auto handle = reinterpret_cast<decltype(&::nvmlDeviceGetHandleByIndex_v2)>(f[1]);
  const auto memory = reinterpret_cast<decltype(&::nvmlDeviceGetMemoryInfo)>(f[2]);
  const auto memory_v2 = reinterpret_cast<decltype(&::nvmlDeviceGetMemoryInfo_v2)>(f[3]);
  line("nvmlInit_v2", init());
  nvmlDevice_t dev = nullptr;
  line("nvmlDeviceGetHandleByIndex_v2(0)", handle(0, &dev));
  nvmlMemory_t m{};
  int e = memory(dev, &m);
  line("nvmlDeviceGetMemoryInfo", e,
       e != 0 ? ""
              : (m.total > 0 && m.free <= m.total && m.used == m.total - m.free ? "consistent"
                                                                                : "inconsistent"));
  line("nvmlDeviceGetMemoryInfo(NULL out)", memory(dev, nullptr));
  nvmlMemory_v2_t m2{};
  m2.version = nvmlMemory_v2;
  e = memory_v2(dev, &m2);
  line("nvmlDeviceGetMemoryInfo_v2", e,
       e != 0 ? ""
              : (m2.version == nvmlMemory_v2 && m2.total > 0 && m2.free <= m2.total &&
                         m2.used <= m2.total
                     ? "consistent"
                     : "inconsistent"));
  line("nvmlDeviceGetMemoryInfo_v2(NULL out)", memory_v2(dev, nullptr));
  nvmlMemory_v2_t old_version{};
  old_version.version = 1;
  line("nvmlDeviceGetMemoryInfo_v2(version 1)", memory_v2(dev, &old_version));
}

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc == 3 && std::strcmp(argv[1], "ipc_child") == 0) return ipc_child(argv[2]);
  if (argc == 3 && std::strcmp(argv[1], "shareable_child") == 0)
    return shareable_child(std::atoi(argv[2]));
  runtime_calls();
  driver_calls();
  array_calls();
  ipc_calls();
  nvml_calls();
  // What is still live at the end is the same too: every allocation above was freed.
  rt_meminfo("cudaMemGetInfo at the end");
  return 0;
}
