// budget_worker: one process of a shared budget, driven line by line on stdin so that several
// of them take turns in a known order (budget_report_test.cpp). Commands:
//   a BYTES   cudaMalloc(BYTES); prints "ok" or "fail CODE"
//   f INDEX   cudaFree of the INDEX-th successful allocation; prints "ok" or "fail CODE"
// Each answer is printed after the call returned, so its trace record is written by then. At
// the end of input the worker exits, holding what it holds.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

int main() {
  std::vector<void*> live;
  char op = 0;
  unsigned long long arg = 0;
  while (std::scanf(" %c %llu", &op, &arg) == 2) {
    cudaError_t e = cudaErrorInvalidValue;
    if (op == 'a') {
      void* p = nullptr;
      e = cudaMalloc(&p, arg);
      if (e == cudaSuccess) live.push_back(p);
    } else if (op == 'f' && arg < live.size()) {
      e = cudaFree(live[arg]);
    }
    if (e == cudaSuccess)
      std::printf("ok\n");
    else
      std::printf("fail %d\n", static_cast<int>(e));
    std::fflush(stdout);
  }
  return 0;
}
