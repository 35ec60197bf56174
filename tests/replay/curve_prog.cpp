// The program replay's curve tests record under `gpumem run --pool P` (curve_test.cpp): one
// thread, a fixed pseudo-random sequence of 600 steps. Each step allocates (cudaMalloc, 512 B to
// 40 MiB, at most 24 live) or frees one live block, a third of them stream-ordered (cudaFreeAsync
// on a stream of its own, so the pool keeps them pending on that stream). Beside them, what no
// gpumem pool serves: cudaMallocAsync and cudaMallocPitch blocks, freed a few steps later. Every
// 150 steps gpumem_empty_cache(0). Exit status 0 when every call answered cudaSuccess; otherwise
// the failed call on stderr.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "gpumem/gpumem.h"

namespace {

bool ok(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "curve_prog: %s answered %d (%s)\n", call, static_cast<int>(e),
               cudaGetErrorString(e));
  return false;
}

struct Block {
  void* p = nullptr;
  bool async = false;  // from cudaMallocAsync: freed by cudaFreeAsync
};

}  // namespace

int main() {
  std::mt19937_64 rng(19);
  cudaStream_t stream = nullptr;
  if (!ok(cudaStreamCreate(&stream), "cudaStreamCreate")) return 1;
  std::vector<Block> live;
  for (int step = 0; step < 600; ++step) {
    if (step % 150 == 149 && gpumem_present()) (void)gpumem_empty_cache(0);
    const bool alloc = live.empty() || (live.size() < 24 && rng() % 5 < 3);
    if (!alloc) {
      const size_t i = rng() % live.size();
      const Block b = live[i];
      live[i] = live.back();
      live.pop_back();
      const bool ordered = b.async || rng() % 3 == 0;
      if (!ok(ordered ? cudaFreeAsync(b.p, stream) : cudaFree(b.p), "free")) return 1;
      continue;
    }
    // Sizes spread over six decades: 512 B .. 40 MiB, most of them small, as in training.
    const uint64_t scale = uint64_t{512} << (rng() % 17);
    const uint64_t bytes = std::min<uint64_t>(scale + rng() % scale, 40ull << 20);
    Block b;
    const uint64_t kind = rng() % 20;
    if (kind == 0) {
      b.async = true;
      if (!ok(cudaMallocAsync(&b.p, bytes, stream), "cudaMallocAsync")) return 1;
    } else if (kind == 1) {
      size_t pitch = 0;
      if (!ok(cudaMallocPitch(&b.p, &pitch, 4096, bytes / 4096 + 1), "cudaMallocPitch")) return 1;
    } else if (!ok(cudaMalloc(&b.p, bytes), "cudaMalloc")) {
      return 1;
    }
    live.push_back(b);
  }
  for (const Block& b : live)
    if (!ok(b.async ? cudaFreeAsync(b.p, stream) : cudaFree(b.p), "free")) return 1;
  if (!ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize")) return 1;
  if (gpumem_present()) (void)gpumem_empty_cache(0);
  return ok(cudaStreamDestroy(stream), "cudaStreamDestroy") ? 0 : 1;
}
