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
  ++allocations_;
  held_ += bytes;
  if (held_ > peak_) {
    peak_ = held_;
    peak_buffers_ = buffers_;
  }
  return buffer.ptr;
}

void DeviceMemory::release(void* ptr) {
  if (ptr == nullptr) return;
  // Newest first: eager frees are mostly of recent buffers.
  for (size_t i = buffers_.size(); i-- > 0;) {
    if (buffers_[i].ptr != ptr) continue;
    device_free(ptr);
    ++frees_;
    held_ -= buffers_[i].bytes;
    buffers_.erase(buffers_.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
}

void DeviceMemory::release_all() {
  while (!buffers_.empty()) {
    device_free(buffers_.back().ptr);
    ++frees_;
    held_ -= buffers_.back().bytes;
    buffers_.pop_back();
  }
}

namespace {

MemoryPlan by_category(const std::vector<Buffer>& buffers) {
  MemoryPlan plan;
  for (const Buffer& b : buffers) plan[b.category] += b.bytes;
  return plan;
}

}  // namespace

MemoryPlan DeviceMemory::bytes_by_category() const {
  return by_category(buffers_);
}

MemoryPlan DeviceMemory::peak_bytes_by_category() const {
  return by_category(peak_buffers_);
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
