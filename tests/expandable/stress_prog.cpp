// stress_prog THREADS STEPS: run under GPUMEM_POOL=expandable (tests/expandable). Each thread has
// a stream of its own and does STEPS steps: allocate (cudaMalloc, 512 B to 3 MiB, at most 8 live)
// and write its tag into the block's first and last 8 bytes (cudaMemcpy), or check a block's tags
// and free it, by cudaFree or by cudaFreeAsync on its stream. Then every thread synchronizes and
// the program calls gpumem_empty_cache(0). Prints, on separate lines:
//   pairs N              allocations (each freed)
//   device_free_equal B  1 when the driver's free memory (cudaMemGetInfo) is what it was before
//                        the first allocation, else 0: every page went back to the device
//   released B           what gpumem_empty_cache(0) gave back
//   stats ...            gpumem_get_stats(0) afterwards
// Exit status 0 when every call succeeded and every tag read back as written.
#include <cuda_runtime_api.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "gpumem/gpumem.h"

namespace {

std::atomic<int> g_failures{0};
std::atomic<uint64_t> g_pairs{0};

bool ok(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "stress_prog: %s answered %d\n", call, static_cast<int>(e));
  g_failures.fetch_add(1);
  return false;
}

void worker(int id, int steps) {
  cudaStream_t stream = nullptr;
  if (!ok(cudaStreamCreate(&stream), "cudaStreamCreate")) return;
  std::mt19937_64 rng(static_cast<uint64_t>(id) + 7);
  std::vector<std::pair<char*, uint64_t>> mine;
  auto release = [&](char* p, uint64_t bytes) {
    uint64_t head = 0, tail = 0;
    if (!ok(cudaMemcpy(&head, p, 8, cudaMemcpyDeviceToHost), "cudaMemcpy") ||
        !ok(cudaMemcpy(&tail, p + bytes - 8, 8, cudaMemcpyDeviceToHost), "cudaMemcpy"))
      return;
    if (head != tail || (head >> 32) != static_cast<uint64_t>(id)) {
      std::fprintf(stderr, "stress_prog: thread %d's block %p was overwritten\n", id,
                   static_cast<void*>(p));
      g_failures.fetch_add(1);
    }
    (void)ok(rng() % 2 ? cudaFreeAsync(p, stream) : cudaFree(p), "free");
  };
  for (int i = 0; i < steps; ++i) {
    if (mine.size() < 8 && (mine.empty() || rng() % 2 == 0)) {
      const uint64_t bytes = 512 + rng() % (rng() % 4 == 0 ? 3u << 20 : 64u << 10);
      char* p = nullptr;
      if (!ok(cudaMalloc(reinterpret_cast<void**>(&p), bytes), "cudaMalloc")) return;
      const uint64_t tag = (static_cast<uint64_t>(id) << 32) | static_cast<uint64_t>(i);
      if (!ok(cudaMemcpy(p, &tag, 8, cudaMemcpyHostToDevice), "cudaMemcpy") ||
          !ok(cudaMemcpy(p + bytes - 8, &tag, 8, cudaMemcpyHostToDevice), "cudaMemcpy"))
        return;
      mine.emplace_back(p, bytes);
      g_pairs.fetch_add(1);
    } else {
      const size_t k = rng() % mine.size();
      release(mine[k].first, mine[k].second);
      mine[k] = mine.back();
      mine.pop_back();
    }
  }
  for (auto [p, bytes] : mine) release(p, bytes);
  (void)ok(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  (void)ok(cudaStreamDestroy(stream), "cudaStreamDestroy");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: stress_prog THREADS STEPS\n");
    return 2;
  }
  const int threads = std::atoi(argv[1]), steps = std::atoi(argv[2]);
  size_t free_before = 0, free_after = 0, total = 0;
  if (!ok(cudaFree(nullptr), "cudaFree(0)") ||
      !ok(cudaMemGetInfo(&free_before, &total), "cudaMemGetInfo"))
    return 1;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t, steps);
  for (auto& th : pool) th.join();
  const uint64_t released = gpumem_present() ? gpumem_empty_cache(0) : 0;
  if (!ok(cudaMemGetInfo(&free_after, &total), "cudaMemGetInfo")) return 1;
  std::printf("pairs %" PRIu64 "\ndevice_free_equal %d\nreleased %" PRIu64 "\n", g_pairs.load(),
              free_after == free_before ? 1 : 0, released);
  gpumem_stats st{};
  if (gpumem_present() && gpumem_get_stats(0, &st) == 0)
    std::printf("stats allocs %" PRIu64 " frees %" PRIu64 " failed %" PRIu64 " allocated %" PRIu64
                " reserved %" PRIu64 "\n",
                st.alloc_count, st.free_count, st.failed_count, st.allocated_bytes,
                st.reserved_bytes);
  return g_failures.load() == 0 ? 0 : 1;
}
