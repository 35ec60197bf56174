// GrowthPool: the segment rule, best fit, splitting and coalescing, observer events, the retry
// rule, empty_cache, pointer lookup and bad input.
#include <gtest/gtest.h>

#include "gpumem/resources/device_resource.h"
#include "gpumem/resources/growth_pool.h"
#include "gpumem/resources/simulated_upstream.h"
#include "test_support.h"

namespace gpumem::resources {
namespace {
using namespace testing;

struct GrowthPoolTest : ::testing::Test {
  SimulatedUpstream sim{[] {
    SimulatedUpstream::Options o;
    o.record_calls = true;
    return o;
  }()};
  DeviceResource dev{sim};
  RecordingObserver observer;
  GrowthPool pool{dev, 0, &observer};
  const uint64_t base = uint64_t{0x7000} << 32;  // the simulated device's first address
};

TEST(GrowthPoolRule, SegmentSizes) {
  EXPECT_EQ(GrowthPool::segment_size(512), 2 * MiB);
  EXPECT_EQ(GrowthPool::segment_size(MiB), 2 * MiB);
  EXPECT_EQ(GrowthPool::segment_size(MiB + 512), 20 * MiB);
  EXPECT_EQ(GrowthPool::segment_size(10 * MiB - 512), 20 * MiB);
  EXPECT_EQ(GrowthPool::segment_size(10 * MiB), 10 * MiB);
  EXPECT_EQ(GrowthPool::segment_size(10 * MiB + 512), 12 * MiB);
  EXPECT_EQ(GrowthPool::segment_size(30 * MiB + 512), 32 * MiB);
}

TEST_F(GrowthPoolTest, ObserverSeesEverySegmentExactly) {
  Result a = pool.allocate(req(KiB));
  Result b = pool.allocate(req(5 * MiB));
  Result c = pool.allocate(req(30 * MiB));
  Result d = pool.allocate(req(30 * MiB + 1));
  Result e = pool.allocate(req(KiB));  // fits the small segment: no new event
  for (const Result* r : {&a, &b, &c, &d, &e}) ASSERT_TRUE(r->ok());
  std::vector<SegmentEvent> expected = {{true, 0, base, 2 * MiB},
                                        {true, 0, base + 2 * MiB, 20 * MiB},
                                        {true, 0, base + 22 * MiB, 30 * MiB},
                                        {true, 0, base + 52 * MiB, 32 * MiB}};
  EXPECT_EQ(observer.events, expected);
  EXPECT_EQ(addr(a.ptr), base);
  EXPECT_EQ(addr(e.ptr), base + KiB);
  EXPECT_EQ(pool.reserved_bytes(), 84 * MiB);
  EXPECT_EQ(pool.allocated_bytes(), 2 * KiB + 5 * MiB + 60 * MiB + 1);
  for (const Result* r : {&a, &b, &c, &d, &e})
    ASSERT_EQ(pool.deallocate(r->ptr, sync_free()), Status::ok);
  EXPECT_EQ(pool.empty_cache(), 84 * MiB);
  expected.push_back({false, 0, base, 2 * MiB});
  expected.push_back({false, 0, base + 2 * MiB, 20 * MiB});
  expected.push_back({false, 0, base + 22 * MiB, 30 * MiB});
  expected.push_back({false, 0, base + 52 * MiB, 32 * MiB});
  EXPECT_EQ(observer.events, expected);
  EXPECT_EQ(pool.reserved_bytes(), 0u);
  EXPECT_EQ(pool.peak_reserved_bytes(), 84 * MiB);
  EXPECT_EQ(pool.allocated_bytes(), 0u);
  EXPECT_EQ(sim.in_use(0), 0u);
  EXPECT_EQ(sim.live_count(), 0u);
}

TEST_F(GrowthPoolTest, BestFitSplitsAndCoalesces) {
  Result a = pool.allocate(req(2 * MiB));
  Result b = pool.allocate(req(3 * MiB));
  Result c = pool.allocate(req(2 * MiB));
  Result d = pool.allocate(req(4 * MiB));
  EXPECT_EQ(addr(a.ptr), base);
  EXPECT_EQ(addr(b.ptr), base + 2 * MiB);
  EXPECT_EQ(addr(c.ptr), base + 5 * MiB);
  EXPECT_EQ(addr(d.ptr), base + 7 * MiB);
  ASSERT_EQ(pool.deallocate(a.ptr, sync_free()), Status::ok);
  ASSERT_EQ(pool.deallocate(c.ptr, sync_free()), Status::ok);
  ASSERT_EQ(pool.synchronize(0), Status::ok);
  // Free now: 2 MiB at +0, 2 MiB at +5 MiB, 9 MiB at +11 MiB. Best fit, lowest address on ties.
  EXPECT_EQ(pool.largest_free_block(), 9 * MiB);
  Result e = pool.allocate(req(MiB + 512 * KiB));
  EXPECT_EQ(addr(e.ptr), base);
  Result f = pool.allocate(req(2 * MiB));
  EXPECT_EQ(addr(f.ptr), base + 5 * MiB);
  Result g = pool.allocate(req(8 * MiB + 1000));  // the 9 MiB block, split
  EXPECT_EQ(addr(g.ptr), base + 11 * MiB);
  auto layout = pool.snapshot();
  ASSERT_EQ(layout.size(), 1u);
  std::vector<std::pair<uint64_t, BlockState>> blocks;
  for (const auto& bl : layout[0].blocks) blocks.push_back({bl.size, bl.state});
  std::vector<std::pair<uint64_t, BlockState>> want = {
      {MiB + 512 * KiB, BlockState::live}, {512 * KiB, BlockState::free},
      {3 * MiB, BlockState::live},         {2 * MiB, BlockState::live},
      {4 * MiB, BlockState::live},         {8 * MiB + 1024, BlockState::live},
      {MiB - 1024, BlockState::free}};
  EXPECT_EQ(blocks, want);
  for (const Result* r : {&b, &d, &e, &f, &g})
    ASSERT_EQ(pool.deallocate(r->ptr, sync_free()), Status::ok);
  ASSERT_EQ(pool.synchronize(0), Status::ok);
  layout = pool.snapshot();
  ASSERT_EQ(layout[0].blocks.size(), 1u);
  EXPECT_EQ(layout[0].blocks[0].size, 20 * MiB);
  EXPECT_EQ(layout[0].blocks[0].state, BlockState::free);
  EXPECT_EQ(pool.largest_free_block(), 20 * MiB);
  EXPECT_EQ(sim.alloc_calls(), 1u);
}

TEST_F(GrowthPoolTest, SmallAndLargeRequestsUseSeparateSegments) {
  Result large = pool.allocate(req(2 * MiB));  // a 20 MiB large segment with 18 MiB free
  Result small = pool.allocate(req(4 * KiB));  // still a 2 MiB small segment of its own
  ASSERT_TRUE(large.ok() && small.ok());
  EXPECT_EQ(pool.segment_count(), 2u);
  EXPECT_EQ(addr(small.ptr), base + 20 * MiB);
}

TEST_F(GrowthPoolTest, LookupAnswersForLiveBlocksOnly) {
  Result a = pool.allocate(req(1000));
  Result b = pool.allocate(req(3000));
  BlockInfo info;
  ASSERT_TRUE(pool.lookup(b.ptr, &info));
  EXPECT_EQ(info.base, b.ptr);
  EXPECT_EQ(info.bytes, 3000u);
  EXPECT_EQ(info.block_bytes, 3072u);
  EXPECT_EQ(addr(info.segment_base), base);
  EXPECT_EQ(info.segment_bytes, 2 * MiB);
  EXPECT_EQ(info.device, 0);
  ASSERT_TRUE(pool.lookup(reinterpret_cast<char*>(b.ptr) + 2999, &info));  // interior pointer
  EXPECT_EQ(info.base, b.ptr);
  EXPECT_EQ(addr(a.ptr) + 1024, addr(b.ptr));
  EXPECT_FALSE(pool.lookup(reinterpret_cast<char*>(b.ptr) + 3072, &info));    // free remainder
  EXPECT_FALSE(pool.lookup(reinterpret_cast<void*>(base + 2 * MiB), &info));  // past the segment
  EXPECT_FALSE(pool.lookup(reinterpret_cast<void*>(base - 1), &info));
  ASSERT_EQ(pool.deallocate(a.ptr, sync_free()), Status::ok);
  EXPECT_FALSE(pool.lookup(a.ptr, &info));
}

TEST_F(GrowthPoolTest, BadInputChangesNothing) {
  Result a = pool.allocate(req(MiB));
  ASSERT_TRUE(a.ok());
  int not_ours = 0;
  EXPECT_EQ(pool.deallocate(&not_ours, sync_free()), Status::invalid_value);
  EXPECT_EQ(pool.deallocate(reinterpret_cast<char*>(a.ptr) + 512, sync_free()),
            Status::invalid_value);  // interior pointer
  EXPECT_EQ(pool.allocate(req(MiB, 0, /*device=*/1)).status, Status::invalid_value);
  EXPECT_EQ(pool.allocate(req(0)).status, Status::invalid_value);
  EXPECT_EQ(pool.allocate(req(uint64_t{1} << 60)).status, Status::out_of_memory);
  ASSERT_EQ(pool.deallocate(a.ptr, sync_free()), Status::ok);
  EXPECT_EQ(pool.deallocate(a.ptr, sync_free()), Status::invalid_value);  // double free
  EXPECT_EQ(pool.alloc_count(), 1u);
  EXPECT_EQ(pool.free_count(), 1u);
  EXPECT_EQ(pool.failed_count(), 3u);
  EXPECT_EQ(pool.allocated_bytes(), 0u);
  EXPECT_EQ(pool.reserved_bytes(), 2 * MiB);
  EXPECT_EQ(sim.alloc_calls(), 1u);
}

TEST_F(GrowthPoolTest, EmptyCacheKeepsSegmentsInUse) {
  Result small = pool.allocate(req(KiB));
  Result large = pool.allocate(req(5 * MiB));
  ASSERT_EQ(pool.deallocate(large.ptr, async_free(0)), Status::ok);
  EXPECT_EQ(pool.empty_cache(), 20 * MiB);
  EXPECT_EQ(pool.reserved_bytes(), 2 * MiB);
  EXPECT_EQ(pool.peak_reserved_bytes(), 22 * MiB);
  EXPECT_EQ(pool.empty_cache(), 0u);
  EXPECT_EQ(sim.in_use(0), 2 * MiB);
  ASSERT_EQ(pool.deallocate(small.ptr, sync_free()), Status::ok);
  EXPECT_EQ(pool.empty_cache(), 2 * MiB);
  EXPECT_EQ(sim.live_count(), 0u);
}

TEST(GrowthPoolRetry, ReleasesEmptySegmentsAndRetriesOnce) {
  SimulatedUpstream::Options o;
  o.capacity = 40 * MiB;
  SimulatedUpstream sim(o);
  DeviceResource dev(sim);
  RecordingObserver observer;
  GrowthPool pool(dev, 0, &observer);
  const uint64_t base = uint64_t{0x7000} << 32;
  Result a = pool.allocate(req(5 * MiB));
  ASSERT_EQ(pool.deallocate(a.ptr, sync_free()), Status::ok);
  Result big = pool.allocate(req(30 * MiB));  // 20 + 30 > 40: refused, cache released, retried
  ASSERT_TRUE(big.ok());
  std::vector<SegmentEvent> expected = {
      {true, 0, base, 20 * MiB}, {false, 0, base, 20 * MiB}, {true, 0, base + 20 * MiB, 30 * MiB}};
  EXPECT_EQ(observer.events, expected);
  EXPECT_EQ(sim.alloc_calls(), 3u);
  EXPECT_EQ(sim.free_calls(), 1u);
  EXPECT_EQ(pool.reserved_bytes(), 30 * MiB);
  EXPECT_EQ(pool.failed_count(), 0u);
}

TEST(GrowthPoolRetry, FailsWhenTheRetryFailsToo) {
  SimulatedUpstream sim;
  DeviceResource dev(sim);
  RecordingObserver observer;
  GrowthPool pool(dev, 0, &observer);
  sim.set_fail_alloc_after(1);
  Result a = pool.allocate(req(5 * MiB));
  ASSERT_TRUE(a.ok());
  Result held = pool.allocate(req(KiB));  // needs a small segment: refused, nothing to release
  EXPECT_EQ(held.status, Status::out_of_memory);
  EXPECT_EQ(sim.alloc_calls(), 2u);  // no retry without anything released
  ASSERT_EQ(pool.deallocate(a.ptr, sync_free()), Status::ok);
  Result big = pool.allocate(req(30 * MiB));
  EXPECT_EQ(big.status, Status::out_of_memory);
  EXPECT_EQ(big.upstream_code, SimulatedUpstream::kOutOfMemory);
  EXPECT_EQ(big.ptr, nullptr);
  EXPECT_EQ(sim.alloc_calls(), 4u);  // refused, released the empty segment, refused again
  EXPECT_EQ(observer.events.size(), 2u);
  EXPECT_EQ(pool.reserved_bytes(), 0u);
  EXPECT_EQ(pool.failed_count(), 2u);
  EXPECT_EQ(pool.allocated_bytes(), 0u);
}

TEST(GrowthPoolRetry, OtherUpstreamErrorsAreNotRetried) {
  SimulatedUpstream sim;  // one device only
  DeviceResource dev(sim);
  GrowthPool pool(dev, 3);
  Result r = pool.allocate(req(KiB, 0, 3));
  EXPECT_EQ(r.status, Status::upstream_error);
  EXPECT_EQ(r.upstream_code, SimulatedUpstream::kInvalidValue);
  EXPECT_EQ(dev.failed_count(), 1u);
}

}  // namespace
}  // namespace gpumem::resources
