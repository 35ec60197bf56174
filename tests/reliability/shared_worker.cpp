// One process of a shared budget or a shared simulated device (shared_budget_test.cpp).
//
//   shared_worker hold SIZE...   cudaMalloc each SIZE (bytes) in order and print one line each,
//                                "alloc SIZE ok" or "alloc SIZE fail CODE"; then "info FREE TOTAL"
//                                (cudaMemGetInfo) and "ready"; then waits to be killed, or with
//                                WORKER_EXIT=1 frees everything and exits 0.
//   shared_worker churn OPS SEED OPS random cudaMalloc (1 B to 8 MiB) and cudaFree calls, at most
//                                16 live; frees the rest; prints "ok N fail M".
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace {

int hold(int argc, char** argv) {
  std::vector<void*> live;
  for (int i = 2; i < argc; ++i) {
    const uint64_t bytes = std::strtoull(argv[i], nullptr, 10);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaSuccess) {
      live.push_back(p);
      std::printf("alloc %llu ok\n", static_cast<unsigned long long>(bytes));
    } else {
      std::printf("alloc %llu fail %d\n", static_cast<unsigned long long>(bytes), e);
    }
  }
  size_t free_bytes = 0, total = 0;
  if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) return 1;
  std::printf("info %zu %zu\nready\n", free_bytes, total);
  std::fflush(stdout);
  const char* exit_now = std::getenv("WORKER_EXIT");
  if (exit_now == nullptr || std::strcmp(exit_now, "1") != 0)
    for (;;) pause();
  for (void* p : live) cudaFree(p);
  return 0;
}

int churn(uint64_t ops, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<void*> live;
  uint64_t ok = 0, fail = 0;
  for (uint64_t i = 0; i < ops; ++i) {
    if (!live.empty() && (live.size() >= 16 || rng() % 2 == 0)) {
      const size_t k = rng() % live.size();
      if (cudaFree(live[k]) != cudaSuccess) return 1;
      live[k] = live.back();
      live.pop_back();
      continue;
    }
    void* p = nullptr;
    const uint64_t bytes = 1 + rng() % (8ull << 20);
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e == cudaSuccess) {
      live.push_back(p);
      ++ok;
    } else if (e == cudaErrorMemoryAllocation) {
      ++fail;
    } else {
      return 1;
    }
  }
  for (void* p : live)
    if (cudaFree(p) != cudaSuccess) return 1;
  std::printf("ok %llu fail %llu\n", static_cast<unsigned long long>(ok),
              static_cast<unsigned long long>(fail));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "hold") == 0) return hold(argc, argv);
  if (argc == 4 && std::strcmp(argv[1], "churn") == 0)
    return churn(std::strtoull(argv[2], nullptr, 10),
                 static_cast<unsigned>(std::strtoul(argv[3], nullptr, 10)));
  std::fprintf(stderr, "usage: shared_worker hold SIZE... | churn OPS SEED\n");
  return 2;
}
