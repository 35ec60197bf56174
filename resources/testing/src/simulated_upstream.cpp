#include "gpumem/resources/simulated_upstream.h"

#include <chrono>
#include <cstdlib>

namespace gpumem::resources {

SimulatedUpstream::SimulatedUpstream(const Options& options) : options_(options) {
  for (int d = 0; d < options_.devices; ++d)
    devices_.push_back(DeviceState{(uint64_t{0x7000} + static_cast<uint64_t>(d)) << 32});
}

SimulatedUpstream::~SimulatedUpstream() {
  if (options_.back_with_host_memory)
    for (auto& [addr, bytes] : live_)
      if (own_calls_.count(addr) == 0) std::free(reinterpret_cast<void*>(addr));
}

void SimulatedUpstream::busy_wait(uint64_t ns) {
  if (ns == 0) return;
  auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
  while (std::chrono::steady_clock::now() < until) {
  }
}

void SimulatedUpstream::record(Call call, int device, uint64_t address, uint64_t bytes) {
  if (options_.record_calls) calls_.push_back({call, device, address, bytes});
}

int SimulatedUpstream::alloc(void** p, const Request& req) {
  busy_wait(options_.alloc_latency_ns);
  if (p == nullptr || req.device < 0 || req.device >= options_.devices || req.bytes == 0)
    return kInvalidValue;
  std::lock_guard lock(mutex_);
  ++alloc_calls_;
  DeviceState& dev = devices_[static_cast<size_t>(req.device)];
  const uint64_t bytes = (req.bytes + 511) / 512 * 512;
  if (successful_allocs_ >= options_.fail_alloc_after || bytes > options_.capacity - dev.in_use) {
    record(Call::alloc_failed, req.device, 0, req.bytes);
    *p = nullptr;
    return kOutOfMemory;
  }
  uint64_t addr = dev.next_address;
  if (req.real_alloc) {
    // The request's own call makes the allocation (the expandable pool's VMM handle); the device
    // still counts its bytes against the capacity, as the preload's device would.
    const int code = req.real_alloc(p);
    if (code != kSuccess || *p == nullptr) return code != kSuccess ? code : kInvalidValue;
    addr = reinterpret_cast<uint64_t>(*p);
    own_calls_.insert(addr);
  } else if (options_.back_with_host_memory) {
    addr = reinterpret_cast<uint64_t>(std::aligned_alloc(512, bytes));
    if (addr == 0) return kOutOfMemory;
  } else {
    dev.next_address += bytes;
  }
  ++successful_allocs_;
  dev.in_use += bytes;
  if (dev.in_use > dev.peak) dev.peak = dev.in_use;
  live_.emplace(addr, bytes);
  record(Call::alloc, req.device, addr, req.bytes);
  *p = reinterpret_cast<void*>(addr);
  return kSuccess;
}

int SimulatedUpstream::free(void* p, const Request& req) {
  busy_wait(options_.free_latency_ns);
  std::lock_guard lock(mutex_);
  ++free_calls_;
  auto it = live_.find(reinterpret_cast<uint64_t>(p));
  if (it == live_.end() || req.device < 0 || req.device >= options_.devices) return kInvalidValue;
  if (own_calls_.count(it->first) != 0) {
    if (!req.real_free) return kInvalidValue;
    const int code = req.real_free();
    if (code != kSuccess) return code;
    own_calls_.erase(it->first);
  } else if (options_.back_with_host_memory) {
    std::free(p);
  }
  devices_[static_cast<size_t>(req.device)].in_use -= it->second;
  record(Call::free, req.device, it->first, it->second);
  live_.erase(it);
  return kSuccess;
}

int SimulatedUpstream::synchronize(int device, Family /*family*/) {
  busy_wait(options_.sync_latency_ns);
  std::lock_guard lock(mutex_);
  if (device < 0 || device >= options_.devices) return kInvalidValue;
  ++sync_calls_;
  record(Call::synchronize, device, 0, 0);
  return kSuccess;
}

uint64_t SimulatedUpstream::capacity(int device) const {
  return device >= 0 && device < options_.devices ? options_.capacity : 0;
}

void SimulatedUpstream::set_fail_alloc_after(uint64_t n) {
  std::lock_guard lock(mutex_);
  options_.fail_alloc_after = n;
}
uint64_t SimulatedUpstream::in_use(int device) const {
  std::lock_guard lock(mutex_);
  return devices_.at(static_cast<size_t>(device)).in_use;
}
uint64_t SimulatedUpstream::peak_in_use(int device) const {
  std::lock_guard lock(mutex_);
  return devices_.at(static_cast<size_t>(device)).peak;
}
uint64_t SimulatedUpstream::live_count() const {
  std::lock_guard lock(mutex_);
  return live_.size();
}
uint64_t SimulatedUpstream::alloc_calls() const {
  std::lock_guard lock(mutex_);
  return alloc_calls_;
}
uint64_t SimulatedUpstream::free_calls() const {
  std::lock_guard lock(mutex_);
  return free_calls_;
}
uint64_t SimulatedUpstream::sync_calls() const {
  std::lock_guard lock(mutex_);
  return sync_calls_;
}
std::vector<SimulatedUpstream::CallRecord> SimulatedUpstream::calls() const {
  std::lock_guard lock(mutex_);
  return calls_;
}

}  // namespace gpumem::resources
