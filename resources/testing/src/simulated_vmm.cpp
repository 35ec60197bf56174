#include "gpumem/resources/simulated_vmm.h"

#include <sys/mman.h>

#include <chrono>
#include <iterator>

namespace gpumem::resources {

namespace {
void busy_wait(uint64_t ns) {
  if (ns == 0) return;
  auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
  while (std::chrono::steady_clock::now() < until) {
  }
}
}  // namespace

SimulatedVmm::~SimulatedVmm() {
  for (auto& [va, r] : ranges_)
    if (r.host != nullptr) munmap(r.host, r.host_bytes);
}

int SimulatedVmm::granularity(int device, uint64_t* bytes) {
  if (!options_.supported) return kNotSupported;
  if (bytes == nullptr || device < 0 || device >= options_.devices) return kInvalidValue;
  *bytes = options_.granularity;
  return kSuccess;
}

int SimulatedVmm::reserve(int device, uint64_t bytes, uint64_t alignment, uintptr_t* va) {
  if (!options_.supported) return kNotSupported;
  if (va == nullptr || device < 0 || device >= options_.devices || bytes == 0 || !aligned(bytes))
    return kInvalidValue;
  if (alignment == 0) alignment = options_.granularity;
  if ((alignment & (alignment - 1)) != 0) return kInvalidValue;
  // As simcuda: a range no address space holds (size + alignment past 2^64) is out of memory.
  if (bytes > UINT64_MAX - alignment - options_.granularity) return kOutOfMemory;
  Reservation r{bytes};
  uintptr_t start = 0;
  if (options_.back_with_host_memory) {
    r.host_bytes = bytes + alignment;
    r.host = mmap(nullptr, r.host_bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                  -1, 0);
    if (r.host == MAP_FAILED) return kOutOfMemory;
    start = (reinterpret_cast<uintptr_t>(r.host) + alignment - 1) / alignment * alignment;
  }
  std::lock_guard lock(mutex_);
  if (!options_.back_with_host_memory) {
    if (next_address_ > UINT64_MAX - alignment - options_.granularity - bytes) return kOutOfMemory;
    start = (next_address_ + alignment - 1) / alignment * alignment;
    next_address_ = start + bytes + options_.granularity;  // a gap: ranges never touch
  }
  ranges_.emplace(start, r);
  *va = start;
  return kSuccess;
}

int SimulatedVmm::free_range(uintptr_t va, uint64_t bytes) {
  if (!options_.supported) return kNotSupported;
  std::lock_guard lock(mutex_);
  auto it = ranges_.find(va);
  if (it == ranges_.end() || it->second.bytes != bytes) return kInvalidValue;
  auto m = mappings_.lower_bound(va);
  if (m != mappings_.end() && m->first < va + bytes) return kInvalidValue;  // still mapped
  if (it->second.host != nullptr) munmap(it->second.host, it->second.host_bytes);
  ranges_.erase(it);
  return kSuccess;
}

int SimulatedVmm::create(int device, uint64_t bytes, uint64_t* handle) {
  if (!options_.supported) return kNotSupported;
  if (handle == nullptr || device < 0 || device >= options_.devices || bytes == 0 ||
      !aligned(bytes))
    return kInvalidValue;
  std::lock_guard lock(mutex_);
  *handle = next_handle_++;
  handles_.emplace(*handle, Handle{bytes});
  return kSuccess;
}

void SimulatedVmm::maybe_destroy(uint64_t id) {
  auto it = handles_.find(id);
  if (it != handles_.end() && it->second.released && it->second.mappings == 0) handles_.erase(it);
}

int SimulatedVmm::release(uint64_t handle) {
  if (!options_.supported) return kNotSupported;
  std::lock_guard lock(mutex_);
  auto it = handles_.find(handle);
  if (it == handles_.end() || it->second.released) return kInvalidValue;
  it->second.released = true;
  maybe_destroy(handle);
  return kSuccess;
}

int SimulatedVmm::map(uintptr_t va, uint64_t bytes, uint64_t handle) {
  if (!options_.supported) return kNotSupported;
  busy_wait(options_.map_latency_ns);
  if (bytes == 0 || !aligned(va) || !aligned(bytes)) return kInvalidValue;
  std::lock_guard lock(mutex_);
  auto h = handles_.find(handle);
  if (h == handles_.end() || h->second.released) return kInvalidHandle;
  if (bytes != h->second.bytes) return kInvalidValue;  // offset 0, the whole handle
  auto r = ranges_.upper_bound(va);
  if (r == ranges_.begin()) return kInvalidValue;
  --r;
  if (va - r->first >= r->second.bytes || bytes > r->second.bytes - (va - r->first))
    return kInvalidValue;  // not inside one reservation
  auto next = mappings_.lower_bound(va);
  if (next != mappings_.end() && next->first < va + bytes) return kInvalidValue;
  if (next != mappings_.begin() && std::prev(next)->first + std::prev(next)->second.bytes > va)
    return kInvalidValue;  // over another mapping
  mappings_.emplace(va, Mapping{bytes, handle});
  ++h->second.mappings;
  ++map_calls_;
  return kSuccess;
}

int SimulatedVmm::unmap(uintptr_t va, uint64_t bytes) {
  if (!options_.supported) return kNotSupported;
  busy_wait(options_.map_latency_ns);
  std::lock_guard lock(mutex_);
  // Whole mappings only, starting at the first.
  auto first = mappings_.find(va);
  if (first == mappings_.end() || bytes == 0 || bytes > UINT64_MAX - va) return kInvalidValue;
  auto end = mappings_.lower_bound(va + bytes);
  for (auto it = first; it != end; ++it)
    if (it->first + it->second.bytes > va + bytes) return kInvalidValue;
  for (auto it = first; it != end;) {
    if (options_.back_with_host_memory) {
      void* p = reinterpret_cast<void*>(it->first);
      madvise(p, it->second.bytes, MADV_DONTNEED);  // the pages' contents go with them
      mprotect(p, it->second.bytes, PROT_NONE);
    }
    const uint64_t handle = it->second.handle;
    it = mappings_.erase(it);
    --handles_.at(handle).mappings;
    maybe_destroy(handle);
  }
  ++unmap_calls_;
  return kSuccess;
}

int SimulatedVmm::set_access(int device, uintptr_t va, uint64_t bytes, bool read_write) {
  if (!options_.supported) return kNotSupported;
  if (device < 0 || device >= options_.devices || device >= 64 || bytes == 0 ||
      bytes > UINT64_MAX - va)
    return kInvalidValue;
  std::lock_guard lock(mutex_);
  // Every byte of the range must be mapped.
  for (uintptr_t at = va; at < va + bytes;) {
    auto it = mappings_.upper_bound(at);
    if (it == mappings_.begin()) return kInvalidValue;
    --it;
    if (it->first + it->second.bytes <= at) return kInvalidValue;
    at = it->first + it->second.bytes;
  }
  const uint64_t bit = uint64_t{1} << device;
  auto first = std::prev(mappings_.upper_bound(va));
  for (auto it = first; it != mappings_.end() && it->first < va + bytes; ++it) {
    Mapping& m = it->second;
    m.devices = read_write ? (m.devices | bit) : (m.devices & ~bit);
    // Host code stands for any device: the pages are usable while some device may use them.
    if (options_.back_with_host_memory &&
        mprotect(reinterpret_cast<void*>(it->first), m.bytes,
                 m.devices != 0 ? PROT_READ | PROT_WRITE : PROT_NONE) != 0)
      return kInvalidValue;
  }
  return kSuccess;
}

bool SimulatedVmm::accessible(int device, uintptr_t va, uint64_t bytes) const {
  if (device < 0 || device >= 64 || bytes == 0 || bytes > UINT64_MAX - va) return false;
  std::lock_guard lock(mutex_);
  for (uintptr_t at = va; at < va + bytes;) {
    auto it = mappings_.upper_bound(at);
    if (it == mappings_.begin()) return false;
    --it;
    if (it->first + it->second.bytes <= at || (it->second.devices >> device & 1) == 0) return false;
    at = it->first + it->second.bytes;
  }
  return true;
}

size_t SimulatedVmm::live_handles() const {
  std::lock_guard lock(mutex_);
  return handles_.size();
}
size_t SimulatedVmm::live_mappings() const {
  std::lock_guard lock(mutex_);
  return mappings_.size();
}
size_t SimulatedVmm::live_ranges() const {
  std::lock_guard lock(mutex_);
  return ranges_.size();
}
uint64_t SimulatedVmm::mapped_bytes() const {
  std::lock_guard lock(mutex_);
  uint64_t sum = 0;
  for (const auto& [va, m] : mappings_) sum += m.bytes;
  return sum;
}
uint64_t SimulatedVmm::map_calls() const {
  std::lock_guard lock(mutex_);
  return map_calls_;
}
uint64_t SimulatedVmm::unmap_calls() const {
  std::lock_guard lock(mutex_);
  return unmap_calls_;
}

}  // namespace gpumem::resources
