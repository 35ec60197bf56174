// The program the top tests watch: a known set of allocations on the simulated device, then it
// holds them inside an open phase until told to go on, so that `gpumem top` and `gpumem report`
// read the same trace at a moment when nothing changes.
//
//   top_prog DIR MIB [hold]
// allocates MIB MiB in four allocations (MIB/2, MIB/4 and twice MIB/8 MiB) inside the phase
// "load", frees one MIB/8, makes one allocation that fails (32 GiB, twice the simulated device), then opens the phase "hold",
// writes its pid to DIR/ready.PID (written to a temporary name and renamed, so a reader never sees
// half of it) and, with `hold`, waits until DIR/go exists (or it is killed). Exit 0 = every call
// did what it should.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "gpumem/gpumem.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: top_prog DIR MIB [hold]\n");
    return 2;
  }
  const std::string dir = argv[1];
  const size_t mib = std::strtoull(argv[2], nullptr, 10) << 20;
  const bool hold = argc > 3 && std::string(argv[3]) == "hold";
  void* p[4] = {};
  const size_t sizes[4] = {mib / 2, mib / 4, mib / 8, mib / 8};
  GPUMEM_MARK_BEGIN("load");
  for (int i = 0; i < 4; ++i)
    if (cudaMalloc(&p[i], sizes[i]) != cudaSuccess) return 1;
  GPUMEM_MARK_END();
  if (cudaFree(p[3]) != cudaSuccess) return 1;
  void* huge = nullptr;
  if (cudaMalloc(&huge, size_t{32} << 30) == cudaSuccess) return 1;
  GPUMEM_MARK_BEGIN("hold");
  const std::string ready = dir + "/ready." + std::to_string(getpid());
  if (FILE* f = std::fopen((ready + ".tmp").c_str(), "w")) {
    std::fprintf(f, "%d\n", getpid());
    std::fclose(f);
    std::rename((ready + ".tmp").c_str(), ready.c_str());
  }
  while (hold && access((dir + "/go").c_str(), F_OK) != 0) usleep(10000);
  GPUMEM_MARK_END();
  return 0;
}
