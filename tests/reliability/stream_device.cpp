// The program stream_device_test.cpp runs under LD_PRELOAD=libgpumem.so on simcuda with two
// devices (SIMCUDA_DEVICES=2) and a cap on device 1 only (GPUMEM_LIMIT_1=64MiB): stream-ordered
// allocations take memory from the stream's (or the pool's) device, not the current one. Device 0
// stays current throughout. Prints "key value" lines (return codes) and exits 0 when every call
// ran.
//
//   stream_device runtime  cudaMallocAsync 48 MiB on a stream of device 1 (fits), 48 MiB more
//                          (over device 1's cap), cudaMalloc 48 MiB on device 0 (no cap),
//                          cudaFreeAsync of the first, 48 MiB on device 1 again (fits)
//   stream_device driver   the same with cuMemAllocAsync, cuMemAlloc_v2, cuMemFreeAsync
//   stream_device pool     cudaMallocFromPoolAsync / cuMemAllocFromPoolAsync from device 1's
//                          default pool on the legacy stream (device 0's): the same sequence
//   stream_device unknown-free  cudaFreeAsync and cuMemFreeAsync of a pointer nobody allocated,
//                          on a stream of device 1
//   stream_device pool-access  from device 1's default pool on the legacy stream (device 0's):
//                          an allocation, device 0 given read-write access to the pool
//                          (cudaMemPoolSetAccess), one, the access taken back, one; the same
//                          three through the driver (cuMemPoolSetAccess)
//   stream_device pool-recreate  a pool made on device 1 (cudaMemPoolCreate), an allocation from
//                          it on the legacy stream (device 0's), freed, the pool destroyed, a
//                          pool made on device 0 (simcuda hands out the same handle), one
//                          allocation from it; the same through the driver (cuMemPoolCreate,
//                          cuMemPoolDestroy)
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kBytes = 48 * kMiB;

void print(const char* key, long long value) {
  std::printf("%s %lld\n", key, value);
}

// A stream of device 1, created while device 1 is current; device 0 is current on return.
bool stream_on_device_1(cudaStream_t* s) {
  return cudaSetDevice(1) == cudaSuccess && cudaStreamCreate(s) == cudaSuccess &&
         cudaSetDevice(0) == cudaSuccess;
}

int runtime_calls() {
  cudaStream_t s = nullptr;
  if (!stream_on_device_1(&s)) return 1;
  void *first = nullptr, *over = nullptr, *on0 = nullptr, *again = nullptr;
  print("first", cudaMallocAsync(&first, kBytes, s));
  print("over", cudaMallocAsync(&over, kBytes, s));
  print("on_device_0", cudaMalloc(&on0, kBytes));
  print("free_first", cudaFreeAsync(first, s));
  print("again", cudaMallocAsync(&again, kBytes, s));
  cudaFreeAsync(again, s);
  cudaFreeAsync(over, s);  // NULL when refused: no event
  cudaFree(on0);
  return cudaStreamSynchronize(s) == cudaSuccess && cudaStreamDestroy(s) == cudaSuccess ? 0 : 1;
}

int driver_calls() {
  CUdevice dev0 = 0, dev1 = 0;
  CUcontext ctx0 = nullptr, ctx1 = nullptr;
  CUstream s = nullptr;
  for (CUresult r :
       {cuInit(0), cuDeviceGet(&dev0, 0), cuDeviceGet(&dev1, 1),
        cuDevicePrimaryCtxRetain(&ctx0, dev0), cuDevicePrimaryCtxRetain(&ctx1, dev1),
        cuCtxSetCurrent(ctx1), cuStreamCreate(&s, CU_STREAM_NON_BLOCKING), cuCtxSetCurrent(ctx0)})
    if (r != CUDA_SUCCESS) return 1;
  CUdeviceptr first = 0, over = 0, on0 = 0, again = 0;
  print("first", cuMemAllocAsync(&first, kBytes, s));
  print("over", cuMemAllocAsync(&over, kBytes, s));
  print("on_device_0", cuMemAlloc(&on0, kBytes));
  print("free_first", cuMemFreeAsync(first, s));
  print("again", cuMemAllocAsync(&again, kBytes, s));
  cuMemFreeAsync(again, s);
  if (over != 0) cuMemFreeAsync(over, s);
  cuMemFree(on0);
  return cuStreamSynchronize(s) == CUDA_SUCCESS && cuStreamDestroy(s) == CUDA_SUCCESS ? 0 : 1;
}

int pool_calls() {
  cudaMemPool_t pool = nullptr;
  if (cudaSetDevice(0) != cudaSuccess || cudaDeviceGetDefaultMemPool(&pool, 1) != cudaSuccess)
    return 1;
  void *first = nullptr, *on0 = nullptr;
  CUdeviceptr over = 0, again = 0;
  print("first", cudaMallocFromPoolAsync(&first, kBytes, pool, nullptr));
  print("over", cuMemAllocFromPoolAsync(&over, kBytes, pool, nullptr));
  print("on_device_0", cudaMalloc(&on0, kBytes));
  print("free_first", cudaFreeAsync(first, nullptr));
  print("again", cuMemAllocFromPoolAsync(&again, kBytes, pool, nullptr));
  cuMemFreeAsync(again, nullptr);
  if (over != 0) cuMemFreeAsync(over, nullptr);
  cudaFree(on0);
  return cudaDeviceSynchronize() == cudaSuccess ? 0 : 1;
}

// Device 0's access to `pool` through the runtime or the driver.
int set_access_of_device_0(cudaMemPool_t pool, bool read_write, bool driver) {
  if (driver) {
    CUmemAccessDesc a{};
    a.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    a.location.id = 0;
    a.flags = read_write ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE : CU_MEM_ACCESS_FLAGS_PROT_NONE;
    return cuMemPoolSetAccess(pool, &a, 1);
  }
  cudaMemAccessDesc a{};
  a.location.type = cudaMemLocationTypeDevice;
  a.location.id = 0;
  a.flags = read_write ? cudaMemAccessFlagsProtReadWrite : cudaMemAccessFlagsProtNone;
  return cudaMemPoolSetAccess(pool, &a, 1);
}

int pool_access_calls() {
  cudaMemPool_t pool = nullptr;
  if (cudaSetDevice(0) != cudaSuccess || cudaDeviceGetDefaultMemPool(&pool, 1) != cudaSuccess)
    return 1;
  for (const bool driver : {false, true}) {
    const char* family = driver ? "driver" : "runtime";
    for (int step = 0; step < 3; ++step) {
      if (step > 0) {
        const int set = set_access_of_device_0(pool, step == 1, driver);
        std::printf("%s_set_%d %d\n", family, step, set);
      }
      void* p = nullptr;
      const int got = cudaMallocFromPoolAsync(&p, kMiB, pool, nullptr);
      std::printf("%s_alloc_%d %d\n", family, step, got);
      if (got == 0) cudaFreeAsync(p, nullptr);
    }
  }
  return cudaDeviceSynchronize() == cudaSuccess ? 0 : 1;
}

// A pool on `device`, through the runtime or the driver.
int make_pool(int device, bool driver, cudaMemPool_t* pool) {
  if (driver) {
    CUmemPoolProps p{};
    p.allocType = CU_MEM_ALLOCATION_TYPE_PINNED;
    p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    p.location.id = device;
    return cuMemPoolCreate(pool, &p);
  }
  cudaMemPoolProps p{};
  p.allocType = cudaMemAllocationTypePinned;
  p.location.type = cudaMemLocationTypeDevice;
  p.location.id = device;
  return cudaMemPoolCreate(pool, &p);
}

int pool_recreate_calls() {
  if (cudaSetDevice(0) != cudaSuccess) return 1;
  for (const bool driver : {false, true}) {
    const char* family = driver ? "driver" : "runtime";
    cudaMemPool_t pools[2] = {};
    for (int i = 0; i < 2; ++i) {
      std::printf("%s_create_%d %d\n", family, i, make_pool(1 - i, driver, &pools[i]));
      void* p = nullptr;
      std::printf("%s_alloc_%d %d\n", family, i,
                  cudaMallocFromPoolAsync(&p, kMiB, pools[i], nullptr));
      if (p != nullptr) cudaFreeAsync(p, nullptr);
      const int destroyed = driver ? static_cast<int>(cuMemPoolDestroy(pools[i]))
                                   : static_cast<int>(cudaMemPoolDestroy(pools[i]));
      std::printf("%s_destroy_%d %d\n", family, i, destroyed);
    }
    std::printf("%s_same_handle %d\n", family, pools[0] == pools[1] ? 1 : 0);
  }
  return cudaDeviceSynchronize() == cudaSuccess ? 0 : 1;
}

int unknown_free_calls() {
  cudaStream_t s = nullptr;
  if (!stream_on_device_1(&s)) return 1;
  void* nobodys = reinterpret_cast<void*>(uintptr_t{0x7a5000000000});
  print("runtime", cudaFreeAsync(nobodys, s));
  print("driver", cuMemFreeAsync(reinterpret_cast<CUdeviceptr>(nobodys), s));
  return cudaStreamDestroy(s) == cudaSuccess ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "runtime") return runtime_calls();
  if (mode == "driver") return driver_calls();
  if (mode == "pool") return pool_calls();
  if (mode == "unknown-free") return unknown_free_calls();
  if (mode == "pool-access") return pool_access_calls();
  if (mode == "pool-recreate") return pool_recreate_calls();
  std::fprintf(stderr,
               "usage: stream_device runtime|driver|pool|unknown-free|pool-access|pool-recreate\n");
  return 2;
}
