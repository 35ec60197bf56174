// The base of every resource: public non-virtual allocate/deallocate around private virtuals, in
// the shape of RAPIDS RMM's device_memory_resource, so the counters every resource needs (bytes
// held, peak, counts) live here once and are exact whatever the derived class does.
//
// A resource may sit on an upstream resource (an adaptor: limit, pools) or on the device
// (DeviceResource). Queries a resource cannot answer itself (reserved bytes, limit, capacity,
// synchronize, pointer lookup, empty_cache) go to its upstream resource.
//
// Thread safety: allocate/deallocate may be called from any thread; the counters are atomics and
// are read without a lock.
#pragma once

#include <atomic>
#include <cstdint>

#include "gpumem/resources/request.h"

namespace gpumem::resources {

// A resource's numbers in one read (the preload's gpumem_get_stats reports the same fields, taken
// from the stack's layers).
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

// Requests above this can never be served; refused with out_of_memory before any rounding.
inline constexpr uint64_t kMaxRequestBytes = uint64_t{1} << 56;

class MemoryResource {
 public:
  virtual ~MemoryResource() = default;
  MemoryResource(const MemoryResource&) = delete;
  MemoryResource& operator=(const MemoryResource&) = delete;

  // Zero bytes is invalid_value: hooks answer zero-size calls themselves, as their API does.
  Result allocate(const AllocRequest& req);
  // invalid_value for a pointer this resource does not know (pools) or p == nullptr.
  Status deallocate(void* p, const FreeRequest& req);

  // Waits for the device's queued work; pools also make blocks freed before it reusable.
  Status synchronize(int device) { return do_synchronize(device); }
  // Gives empty cached segments back to the device; returns the bytes released.
  uint64_t empty_cache() { return do_empty_cache(); }
  // Fills *out for an address inside a live pooled block; false for anything else.
  bool lookup(const void* p, BlockInfo* out) const { return do_lookup(p, out); }

  // What the program holds through this resource (requested bytes, not rounded).
  uint64_t allocated_bytes() const { return allocated_.load(std::memory_order_relaxed); }
  uint64_t peak_allocated_bytes() const { return peak_allocated_.load(std::memory_order_relaxed); }
  uint64_t alloc_count() const { return alloc_count_.load(std::memory_order_relaxed); }
  uint64_t free_count() const { return free_count_.load(std::memory_order_relaxed); }
  uint64_t failed_count() const { return failed_count_.load(std::memory_order_relaxed); }
  // Bytes taken from the device below this resource.
  virtual uint64_t reserved_bytes() const;
  virtual uint64_t peak_reserved_bytes() const;
  // Largest free block inside pool segments (0 without a pool). Pools take their lock for it.
  virtual uint64_t largest_free_block() const;
  // The cap in force below this resource, 0 = none.
  virtual uint64_t limit_bytes() const;
  // What the device offers this process: min(limit, physical) under a limit.
  virtual uint64_t capacity(int device) const;

  Stats stats() const;

 protected:
  explicit MemoryResource(MemoryResource* upstream = nullptr) : upstream_(upstream) {}
  // For a resource that serialises its allocations and frees under a lock of its own (the pools):
  // it counts its successes itself with count_*_locked, under that lock, with plain loads and
  // stores instead of atomic read-modify-writes. The counters stay readable without the lock.
  MemoryResource(MemoryResource* upstream, bool counts_under_own_lock)
      : upstream_(upstream), counts_under_own_lock_(counts_under_own_lock) {}
  MemoryResource* upstream_resource() const { return upstream_; }
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

  // What a do_deallocate freed: its status and the requested bytes of the allocation.
  struct Freed {
    Status status = Status::ok;
    uint64_t bytes = 0;
  };

 private:
  virtual Result do_allocate(const AllocRequest& req) = 0;
  virtual Freed do_deallocate(void* p, const FreeRequest& req) = 0;
  virtual Status do_synchronize(int device);
  virtual uint64_t do_empty_cache();
  virtual bool do_lookup(const void* p, BlockInfo* out) const;

  // One writer at a time (the caller holds its lock): load and store, no read-modify-write.
  static uint64_t bump(std::atomic<uint64_t>& counter, uint64_t by) {
    const uint64_t now = counter.load(std::memory_order_relaxed) + by;
    counter.store(now, std::memory_order_relaxed);
    return now;
  }

  MemoryResource* upstream_;
  const bool counts_under_own_lock_ = false;
  std::atomic<uint64_t> allocated_{0};
  std::atomic<uint64_t> peak_allocated_{0};
  std::atomic<uint64_t> alloc_count_{0};
  std::atomic<uint64_t> free_count_{0};
  std::atomic<uint64_t> failed_count_{0};
};

// Raises `peak` to at least `value` (lock-free; the result is the exact maximum of all values).
inline void raise_peak(std::atomic<uint64_t>& peak, uint64_t value) {
  uint64_t seen = peak.load(std::memory_order_relaxed);
  while (value > seen && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

}  // namespace gpumem::resources
