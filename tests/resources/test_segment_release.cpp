// When a pool gives a segment back, the observer (the trace) hears of it while the device still
// holds the segment, as frees are recorded before they are forwarded; a segment the device
// refuses to take back stays reserved, in the pool and in what the observer was told.
#include <gtest/gtest.h>

#include "gpumem/resources/device_resource.h"
#include "gpumem/resources/growth_pool.h"
#include "gpumem/resources/simulated_upstream.h"
#include "test_support.h"

namespace gpumem::resources {
namespace {
using namespace testing;

constexpr uint64_t kBase = uint64_t{0x7000} << 32;  // the simulated device's first address

// Records, at every release, the bytes the device still had out at that moment.
class DeviceWatchingObserver final : public PoolObserver {
 public:
  explicit DeviceWatchingObserver(const SimulatedUpstream& sim) : sim_(sim) {}
  void on_segment_reserve(int device, void* base, uint64_t bytes) override {
    events.push_back({true, device, addr(base), bytes});
  }
  void on_segment_release(int device, void* base, uint64_t bytes) override {
    events.push_back({false, device, addr(base), bytes});
    device_in_use_at_release.push_back(sim_.in_use(device));
  }
  std::vector<SegmentEvent> events;
  std::vector<uint64_t> device_in_use_at_release;

 private:
  const SimulatedUpstream& sim_;
};

TEST(SegmentRelease, IsToldWhileTheDeviceStillHoldsTheSegment) {
  SimulatedUpstream sim;
  DeviceResource dev{sim};
  DeviceWatchingObserver observer{sim};
  GrowthPool pool{dev, 0, &observer};
  Result small = pool.allocate(req(KiB));      // a 2 MiB segment at kBase
  Result large = pool.allocate(req(5 * MiB));  // a 20 MiB segment after it
  ASSERT_TRUE(small.ok() && large.ok());
  ASSERT_EQ(pool.deallocate(small.ptr, sync_free()), Status::ok);
  ASSERT_EQ(pool.deallocate(large.ptr, sync_free()), Status::ok);

  EXPECT_EQ(pool.empty_cache(), 22 * MiB);
  const std::vector<SegmentEvent> expected = {{true, 0, kBase, 2 * MiB},
                                              {true, 0, kBase + 2 * MiB, 20 * MiB},
                                              {false, 0, kBase, 2 * MiB},
                                              {false, 0, kBase + 2 * MiB, 20 * MiB}};
  EXPECT_EQ(observer.events, expected);
  // In address order: both segments out at the first release, the 20 MiB one at the second.
  EXPECT_EQ(observer.device_in_use_at_release, (std::vector<uint64_t>{22 * MiB, 20 * MiB}));
  EXPECT_EQ(sim.in_use(0), 0u);
}

// The simulated device, with frees that fail while `refuse_frees` is set.
class RefusingUpstream final : public Upstream {
 public:
  int alloc(void** p, const Request& req) override { return sim.alloc(p, req); }
  int free(void* p, const Request& req) override {
    return refuse_frees ? SimulatedUpstream::kInvalidValue : sim.free(p, req);
  }
  bool is_oom(int code) const override { return sim.is_oom(code); }
  int synchronize(int device, Family family) override { return sim.synchronize(device, family); }

  SimulatedUpstream sim;
  bool refuse_frees = false;
};

TEST(SegmentRelease, ASegmentTheDeviceRefusesIsToldReservedAgainAndStaysCached) {
  RefusingUpstream upstream;
  DeviceResource dev{upstream};
  RecordingObserver observer;
  GrowthPool pool{dev, 0, &observer};
  Result a = pool.allocate(req(KiB));
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(pool.deallocate(a.ptr, sync_free()), Status::ok);

  upstream.refuse_frees = true;
  EXPECT_EQ(pool.empty_cache(), 0u);
  std::vector<SegmentEvent> expected = {
      {true, 0, kBase, 2 * MiB}, {false, 0, kBase, 2 * MiB}, {true, 0, kBase, 2 * MiB}};
  EXPECT_EQ(observer.events, expected);
  EXPECT_EQ(observer.net_reserved(), 2 * MiB);
  EXPECT_EQ(pool.reserved_bytes(), 2 * MiB);
  EXPECT_EQ(pool.segment_count(), 1u);
  EXPECT_EQ(upstream.sim.in_use(0), 2 * MiB);

  // Still the pool's: served from the cached segment without a new one.
  Result b = pool.allocate(req(KiB));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(addr(b.ptr), kBase);
  ASSERT_EQ(pool.deallocate(b.ptr, sync_free()), Status::ok);

  upstream.refuse_frees = false;
  EXPECT_EQ(pool.empty_cache(), 2 * MiB);
  expected.push_back({false, 0, kBase, 2 * MiB});
  EXPECT_EQ(observer.events, expected);
  EXPECT_EQ(pool.reserved_bytes(), 0u);
  EXPECT_EQ(upstream.sim.in_use(0), 0u);
}

}  // namespace
}  // namespace gpumem::resources
