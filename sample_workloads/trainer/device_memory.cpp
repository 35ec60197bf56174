#include "device_memory.h"

#include <fmt/format.h>
#include <cstdlib>
#include <cstring>

namespace gpumem::train {

void* DeviceMemory::allocate(Category category, const std::string& name, uint64_t bytes) {
  Buffer buffer{category, name, bytes, nullptr};
  buffer.ptr = device_allocate(bytes);
  if (buffer.ptr == nullptr) {
    throw OutOfDeviceMemory(
        buffer, held_, fmt::format("out of device memory allocating '{}' ({} bytes)", name, bytes));
  }
  buffers_.push_back(buffer);
  held_ += bytes;
  if (held_ > peak_) peak_ = held_;
  return buffer.ptr;
}

void DeviceMemory::release_all() {
  while (!buffers_.empty()) {
    device_free(buffers_.back().ptr);
    held_ -= buffers_.back().bytes;
    buffers_.pop_back();
  }
}

MemoryPlan DeviceMemory::bytes_by_category() const {
  MemoryPlan plan;
  for (const Buffer& b : buffers_) plan[b.category] += b.bytes;
  return plan;
}

namespace {

class HostMemory final : public DeviceMemory {
 public:
  explicit HostMemory(uint64_t capacity) : capacity_(capacity) {}
  ~HostMemory() override { release_all(); }

  void copy_to_device(void* dst, const void* src, uint64_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, uint64_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void fill_zero(void* dst, uint64_t bytes) override { std::memset(dst, 0, bytes); }
  uint64_t capacity_bytes() override { return capacity_; }

 protected:
  void* device_allocate(uint64_t bytes) override {
    if (capacity_ != 0 && held_bytes() + bytes > capacity_) return nullptr;
    // Like cudaMalloc: never zeroed, so a missing fill_zero shows up as garbage.
    void* p = std::malloc(bytes == 0 ? 1 : bytes);
    if (p != nullptr) std::memset(p, 0xA5, bytes);
    return p;
  }
  void device_free(void* ptr) override { std::free(ptr); }

 private:
  uint64_t capacity_;
};

}  // namespace

std::unique_ptr<DeviceMemory> make_host_memory(uint64_t capacity_bytes) {
  return std::make_unique<HostMemory>(capacity_bytes);
}

}  // namespace gpumem::train
