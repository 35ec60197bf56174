// For alloc_lines.py: an allocation made by a C++ thread that never ran Python code.
#include <cuda_runtime_api.h>

#include <cstdlib>
#include <thread>

extern "C" int allocate_on_native_thread(size_t bytes, void** out) {
  int rc = -1;
  std::thread t([&] { rc = cudaMalloc(out, bytes); });
  t.join();
  return rc;
}

// For alloc_lines.py: an allocation from a C exit handler, which runs after Python has finalized
// its interpreter (its thread states are gone then; the frame reader must not read them).
extern "C" void allocate_at_exit() {
  std::atexit([] {
    void* p = nullptr;
    if (cudaMalloc(&p, 4096) != cudaSuccess) std::_Exit(7);
  });
}
