// DeviceMemory over the shared CUDA runtime, so an interposer (libgpumem.so) sees every buffer.
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "device_memory.h"

namespace gpumem::train {
namespace {

void check(cudaError_t err, const char* call) {
  if (err != cudaSuccess) {
    throw DeviceError(
        fmt::format("{} failed: {} ({})", call, cudaGetErrorString(err), static_cast<int>(err)));
  }
}

class CudaMemory final : public DeviceMemory {
 public:
  explicit CudaMemory(bool async_alloc) : async_(async_alloc) {}
  ~CudaMemory() override {
    try {
      release_all();
      if (async_) (void)cudaStreamSynchronize(cudaStream_t{});  // let the stream-ordered frees land
    } catch (...) {
      // Freeing at exit after a device failure: nothing useful left to report.
    }
  }

  void copy_to_device(void* dst, const void* src, uint64_t bytes) override {
    check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (host to device)");
  }
  void copy_to_host(void* dst, const void* src, uint64_t bytes) override {
    check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy (device to host)");
  }
  void fill_zero(void* dst, uint64_t bytes) override {
    check(cudaMemset(dst, 0, bytes), "cudaMemset");
  }
  uint64_t capacity_bytes() override {
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) return 0;
    return total_bytes;
  }

 protected:
  void* device_allocate(uint64_t bytes) override {
    void* p = nullptr;
    cudaError_t err = async_ ? cudaMallocAsync(&p, bytes, cudaStream_t{}) : cudaMalloc(&p, bytes);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // clear the sticky-free error so later calls work
      return nullptr;
    }
    check(err, async_ ? "cudaMallocAsync" : "cudaMalloc");
    return p;
  }
  void device_free(void* ptr) override {
    if (async_) {
      check(cudaFreeAsync(ptr, cudaStream_t{}), "cudaFreeAsync");
    } else {
      check(cudaFree(ptr), "cudaFree");
    }
  }

 private:
  bool async_;
};

}  // namespace

std::unique_ptr<DeviceMemory> make_cuda_memory(bool async_alloc) {
  return std::make_unique<CudaMemory>(async_alloc);
}

}  // namespace gpumem::train
