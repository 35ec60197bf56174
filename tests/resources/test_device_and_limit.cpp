// DeviceResource (the upstream adaptor) and LimitResource (the cap) on a simulated device.
#include <gtest/gtest.h>

#include "gpumem/resources/device_resource.h"
#include "gpumem/resources/growth_pool.h"
#include "gpumem/resources/limit_resource.h"
#include "gpumem/resources/simulated_upstream.h"
#include "gpumem/resources/stack.h"
#include "test_support.h"

namespace gpumem::resources {
namespace {
using namespace testing;

TEST(DeviceResource, ForwardsAndCounts) {
  SimulatedUpstream sim;
  DeviceResource dev(sim);
  Result a = dev.allocate(req(1000));
  ASSERT_TRUE(a.ok());
  Result b = dev.allocate(req(3 * MiB));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(dev.allocated_bytes(), 1000 + 3 * MiB);
  EXPECT_EQ(sim.live_count(), 2u);
  EXPECT_EQ(dev.deallocate(a.ptr, sync_free(1000)), Status::ok);
  EXPECT_EQ(dev.allocated_bytes(), 3 * MiB);
  EXPECT_EQ(dev.peak_allocated_bytes(), 1000 + 3 * MiB);
}

TEST(DeviceResource, MapsUpstreamCodes) {
  SimulatedUpstream::Options o;
  o.capacity = 4 * MiB;
  SimulatedUpstream sim(o);
  DeviceResource dev(sim);
  Result held = dev.allocate(req(MiB));
  ASSERT_TRUE(held.ok());
  Result oom = dev.allocate(req(4 * MiB));
  EXPECT_EQ(oom.status, Status::out_of_memory);
  EXPECT_EQ(oom.upstream_code, SimulatedUpstream::kOutOfMemory);
  EXPECT_EQ(oom.in_use, MiB);
  EXPECT_EQ(oom.ptr, nullptr);
  Result bad_device = dev.allocate(req(MiB, 0, /*device=*/3));
  EXPECT_EQ(bad_device.status, Status::upstream_error);
  EXPECT_EQ(bad_device.upstream_code, SimulatedUpstream::kInvalidValue);
  EXPECT_EQ(dev.allocate(req(0)).status, Status::invalid_value);
  int not_ours = 0;
  EXPECT_EQ(dev.deallocate(&not_ours, sync_free(4)), Status::upstream_error);
  EXPECT_EQ(dev.deallocate(nullptr, sync_free(4)), Status::invalid_value);
  EXPECT_EQ(dev.failed_count(), 3u);
  EXPECT_EQ(dev.free_count(), 0u);
  EXPECT_EQ(dev.allocated_bytes(), MiB);
}

TEST(LimitResource, RefusesExactlyAtTheLimit) {
  SimulatedUpstream sim;
  DeviceResource dev(sim);
  LimitResource limit(dev, 10 * MiB);
  Result a = limit.allocate(req(6 * MiB));
  ASSERT_TRUE(a.ok());
  Result over = limit.allocate(req(4 * MiB + 1));
  EXPECT_EQ(over.status, Status::out_of_memory);
  EXPECT_EQ(over.in_use, 6 * MiB);
  EXPECT_EQ(over.upstream_code, 0);
  EXPECT_EQ(over.ptr, nullptr);
  EXPECT_EQ(sim.alloc_calls(), 1u);  // the refused request never reached the device
  Result fits = limit.allocate(req(4 * MiB));
  ASSERT_TRUE(fits.ok());
  EXPECT_EQ(limit.used_bytes(), 10 * MiB);
  Result one_more = limit.allocate(req(1));
  EXPECT_EQ(one_more.status, Status::out_of_memory);
  EXPECT_EQ(one_more.in_use, 10 * MiB);
  EXPECT_EQ(limit.deallocate(a.ptr, sync_free(6 * MiB)), Status::ok);
  EXPECT_EQ(limit.used_bytes(), 4 * MiB);
  EXPECT_EQ(sim.in_use(0), 4 * MiB);
  EXPECT_TRUE(limit.allocate(req(6 * MiB)).ok());
}

TEST(LimitResource, NothingChangesOnFailure) {
  SimulatedUpstream sim;
  DeviceStack stack(sim, 0, StackConfig{PoolKind::none, 8 * MiB, 0});
  LimitResource& limit = *stack.limit();
  DeviceResource& dev = *stack.device();
  ASSERT_TRUE(limit.allocate(req(5 * MiB)).ok());
  Stats before = stack.stats();
  uint64_t dev_allocs = dev.alloc_count();
  EXPECT_EQ(limit.allocate(req(4 * MiB)).status, Status::out_of_memory);
  Stats after = stack.stats();
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
  EXPECT_EQ(after.reserved_bytes, before.reserved_bytes);
  EXPECT_EQ(after.peak_allocated_bytes, before.peak_allocated_bytes);
  EXPECT_EQ(after.alloc_count, before.alloc_count);
  EXPECT_EQ(after.failed_count, before.failed_count + 1);
  EXPECT_EQ(after.limit_bytes, 8 * MiB);
  EXPECT_EQ(limit.used_bytes(), 5 * MiB);
  EXPECT_EQ(dev.alloc_count(), dev_allocs);
  EXPECT_EQ(dev.failed_count(), 0u);
}

TEST(LimitResource, RollsBackWhenUpstreamFails) {
  SimulatedUpstream::Options o;
  o.capacity = 4 * MiB;
  SimulatedUpstream sim(o);
  DeviceResource dev(sim);
  LimitResource limit(dev, GiB);
  Result r = limit.allocate(req(8 * MiB));
  EXPECT_EQ(r.status, Status::out_of_memory);
  EXPECT_EQ(r.upstream_code, SimulatedUpstream::kOutOfMemory);
  EXPECT_EQ(limit.used_bytes(), 0u);
  Result bad = limit.allocate(req(MiB, 0, /*device=*/7));
  EXPECT_EQ(bad.status, Status::upstream_error);
  EXPECT_EQ(bad.upstream_code, SimulatedUpstream::kInvalidValue);
  EXPECT_EQ(limit.used_bytes(), 0u);
  EXPECT_EQ(limit.failed_count(), 2u);
  EXPECT_TRUE(limit.allocate(req(4 * MiB)).ok());
  EXPECT_EQ(limit.used_bytes(), 4 * MiB);
}

TEST(LimitResource, FreeFailureKeepsTheCount) {
  SimulatedUpstream sim;
  DeviceResource dev(sim);
  LimitResource limit(dev, 8 * MiB);
  ASSERT_TRUE(limit.allocate(req(2 * MiB)).ok());
  int unknown = 0;
  EXPECT_EQ(limit.deallocate(&unknown, sync_free(2 * MiB)), Status::upstream_error);
  EXPECT_EQ(limit.used_bytes(), 2 * MiB);
  EXPECT_EQ(limit.allocated_bytes(), 2 * MiB);
}

// limit below the growth pool caps what the pool reserves; the pool's retry rule frees its cache.
TEST(LimitResource, BelowAGrowthPoolCapsSegments) {
  SimulatedUpstream sim;
  DeviceResource dev(sim);
  LimitResource limit(dev, 30 * MiB);
  GrowthPool pool(limit, 0);
  Result a = pool.allocate(req(9 * MiB));  // a 20 MiB segment
  ASSERT_TRUE(a.ok());
  Result big = pool.allocate(req(25 * MiB));  // its own 26 MiB segment: 46 MiB > 30 MiB
  EXPECT_EQ(big.status, Status::out_of_memory);
  EXPECT_EQ(big.in_use, 20 * MiB);
  EXPECT_EQ(pool.failed_count(), 1u);
  ASSERT_EQ(pool.deallocate(a.ptr, sync_free()), Status::ok);
  Result again = pool.allocate(req(25 * MiB));  // the empty 20 MiB segment goes, then it fits
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(pool.reserved_bytes(), 26 * MiB);
  EXPECT_EQ(limit.used_bytes(), 26 * MiB);
  EXPECT_EQ(sim.in_use(0), 26 * MiB);
}

}  // namespace
}  // namespace gpumem::resources
