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
  virtual void on_segment_release(int device, void* base, uint64_t bytes) = 0;
};

}  // namespace gpumem::resources
