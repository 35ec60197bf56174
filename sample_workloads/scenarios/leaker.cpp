// gpumem-leaker COUNT BYTES LEAK: allocates COUNT buffers of BYTES with cudaMalloc, frees all but
// the last LEAK, and exits holding them, so a profiler's leak report has a known answer.
#include <cstdio>
#include <vector>

#include "scenario_common.h"

int main(int argc, char** argv) {
  const char* me = "gpumem-leaker";
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s COUNT BYTES LEAK   e.g. %s 10 1MiB 3\n", me, me);
    return 2;
  }
  namespace s = gpumem::scenario;
  const long count = s::count_arg(me, "COUNT", argv[1], 1000000);
  const uint64_t bytes = s::size_arg(me, "BYTES", argv[2]);
  const long leak = s::count_arg(me, "LEAK", argv[3], count);
  std::vector<void*> ptrs(static_cast<size_t>(count));
  for (void*& p : ptrs) s::check(me, cudaMalloc(&p, bytes), "cudaMalloc");
  for (long i = 0; i < count - leak; ++i)
    s::check(me, cudaFree(ptrs[static_cast<size_t>(i)]), "cudaFree");
  std::printf(
      "{\"allocations\":%ld,\"bytes_each\":%llu,\"freed\":%ld,\"leaked\":%ld,\"leaked_bytes\":%llu}"
      "\n",
      count, static_cast<unsigned long long>(bytes), count - leak, leak,
      static_cast<unsigned long long>(bytes) * static_cast<unsigned long long>(leak));
  return 0;
}
