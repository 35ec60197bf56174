// gpumem-fragmenter BLOCKS BYTES: allocates BLOCKS buffers of BYTES, frees every other one (half
// the bytes are free, in holes of BYTES), then asks for one buffer as large as all the holes
// together. On a plain device that may succeed; under a pool with a cap it shows external
// fragmentation: free bytes that cannot serve one large request.
#include <cstdio>
#include <vector>

#include "scenario_common.h"

int main(int argc, char** argv) {
  const char* me = "gpumem-fragmenter";
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s BLOCKS BYTES   e.g. %s 64 1MiB\n", me, me);
    return 2;
  }
  namespace s = gpumem::scenario;
  const long blocks = s::count_arg(me, "BLOCKS", argv[1], 1000000);
  const uint64_t bytes = s::size_arg(me, "BYTES", argv[2]);
  std::vector<void*> ptrs(static_cast<size_t>(blocks), nullptr);
  for (void*& p : ptrs) s::check(me, cudaMalloc(&p, bytes), "cudaMalloc");
  uint64_t freed = 0;
  for (size_t i = 0; i < ptrs.size(); i += 2) {
    s::check(me, cudaFree(ptrs[i]), "cudaFree");
    ptrs[i] = nullptr;
    freed += bytes;
  }
  void* big = nullptr;
  const cudaError_t err = cudaMalloc(&big, freed);
  if (err != cudaSuccess && err != cudaErrorMemoryAllocation)
    s::check(me, err, "cudaMalloc (large)");
  (void)cudaGetLastError();
  std::printf(
      "{\"blocks\":%ld,\"bytes_each\":%llu,\"freed_in_holes\":%llu,\"large_request\":%llu,"
      "\"large_request_succeeded\":%s}\n",
      blocks, static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(freed),
      static_cast<unsigned long long>(freed), big != nullptr ? "true" : "false");
  if (big != nullptr) s::check(me, cudaFree(big), "cudaFree");
  for (void* p : ptrs)
    if (p != nullptr) s::check(me, cudaFree(p), "cudaFree");
  return 0;
}
