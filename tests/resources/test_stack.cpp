// DeviceStack: the per-device stack in the recommended order.
#include <gtest/gtest.h>

#include "gpumem/resources/simulated_upstream.h"
#include "gpumem/resources/stack.h"
#include "test_support.h"

namespace gpumem::resources {
namespace {
using namespace testing;

TEST(DeviceStack, NoneWithLimitIsLimitOverDevice) {
  SimulatedUpstream sim;
  DeviceStack stack(sim, 0, {PoolKind::none, 4 * MiB, 0});
  ASSERT_TRUE(stack.valid());
  EXPECT_EQ(stack.pool(), nullptr);
  EXPECT_EQ(stack.top(), stack.limit());
  ASSERT_TRUE(stack.top()->allocate(req(3 * MiB)).ok());
  Result r = stack.top()->allocate(req(2 * MiB));
  EXPECT_EQ(r.status, Status::out_of_memory);
  EXPECT_EQ(r.in_use, 3 * MiB);
  EXPECT_EQ(stack.stats().limit_bytes, 4 * MiB);
  EXPECT_EQ(stack.stats().reserved_bytes, 3 * MiB);  // no pool: what passed the limit
}

TEST(DeviceStack, GrowthPoolSitsOverTheLimit) {
  SimulatedUpstream sim;
  RecordingObserver observer;
  DeviceStack stack(sim, 0, {PoolKind::growth, 30 * MiB, 0}, &observer);
  ASSERT_NE(stack.pool(), nullptr);
  EXPECT_EQ(stack.top(), stack.pool());
  ASSERT_TRUE(stack.top()->allocate(req(KiB)).ok());
  EXPECT_EQ(stack.limit()->used_bytes(), 2 * MiB);  // the limit counts segments
  Stats s = stack.stats();
  EXPECT_EQ(s.allocated_bytes, KiB);
  EXPECT_EQ(s.reserved_bytes, 2 * MiB);
  EXPECT_EQ(s.limit_bytes, 30 * MiB);
  EXPECT_EQ(observer.events.size(), 1u);
  EXPECT_EQ(stack.top()->allocate(req(29 * MiB)).status, Status::out_of_memory);
}

TEST(DeviceStack, FixedPoolTakesTheLimitWhenNoSizeIsGiven) {
  SimulatedUpstream sim;
  DeviceStack with_limit(sim, 0, {PoolKind::fixed, 8 * MiB, 0});
  ASSERT_TRUE(with_limit.top()->allocate(req(KiB)).ok());
  EXPECT_EQ(with_limit.stats().reserved_bytes, 8 * MiB);
  DeviceStack sized(sim, 0, {PoolKind::fixed, 0, 4 * MiB});
  ASSERT_TRUE(sized.top()->allocate(req(KiB)).ok());
  EXPECT_EQ(sized.stats().reserved_bytes, 4 * MiB);
  DeviceStack neither(sim, 0, {PoolKind::fixed, 0, 0});
  EXPECT_FALSE(neither.valid());
}

TEST(DeviceStack, DestroyingAPoolStackGivesEverythingBack) {
  SimulatedUpstream sim;
  {
    DeviceStack stack(sim, 0, {PoolKind::growth, GiB, 0});
    ASSERT_TRUE(stack.top()->allocate(req(5 * MiB)).ok());
    ASSERT_TRUE(stack.top()->allocate(req(KiB)).ok());
    EXPECT_EQ(sim.in_use(0), 22 * MiB);
  }
  EXPECT_EQ(sim.in_use(0), 0u);
  EXPECT_EQ(sim.live_count(), 0u);
}

}  // namespace
}  // namespace gpumem::resources
