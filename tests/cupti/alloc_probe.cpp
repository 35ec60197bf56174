// gpumem-alloc-probe: a fixed, known set of CUDA allocations, for comparing captures of the same
// program (preload trace vs CUPTI trace in scripts/gpu-check) and for the static-cudart case. Built
// twice from this file: with the shared cudart (gpumem-alloc-probe) and with the static cudart,
// nvcc's default (gpumem-alloc-probe-static), which symbol interposition alone cannot see.
//
// Prints one JSON line: {"program":..., "allocs":N, "alloc_bytes":B, "async_allocs":A}.
// Exit 0 when every call succeeded, 3 when there is no usable CUDA device (the error is printed).
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>

#ifndef GPUMEM_PROBE_NAME
#define GPUMEM_PROBE_NAME "gpumem-alloc-probe"
#endif

namespace {

int fail(const char* what, cudaError_t err) {
  std::fprintf(stderr, "%s: %s failed: %d (%s)\n", GPUMEM_PROBE_NAME, what, static_cast<int>(err),
               cudaGetErrorString(err));
  return err == cudaErrorInsufficientDriver || err == cudaErrorNoDevice ||
                 err == cudaErrorStubLibrary
             ? 3
             : 1;
}

}  // namespace

int main(int argc, char** argv) {
  bool with_async = !(argc > 1 && std::strcmp(argv[1], "--no-async") == 0);
  int devices = 0;
  if (cudaError_t e = cudaGetDeviceCount(&devices); e != cudaSuccess)
    return fail("cudaGetDeviceCount", e);
  const size_t sizes[] = {1u << 20, 2u << 20, 3u << 20, 4u << 20, 5u << 20};
  void* ptrs[5] = {};
  size_t bytes = 0;
  int allocs = 0;
  for (int i = 0; i < 5; ++i) {
    if (cudaError_t e = cudaMalloc(&ptrs[i], sizes[i]); e != cudaSuccess)
      return fail("cudaMalloc", e);
    bytes += sizes[i];
    ++allocs;
  }
  for (void* p : ptrs)
    if (cudaError_t e = cudaFree(p); e != cudaSuccess) return fail("cudaFree", e);

  int async_allocs = 0;
  if (with_async) {
    cudaStream_t s = nullptr;
    if (cudaError_t e = cudaStreamCreate(&s); e != cudaSuccess) return fail("cudaStreamCreate", e);
    void* p = nullptr;
    if (cudaError_t e = cudaMallocAsync(&p, 6u << 20, s); e != cudaSuccess)
      return fail("cudaMallocAsync", e);
    if (cudaError_t e = cudaFreeAsync(p, s); e != cudaSuccess) return fail("cudaFreeAsync", e);
    if (cudaError_t e = cudaStreamSynchronize(s); e != cudaSuccess)
      return fail("cudaStreamSynchronize", e);
    cudaStreamDestroy(s);
    bytes += 6u << 20;
    ++allocs;
    ++async_allocs;
  }
  std::printf("{\"program\":\"%s\",\"allocs\":%d,\"alloc_bytes\":%zu,\"async_allocs\":%d}\n",
              GPUMEM_PROBE_NAME, allocs, bytes, async_allocs);
  return 0;
}
