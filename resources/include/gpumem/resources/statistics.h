// The counters a layer that owns statistics keeps (the device, the limit, the pools): what the
// program holds through it (requested bytes), the peak, and the calls. A layer counts in its own
// do_allocate/do_deallocate, so every number is the layer's own and exact; nothing is summed up a
// chain. Stats is what a DeviceStack reports (the preload's gpumem_get_stats fields).
//
// Thread safety: readable from any thread without a lock. The plain count_* use atomic
// read-modify-writes; a layer that serialises under a lock of its own (the pools) uses the
// *_locked variants: one writer, load and store.
#pragma once

#include <atomic>
#include <cstdint>

#include "gpumem/resources/memory_resource.h"

namespace gpumem::resources {

struct Stats {
  uint64_t allocated_bytes = 0;  // what the program holds (requested bytes)
  uint64_t reserved_bytes = 0;   // taken from the device (== allocated without a pool)
  uint64_t peak_allocated_bytes = 0;
  uint64_t peak_reserved_bytes = 0;
  uint64_t alloc_count = 0;
  uint64_t free_count = 0;
  uint64_t failed_count = 0;
  uint64_t largest_free_block_bytes = 0;  // inside pool segments; 0 without a pool
  uint64_t limit_bytes = 0;               // 0 = no limit
};

// Raises `peak` to at least `value` (lock-free; the result is the exact maximum of all values).
inline void raise_peak(std::atomic<uint64_t>& peak, uint64_t value) {
  uint64_t seen = peak.load(std::memory_order_relaxed);
  while (value > seen && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

class AllocationCounters {
 public:
  uint64_t allocated_bytes() const { return allocated_.load(std::memory_order_relaxed); }
  uint64_t peak_allocated_bytes() const { return peak_allocated_.load(std::memory_order_relaxed); }
  uint64_t alloc_count() const { return alloc_count_.load(std::memory_order_relaxed); }
  uint64_t free_count() const { return free_count_.load(std::memory_order_relaxed); }
  uint64_t failed_count() const { return failed_count_.load(std::memory_order_relaxed); }

 protected:
  AllocationCounters() = default;
  ~AllocationCounters() = default;

  // The base's size rule (memory_resource.h): true, with *out filled and the failure counted,
  // when req.bytes is 0 or above kMaxRequestBytes.
  bool refused_size(const Request& req, Result* out) {
    if (req.bytes - 1 < kMaxRequestBytes) [[likely]]
      return false;
    *out = Result{};
    out->status = req.bytes == 0 ? Status::invalid_value : Status::out_of_memory;
    if (req.bytes != 0) out->in_use = allocated_bytes();
    count_failed();
    return true;
  }

  void count_alloc(uint64_t bytes) {
    alloc_count_.fetch_add(1, std::memory_order_relaxed);
    raise_peak(peak_allocated_, allocated_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
  }
  void count_free(uint64_t bytes) {
    free_count_.fetch_add(1, std::memory_order_relaxed);
    allocated_.fetch_sub(bytes, std::memory_order_relaxed);
  }
  void count_failed() { failed_count_.fetch_add(1, std::memory_order_relaxed); }

  void count_alloc_locked(uint64_t bytes) {
    bump(alloc_count_, 1);
    const uint64_t now = bump(allocated_, bytes);
    if (now > peak_allocated_.load(std::memory_order_relaxed))
      peak_allocated_.store(now, std::memory_order_relaxed);
  }
  void count_free_locked(uint64_t bytes) {
    bump(free_count_, 1);
    allocated_.store(allocated_.load(std::memory_order_relaxed) - bytes, std::memory_order_relaxed);
  }

 private:
  // One writer at a time (the caller holds its lock): load and store, no read-modify-write.
  static uint64_t bump(std::atomic<uint64_t>& counter, uint64_t by) {
    const uint64_t now = counter.load(std::memory_order_relaxed) + by;
    counter.store(now, std::memory_order_relaxed);
    return now;
  }

  std::atomic<uint64_t> allocated_{0};
  std::atomic<uint64_t> peak_allocated_{0};
  std::atomic<uint64_t> alloc_count_{0};
  std::atomic<uint64_t> free_count_{0};
  std::atomic<uint64_t> failed_count_{0};
};

}  // namespace gpumem::resources
