// Helpers shared by the resources tests.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "gpumem/resources/pool_observer.h"
#include "gpumem/resources/request.h"

namespace gpumem::resources::testing {

inline constexpr uint64_t KiB = uint64_t{1} << 10;
inline constexpr uint64_t MiB = uint64_t{1} << 20;
inline constexpr uint64_t GiB = uint64_t{1} << 30;

inline Request req(uint64_t bytes, uint64_t stream = 0, int device = 0) {
  return Request{device, bytes, stream, trace::Api::cudaMalloc, 0};
}
// cudaFree: synchronous.
inline Request sync_free(uint64_t bytes = 0, int device = 0) {
  return Request{device, bytes, 0, trace::Api::cudaFree, 0};
}
// cudaFreeAsync on `stream`: stream-ordered.
inline Request async_free(uint64_t stream, uint64_t bytes = 0, int device = 0) {
  return Request{device, bytes, stream, trace::Api::cudaFreeAsync,
                 trace::kFlagAsync};
}

struct SegmentEvent {
  bool reserve;
  int device;
  uint64_t address;
  uint64_t bytes;
  bool operator==(const SegmentEvent&) const = default;
};

class RecordingObserver final : public PoolObserver {
 public:
  void on_segment_reserve(int device, void* base, uint64_t bytes) override {
    std::lock_guard lock(mutex_);
    events.push_back({true, device, reinterpret_cast<uint64_t>(base), bytes});
  }
  void on_segment_release(int device, void* base, uint64_t bytes) override {
    std::lock_guard lock(mutex_);
    events.push_back({false, device, reinterpret_cast<uint64_t>(base), bytes});
  }
  // Net bytes reserved according to the events.
  uint64_t net_reserved() const {
    uint64_t n = 0;
    for (const auto& e : events) n = e.reserve ? n + e.bytes : n - e.bytes;
    return n;
  }
  std::vector<SegmentEvent> events;

 private:
  std::mutex mutex_;
};

inline uint64_t addr(void* p) {
  return reinterpret_cast<uint64_t>(p);
}

}  // namespace gpumem::resources::testing
