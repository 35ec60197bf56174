// What the growth and fixed pools share: one lock, the block bookkeeping (BlockManager), the reuse
// rule, frees, pointer lookup and segment accounting. A pool serves one device. Subclasses say how
// to get room when no free block fits (grow) and how requests map to size classes (kind_for),
// like the expand_pool hook of RMM's stream-ordered pool.
//
// Thread safety: one mutex per pool guards the blocks; held for the whole allocate or free, and
// also across the device synchronization of the reuse rule and across segment calls to the
// upstream (as a real cudaFree would stall the caller anyway). reserved/peak counters are atomics,
// readable without the lock; largest_free_block() and snapshot() take it. Its AllocationCounters
// (what the program holds from the pool) are updated under the lock too (one writer: no atomic
// read-modify-write), failures excepted.
#pragma once

#include <atomic>
#include <vector>

#include "gpumem/resources/block_manager.h"
#include "gpumem/resources/memory_resource.h"
#include "gpumem/resources/pool_lock.h"
#include "gpumem/resources/pool_observer.h"
#include "gpumem/resources/statistics.h"

namespace gpumem::resources {

class PoolResource : public MemoryResource, public AllocationCounters {
 public:
  // Gives every segment back to the upstream, live blocks or not, without telling the observer.
  // The preload library should leave its stacks alive at exit instead (CUDA may be gone).
  ~PoolResource() override;

  int device() const { return device_; }
  // Bytes in the pool's segments (taken from the layer below), now and at most.
  uint64_t reserved_bytes() const { return reserved_.load(std::memory_order_relaxed); }
  uint64_t peak_reserved_bytes() const { return peak_reserved_.load(std::memory_order_relaxed); }
  // Largest free block inside the segments (takes the lock).
  uint64_t largest_free_block() const;
  // Gives empty cached segments back (through the plain free of `family`); returns the bytes
  // released. Blocks freed before a device synchronization are made reusable first.
  uint64_t empty_cache(Family family = Family::runtime) { return do_empty_cache(family); }
  // Fills *out (may be null) for an address inside a live block; false for anything else.
  bool lookup(const void* p, BlockInfo* out) const;
  std::vector<SegmentView> snapshot() const;
  size_t segment_count() const;
  // True when p lies inside one of the pool's segments, whatever the state of its block: the
  // preload library must never hand such an address to the device's own free.
  bool owns(const void* p) const;
  size_t pending_count() const;
  // Around fork(): the forking thread holds the pool's lock from its prepare handler to the
  // parent and child handlers, so no other thread is inside the pool when the process is copied
  // and the child's copy is consistent (a lock merely reset in the child could guard blocks
  // half-changed by a thread that does not exist there).
  void lock_for_fork() const { mutex_.lock(); }
  void unlock_after_fork() const { mutex_.unlock(); }

 protected:
  PoolResource(MemoryResource& upstream, int device, PoolObserver* observer)
      : upstream_(upstream), device_(device), observer_(observer) {}

  // Lock held. No free block fits `rounded` bytes of `kind`: add room with reserve_segment() or
  // answer the failure.
  virtual Result grow(uint64_t rounded, uint8_t kind, const Request& req) = 0;
  virtual uint8_t kind_for(uint64_t /*rounded*/) const { return 0; }
  // Lock held. *b (from the best fit) is about to be handed out for `rounded` bytes at its start:
  // a pool that backs its address space lazily (the expandable pool) makes it usable here, and
  // may synchronize and pick *b again. Not ok: the request fails with that answer.
  virtual Result prepare_fit(Block** /*b*/, uint64_t /*rounded*/, uint8_t /*kind*/,
                             const Request& /*req*/) {
    return {};
  }

  // For a pool whose segments are not allocations of the upstream (the expandable pool's address
  // ranges): its own destructor gives them back, the base's must not.
  void keep_segments_at_destruction() { give_back_segments_ = false; }
  BlockManager& blocks() { return blocks_; }
  const BlockManager& blocks() const { return blocks_; }
  MemoryResource& upstream() const { return upstream_; }
  PoolObserver* observer() const { return observer_; }
  // Lock held. Reserved bytes that are not segments (the expandable pool's mapped pages).
  void add_reserved(uint64_t bytes) {
    raise_peak(peak_reserved_, reserved_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
  }
  void sub_reserved(uint64_t bytes) { reserved_.fetch_sub(bytes, std::memory_order_relaxed); }

  // Lock held. Takes `bytes` from the upstream as a new segment (the plain allocation of
  // `family`), tells the observer.
  Result reserve_segment(uint64_t bytes, uint8_t kind, Family family);
  // Lock held. Gives every empty segment back; returns the bytes released.
  uint64_t release_empty_segments(Family family);
  // Lock held. Synchronizes the device, then makes pending and stream-tagged blocks reusable.
  Status synchronize_locked(Family family);

  virtual uint64_t do_empty_cache(Family family);
  // Lock held. The largest free block a request could be handed without new memory: the free
  // blocks' largest (the expandable pool counts only their mapped bytes).
  virtual uint64_t largest_free_locked() const { return blocks_.largest_free(); }
  mutable PoolLock mutex_;

 private:
  Result do_allocate(const Request& req) override;
  Result allocate_locked(const Request& req);
  FreeResult do_deallocate(void* p, const Request& req) override;
  Status do_synchronize(int device, Family family) override;

  MemoryResource& upstream_;
  const int device_;
  PoolObserver* const observer_;
  BlockManager blocks_;
  std::atomic<uint64_t> reserved_{0};
  std::atomic<uint64_t> peak_reserved_{0};
  bool give_back_segments_ = true;
};

}  // namespace gpumem::resources
