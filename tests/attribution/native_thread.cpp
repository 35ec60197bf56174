// For alloc_lines.py: an allocation made by a C++ thread that never ran Python code.
#include <cuda_runtime_api.h>

#include <thread>

extern "C" int allocate_on_native_thread(size_t bytes, void** out) {
  int rc = -1;
  std::thread t([&] { rc = cudaMalloc(out, bytes); });
  t.join();
  return rc;
}
