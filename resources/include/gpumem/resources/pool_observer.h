// How a pool tells the layer above (the tracking resource, which writes the trace) that it took a
// segment from the device or gave one back, without the pool knowing anything about traces.
// Called with the pool's lock held, in the order the segments change: an observer must be quick
// and must not call back into the pool.
#pragma once

#include <cstdint>

namespace gpumem::resources {

class PoolObserver {
 public:
  virtual ~PoolObserver() = default;
  virtual void on_segment_reserve(int device, void* base, uint64_t bytes) = 0;
  // Before the segment goes back to the device (the address may be handed out again at once);
  // when the device refuses it, on_segment_reserve follows for the same segment, which stays.
  virtual void on_segment_release(int device, void* base, uint64_t bytes) = 0;
};

}  // namespace gpumem::resources
