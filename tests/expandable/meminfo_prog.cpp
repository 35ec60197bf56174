// meminfo_prog: holds one 3 MiB cudaMalloc block and prints what cudaMemGetInfo says then,
// "free F total T" (capacity_test.cpp: the capacity a cap reports under each pool).
#include <cuda_runtime_api.h>

#include <cstdio>

int main() {
  void* p = nullptr;
  if (cudaMalloc(&p, 3u << 20) != cudaSuccess) return 1;
  size_t free_bytes = 0, total = 0;
  if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) return 1;
  std::printf("free %zu total %zu\n", free_bytes, total);
  return cudaFree(p) == cudaSuccess ? 0 : 1;
}
