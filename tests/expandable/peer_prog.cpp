// peer_prog: peer access on two simulated devices, as a kernel would meet it
// (simcuda_device_access, docs/simcuda.md "Peer access"). Prints one line per step, "<step>
// <code>", the codes CUDA's (0 = reachable, 700 = a GPU would fault). Blocks of device 0 are
// touched from device 1 before peer access, after cudaDeviceEnablePeerAccess (a block allocated
// before the call and one after), after cudaDeviceDisablePeerAccess, then the same through the
// driver's cuCtxEnablePeerAccess. peer_test.cpp runs it without gpumem and under each pool: the
// lines must be the same.
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdio>

namespace {

using Access = int (*)(int, const void*, size_t, int);
Access g_access = nullptr;

constexpr size_t kMiB = size_t{1} << 20;

void touch(const char* step, int device, const void* p, size_t bytes) {
  std::printf("%s %d\n", step, g_access(device, p, bytes, 1));
}

void code(const char* step, int c) {
  std::printf("%s %d\n", step, c);
}

}  // namespace

int main() {
  g_access = reinterpret_cast<Access>(dlsym(RTLD_DEFAULT, "simcuda_device_access"));
  if (g_access == nullptr) {
    std::fprintf(stderr, "peer_prog: not on simcuda (no simcuda_device_access)\n");
    return 1;
  }
  void *before = nullptr, *after = nullptr, *on1 = nullptr;
  if (cudaSetDevice(0) != cudaSuccess || cudaMalloc(&before, 3 * kMiB) != cudaSuccess) return 1;
  touch("before-enable", 1, before, 3 * kMiB);
  touch("own-device", 0, before, 3 * kMiB);

  if (cudaSetDevice(1) != cudaSuccess) return 1;
  code("enable", cudaDeviceEnablePeerAccess(0, 0));
  code("enable-again", cudaDeviceEnablePeerAccess(0, 0));
  touch("mapped-before", 1, before, 3 * kMiB);
  if (cudaMalloc(&on1, kMiB) != cudaSuccess) return 1;
  touch("other-way", 0, on1, kMiB);  // enabling is one way

  if (cudaSetDevice(0) != cudaSuccess || cudaMalloc(&after, 9 * kMiB) != cudaSuccess) return 1;
  touch("mapped-after", 1, after, 9 * kMiB);

  if (cudaSetDevice(1) != cudaSuccess) return 1;
  code("disable", cudaDeviceDisablePeerAccess(0));
  code("disable-again", cudaDeviceDisablePeerAccess(0));
  touch("after-disable", 1, before, 3 * kMiB);
  touch("after-disable-later-block", 1, after, 9 * kMiB);

  // The driver's call: device 1's context gets access to device 0's context.
  CUcontext ctx0 = nullptr, ctx1 = nullptr;
  if (cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS ||
      cuDevicePrimaryCtxRetain(&ctx1, 1) != CUDA_SUCCESS || cuCtxSetCurrent(ctx1) != CUDA_SUCCESS)
    return 1;
  code("driver-enable", cuCtxEnablePeerAccess(ctx0, 0));
  touch("driver-mapped-before", 1, after, 9 * kMiB);
  code("driver-disable", cuCtxDisablePeerAccess(ctx0));
  touch("driver-after-disable", 1, after, 9 * kMiB);

  if (cudaFree(on1) != cudaSuccess || cudaSetDevice(0) != cudaSuccess ||
      cudaFree(before) != cudaSuccess || cudaFree(after) != cudaSuccess)
    return 1;
  return 0;
}
