// libgpumem_oom_workspace.so: "another library" for gpumem-oom's `workspace` scenario, standing in
// for cuBLAS/cuDNN workspaces or NCCL buffers: its allocations come from its own module, so a
// report with call stacks attributes them to this library and not to the program.
#include <cuda_runtime_api.h>

#include <cstdint>

extern "C" __attribute__((visibility("default"), noinline)) int gpumem_oom_workspace_init(
    uint64_t bytes, void** out) {
  const int code = static_cast<int>(cudaMalloc(out, bytes));
  // Not a tail call: the allocation's innermost frame must be this library's, as a real
  // workspace's is its library's.
  asm volatile("" ::: "memory");
  return code;
}
