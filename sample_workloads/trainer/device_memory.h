// Every device buffer the trainer holds, each from its own allocation with a name and a category,
// so the final report gives bytes by category and an out-of-memory error names the buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "memory_plan.h"

namespace gpumem::train {

struct Buffer {
  Category category;
  std::string name;
  uint64_t bytes;
  void* ptr;
};

// Thrown when the device refuses an allocation.
struct OutOfDeviceMemory : std::runtime_error {
  OutOfDeviceMemory(const Buffer& b, uint64_t held_bytes, std::string detail)
      : std::runtime_error(detail), buffer(b), trainer_bytes_before(held_bytes) {}
  Buffer buffer;                  // the one that failed (ptr is null)
  uint64_t trainer_bytes_before;  // what the trainer already held
};

// Any other CUDA failure: the call, and CUDA's own words.
struct DeviceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;

  // Allocates and records one named buffer; throws OutOfDeviceMemory or DeviceError.
  void* allocate(Category category, const std::string& name, uint64_t bytes);
  // Frees one buffer (eager training frees activations in backward); null is ignored.
  void release(void* ptr);
  // Frees every buffer, newest first.
  void release_all();

  virtual void copy_to_device(void* dst, const void* src, uint64_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, uint64_t bytes) = 0;
  virtual void fill_zero(void* dst, uint64_t bytes) = 0;
  // Device capacity as the device reports it, for the out-of-memory advice (0: unknown).
  virtual uint64_t capacity_bytes() = 0;

  // The buffers held now, and at the (first) moment of the peak.
  const std::vector<Buffer>& buffers() const { return buffers_; }
  const std::vector<Buffer>& peak_buffers() const { return peak_buffers_; }
  uint64_t held_bytes() const { return held_; }
  uint64_t peak_bytes() const { return peak_; }
  uint64_t allocation_count() const { return allocations_; }
  uint64_t free_count() const { return frees_; }
  MemoryPlan bytes_by_category() const;
  MemoryPlan peak_bytes_by_category() const;

 protected:
  // Returns null when the device is out of memory; throws DeviceError for other failures.
  virtual void* device_allocate(uint64_t bytes) = 0;
  virtual void device_free(void* ptr) = 0;

 private:
  std::vector<Buffer> buffers_;
  std::vector<Buffer> peak_buffers_;
  uint64_t held_ = 0;
  uint64_t peak_ = 0;
  uint64_t allocations_ = 0;
  uint64_t frees_ = 0;
};

// The CUDA runtime: cudaMalloc/cudaFree, or cudaMallocAsync/cudaFreeAsync on the default stream.
std::unique_ptr<DeviceMemory> make_cuda_memory(bool async_alloc);

// Plain host memory with an optional capacity, for unit tests of the trainer without a device.
std::unique_ptr<DeviceMemory> make_host_memory(uint64_t capacity_bytes = 0);

}  // namespace gpumem::train
