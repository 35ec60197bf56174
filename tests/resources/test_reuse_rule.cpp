// The reuse rule (docs/policies.md): a block freed synchronously (cudaFree semantics) is not handed
// out again before the pool has synchronized the device; a block freed stream-ordered is reusable
// at once on its stream, and on other streams only after a synchronization.
#include <gtest/gtest.h>

#include "gpumem/resources/device_resource.h"
#include "gpumem/resources/growth_pool.h"
#include "gpumem/resources/simulated_upstream.h"
#include "test_support.h"

namespace gpumem::resources {
namespace {
using namespace testing;
using Call = SimulatedUpstream::Call;

struct ReuseRule : ::testing::Test {
  SimulatedUpstream sim{[] {
    SimulatedUpstream::Options o;
    o.record_calls = true;
    return o;
  }()};
  DeviceResource dev{sim};
  GrowthPool pool{dev, 0};
  const uint64_t base = uint64_t{0x7000} << 32;

  std::vector<Call> call_kinds() const {
    std::vector<Call> kinds;
    for (const auto& c : sim.calls()) kinds.push_back(c.call);
    return kinds;
  }
};

TEST_F(ReuseRule, SyncFreedBlockWaitsForASynchronization) {
  Result a = pool.allocate(req(MiB));  // a 2 MiB small segment: a at +0, 1 MiB free after it
  ASSERT_EQ(pool.deallocate(a.ptr, sync_free()), Status::ok);
  Result b = pool.allocate(req(MiB));
  EXPECT_EQ(addr(b.ptr), base + MiB);  // not a's block: that one is pending
  EXPECT_EQ(sim.sync_calls(), 0u);
  EXPECT_EQ(pool.pending_count(), 1u);
  ASSERT_EQ(pool.deallocate(b.ptr, sync_free()), Status::ok);
  Result c = pool.allocate(req(2 * 512 * KiB));  // nothing reusable: synchronize, then reuse
  EXPECT_EQ(addr(c.ptr), base);
  EXPECT_EQ(sim.sync_calls(), 1u);
  EXPECT_EQ(pool.pending_count(), 0u);
  // The synchronization came before the block was handed out, and no segment was added.
  EXPECT_EQ(call_kinds(), (std::vector<Call>{Call::alloc, Call::synchronize}));
}

TEST_F(ReuseRule, ExplicitSynchronizeMakesPendingBlocksReusable) {
  Result a = pool.allocate(req(512 * KiB));
  ASSERT_EQ(pool.deallocate(a.ptr, sync_free()), Status::ok);
  ASSERT_EQ(pool.synchronize(0), Status::ok);
  EXPECT_EQ(sim.sync_calls(), 1u);
  EXPECT_EQ(pool.pending_count(), 0u);
  Result b = pool.allocate(req(MiB));  // a coalesced with the rest: b starts where a did
  EXPECT_EQ(addr(b.ptr), base);
  EXPECT_EQ(sim.sync_calls(), 1u);
  EXPECT_EQ(sim.alloc_calls(), 1u);
}

TEST_F(ReuseRule, StreamOrderedFreeIsReusableAtOnceOnItsStream) {
  Result a = pool.allocate(req(MiB, /*stream=*/7));
  ASSERT_EQ(pool.deallocate(a.ptr, async_free(7)), Status::ok);
  Result b = pool.allocate(req(MiB, 7));
  EXPECT_EQ(b.ptr, a.ptr);
  EXPECT_EQ(sim.sync_calls(), 0u);
}

TEST_F(ReuseRule, StreamOrderedFreeWaitsForASynchronizationOnOtherStreams) {
  Result a = pool.allocate(req(MiB, 7));
  ASSERT_EQ(pool.deallocate(a.ptr, async_free(7)), Status::ok);
  Result b = pool.allocate(req(MiB, 8));
  EXPECT_EQ(addr(b.ptr), base + MiB);  // the untouched half, not a's block
  EXPECT_EQ(sim.sync_calls(), 0u);
  Result c = pool.allocate(req(MiB, 8));  // only a's block is left: synchronize first
  EXPECT_EQ(c.ptr, a.ptr);
  EXPECT_EQ(sim.sync_calls(), 1u);
  EXPECT_EQ(call_kinds(), (std::vector<Call>{Call::alloc, Call::synchronize}));
}

TEST_F(ReuseRule, StreamTaggedBlocksCoalesceOnlyWithTheirStream) {
  Result a = pool.allocate(req(512 * KiB, 7));
  Result b = pool.allocate(req(512 * KiB, 7));
  Result c = pool.allocate(req(512 * KiB, 9));
  ASSERT_EQ(pool.deallocate(a.ptr, async_free(7)), Status::ok);
  ASSERT_EQ(pool.deallocate(b.ptr, async_free(7)), Status::ok);
  ASSERT_EQ(pool.deallocate(c.ptr, async_free(9)), Status::ok);
  auto blocks = pool.snapshot().at(0).blocks;
  ASSERT_EQ(blocks.size(), 3u);  // [a+b on 7][c on 9][rest, any stream]
  EXPECT_EQ(blocks[0].size, MiB);
  EXPECT_EQ(blocks[0].stream, 7u);
  EXPECT_EQ(blocks[1].stream, 9u);
  EXPECT_EQ(blocks[2].stream, kAnyStream);
  Result d = pool.allocate(req(MiB, 7));  // a+b, reused at once on stream 7
  EXPECT_EQ(d.ptr, a.ptr);
  EXPECT_EQ(sim.sync_calls(), 0u);
}

TEST_F(ReuseRule, EmptyCacheSynchronizesBeforeReleasing) {
  Result a = pool.allocate(req(MiB));
  ASSERT_EQ(pool.deallocate(a.ptr, sync_free()), Status::ok);
  EXPECT_EQ(pool.empty_cache(), 2 * MiB);
  EXPECT_EQ(call_kinds(), (std::vector<Call>{Call::alloc, Call::synchronize, Call::free}));
}

}  // namespace
}  // namespace gpumem::resources
