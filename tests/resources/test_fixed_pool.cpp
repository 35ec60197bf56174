// FixedPool: one upstream allocation of its whole size at first use, out of memory at its size,
// the same best-fit/split/coalesce bookkeeping as the growth pool.
#include <gtest/gtest.h>

#include "gpumem/resources/device_resource.h"
#include "gpumem/resources/fixed_pool.h"
#include "gpumem/resources/simulated_upstream.h"
#include "test_support.h"

namespace gpumem::resources {
namespace {
using namespace testing;

struct FixedPoolTest : ::testing::Test {
  SimulatedUpstream sim;
  DeviceResource dev{sim};
  RecordingObserver observer;
  FixedPool pool{dev, 0, 8 * MiB, &observer};
  const uint64_t base = uint64_t{0x7000} << 32;
};

TEST_F(FixedPoolTest, ReservesItsSizeOnceAtFirstUse) {
  EXPECT_EQ(sim.alloc_calls(), 0u);
  EXPECT_EQ(pool.reserved_bytes(), 0u);
  std::vector<void*> held;
  for (uint64_t bytes : {KiB, 3 * MiB, 1000ul, 2 * MiB, 700 * KiB}) {
    Result r = pool.allocate(req(bytes));
    ASSERT_TRUE(r.ok()) << bytes;
    held.push_back(r.ptr);
  }
  EXPECT_EQ(sim.alloc_calls(), 1u);
  EXPECT_EQ(observer.events, (std::vector<SegmentEvent>{{true, 0, base, 8 * MiB}}));
  EXPECT_EQ(pool.reserved_bytes(), 8 * MiB);
  EXPECT_EQ(pool.allocated_bytes(), KiB + 5 * MiB + 1000 + 700 * KiB);
  for (void* p : held) ASSERT_EQ(pool.deallocate(p, sync_free()), Status::ok);
  EXPECT_EQ(pool.empty_cache(), 0u);  // a fixed pool keeps its reservation
  EXPECT_EQ(pool.reserved_bytes(), 8 * MiB);
  EXPECT_EQ(sim.free_calls(), 0u);
}

TEST_F(FixedPoolTest, OutOfMemoryAtItsSize) {
  Result all = pool.allocate(req(8 * MiB));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(addr(all.ptr), base);
  Result more = pool.allocate(req(512));
  EXPECT_EQ(more.status, Status::out_of_memory);
  EXPECT_EQ(more.in_use, 8 * MiB);
  EXPECT_EQ(more.upstream_code, 0);
  ASSERT_EQ(pool.deallocate(all.ptr, sync_free()), Status::ok);
  Result a = pool.allocate(req(4 * MiB));  // synchronizes, then reuses
  Result b = pool.allocate(req(4 * MiB));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(pool.allocate(req(1)).status, Status::out_of_memory);
  ASSERT_EQ(pool.deallocate(a.ptr, sync_free()), Status::ok);
  ASSERT_EQ(pool.deallocate(b.ptr, sync_free()), Status::ok);
  Result whole = pool.allocate(req(8 * MiB));  // coalesced back into one block
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(addr(whole.ptr), base);
  EXPECT_EQ(sim.alloc_calls(), 1u);
  EXPECT_EQ(pool.failed_count(), 2u);
  EXPECT_EQ(pool.largest_free_block(), 0u);
}

TEST_F(FixedPoolTest, RequestLargerThanThePoolReservesNothing) {
  Result r = pool.allocate(req(8 * MiB + 1));
  EXPECT_EQ(r.status, Status::out_of_memory);
  EXPECT_EQ(sim.alloc_calls(), 0u);
  EXPECT_TRUE(observer.events.empty());
}

TEST_F(FixedPoolTest, StreamOrderedFreesCoalesceAndAreReusedAtOnce) {
  Result a = pool.allocate(req(MiB));
  Result b = pool.allocate(req(MiB));
  Result c = pool.allocate(req(MiB));
  ASSERT_EQ(pool.deallocate(b.ptr, async_free(0)), Status::ok);
  ASSERT_EQ(pool.deallocate(a.ptr, async_free(0)), Status::ok);
  Result ab = pool.allocate(req(2 * MiB));  // a+b coalesced; the 5 MiB tail is a worse fit
  EXPECT_EQ(ab.ptr, a.ptr);
  EXPECT_EQ(sim.sync_calls(), 0u);
  EXPECT_TRUE(c.ok());
}

TEST(FixedPoolDevice, RefusedReservationIsRetriedOnTheNextRequest) {
  SimulatedUpstream::Options o;
  o.capacity = 4 * MiB;
  SimulatedUpstream sim(o);
  DeviceResource dev(sim);
  FixedPool pool(dev, 0, 8 * MiB);
  Result r = pool.allocate(req(KiB));
  EXPECT_EQ(r.status, Status::out_of_memory);
  EXPECT_EQ(r.upstream_code, SimulatedUpstream::kOutOfMemory);
  EXPECT_EQ(pool.allocate(req(KiB)).status, Status::out_of_memory);
  EXPECT_EQ(sim.alloc_calls(), 2u);
  EXPECT_EQ(pool.reserved_bytes(), 0u);
}

}  // namespace
}  // namespace gpumem::resources
