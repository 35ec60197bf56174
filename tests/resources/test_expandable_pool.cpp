// The expandable pool (expandable_pool.h) over SimulatedVmm: reserved bytes to the granule, every
// page given back after empty_cache and at destruction, the cap counting mapped memory, a new
// range when one runs out, the stream-aware reuse rule, the observer's segments, a device without
// VMM, and threads on streams writing into their blocks.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "gpumem/resources/expandable_pool.h"
#include "gpumem/resources/simulated_upstream.h"
#include "gpumem/resources/simulated_vmm.h"
#include "gpumem/resources/stack.h"
#include "test_support.h"

namespace gpumem::resources {
namespace {
using namespace testing;

constexpr uint64_t kGranule = 2 * MiB;

struct Fixture {
  explicit Fixture(uint64_t limit = 0, uint64_t range = 256 * MiB, bool host = false,
                   PoolObserver* observer = nullptr)
      : sim(sim_options(host)),
        vmm(vmm_options(host)),
        stack(std::make_unique<DeviceStack>(sim, 0, config(limit, range), observer)) {}
  static SimulatedUpstream::Options sim_options(bool host) {
    SimulatedUpstream::Options o;
    o.capacity = 64 * MiB;
    o.back_with_host_memory = host;
    return o;
  }
  static SimulatedVmm::Options vmm_options(bool host) {
    SimulatedVmm::Options o;
    o.devices = 2;  // device 1 is the peer of the peer-access tests
    o.back_with_host_memory = host;
    return o;
  }
  StackConfig config(uint64_t limit, uint64_t range) {
    StackConfig c;
    c.pool = PoolKind::expandable;
    c.limit = limit;
    c.vmm = &vmm;
    c.vmm_range = range;
    return c;
  }
  MemoryResource& mr() { return *stack->top(); }
  ExpandablePool& pool() { return static_cast<ExpandablePool&>(*stack->pool()); }
  uint64_t reserved() { return stack->stats().reserved_bytes; }

  SimulatedUpstream sim;
  SimulatedVmm vmm;
  std::unique_ptr<DeviceStack> stack;
};

TEST(ExpandablePool, ReservedIsTheGranulesItsBlocksTouch) {
  Fixture f;
  Result a = f.mr().allocate(req(3 * MiB));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(f.reserved(), 4 * MiB);  // two granules, not a 20 MiB segment
  EXPECT_EQ(f.pool().reserved_bytes(), 4 * MiB);
  EXPECT_EQ(f.sim.in_use(0), 4 * MiB);
  EXPECT_EQ(f.vmm.mapped_bytes(), 4 * MiB);
  EXPECT_EQ(f.pool().granularity(), kGranule);
  Result b = f.mr().allocate(req(KiB));  // right after a, inside its second granule
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(addr(b.ptr), addr(a.ptr) + 3 * MiB);
  EXPECT_EQ(f.reserved(), 4 * MiB);
  EXPECT_EQ(f.vmm.map_calls(), 2u);

  // A synchronous free stays mapped (pending) until the next mapping, which first synchronizes
  // and unmaps the wholly free granule [0, 2 MiB); [2, 4) MiB still holds b.
  ASSERT_EQ(f.mr().deallocate(a.ptr, sync_free(3 * MiB)), Status::ok);
  EXPECT_EQ(f.reserved(), 4 * MiB);
  Result c = f.mr().allocate(req(5 * MiB));  // [0, 3 MiB) is too small: after b, to 8 MiB + 1 KiB
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(addr(c.ptr), addr(b.ptr) + KiB);
  EXPECT_EQ(f.sim.sync_calls(), 1u);
  EXPECT_EQ(f.pool().mapped_granules(), 4u);  // granules 1 to 4
  EXPECT_EQ(f.reserved(), 8 * MiB);
  EXPECT_EQ(f.stack->stats().allocated_bytes, 5 * MiB + KiB);
  EXPECT_EQ(f.stack->stats().peak_reserved_bytes, 8 * MiB);

  // empty_cache: every wholly free granule goes. With b freed, granule 1 still holds c's head.
  ASSERT_EQ(f.mr().deallocate(b.ptr, sync_free(KiB)), Status::ok);
  EXPECT_EQ(f.pool().empty_cache(), 0u);
  EXPECT_EQ(f.reserved(), 8 * MiB);
  ASSERT_EQ(f.mr().deallocate(c.ptr, sync_free(5 * MiB)), Status::ok);
  EXPECT_EQ(f.pool().empty_cache(), 8 * MiB);
  EXPECT_EQ(f.reserved(), 0u);
  EXPECT_EQ(f.pool().mapped_granules(), 0u);
  EXPECT_EQ(f.vmm.live_mappings(), 0u);
  EXPECT_EQ(f.vmm.live_handles(), 0u);
  EXPECT_EQ(f.sim.in_use(0), 0u);
  EXPECT_EQ(f.vmm.live_ranges(), 1u);  // the address range stays reserved
}

// Peer access: a block is reachable from device 1 only once device 1 is a peer, on the granules
// mapped before add_peer and on those mapped after; access maps nothing (reserved and the cap
// are unchanged), and remove_peer takes it back from every mapped granule.
TEST(ExpandablePool, APeerGetsAccessToEveryMappedGranuleNowAndLater) {
  Fixture f(8 * MiB);
  Result a = f.mr().allocate(req(3 * MiB));  // granules 0 and 1
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(f.vmm.accessible(0, addr(a.ptr), 3 * MiB));
  EXPECT_FALSE(f.vmm.accessible(1, addr(a.ptr), 3 * MiB));
  const uint64_t maps = f.vmm.map_calls();

  ASSERT_EQ(f.pool().add_peer(1), 0);
  EXPECT_TRUE(f.vmm.accessible(1, addr(a.ptr), 3 * MiB));
  EXPECT_EQ(f.pool().peers(), std::vector<int>{1});
  EXPECT_EQ(f.vmm.map_calls(), maps);  // no new memory
  EXPECT_EQ(f.reserved(), 4 * MiB);
  EXPECT_EQ(f.stack->limit()->used_bytes(), 4 * MiB);
  ASSERT_EQ(f.pool().add_peer(1), 0);  // again: nothing changes
  ASSERT_EQ(f.pool().add_peer(0), 0);  // the pool's own device is no peer
  EXPECT_EQ(f.pool().peers(), std::vector<int>{1});

  Result b = f.mr().allocate(req(4 * MiB));  // 3 to 7 MiB: granule 2 and 3 mapped now
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(f.vmm.map_calls(), maps + 2);
  EXPECT_TRUE(f.vmm.accessible(1, addr(b.ptr), 4 * MiB));
  EXPECT_TRUE(f.vmm.accessible(0, addr(b.ptr), 4 * MiB));
  EXPECT_EQ(f.stack->limit()->used_bytes(), 8 * MiB);  // the cap counts mapped memory only

  ASSERT_EQ(f.pool().remove_peer(1), 0);
  EXPECT_FALSE(f.vmm.accessible(1, addr(a.ptr), 3 * MiB));
  EXPECT_FALSE(f.vmm.accessible(1, addr(b.ptr), 4 * MiB));
  EXPECT_TRUE(f.vmm.accessible(0, addr(b.ptr), 4 * MiB));
  EXPECT_TRUE(f.pool().peers().empty());
  ASSERT_EQ(f.mr().deallocate(a.ptr, sync_free(3 * MiB)), Status::ok);
  ASSERT_EQ(f.mr().deallocate(b.ptr, sync_free(4 * MiB)), Status::ok);
  EXPECT_EQ(f.pool().empty_cache(), 8 * MiB);
}

// A peer the device cannot name (SimulatedVmm has 2 devices): the driver's code comes back, the
// granules keep the access they had, and later mappings are not granted to it.
TEST(ExpandablePool, APeerTheDriverRefusesIsNotRecorded) {
  Fixture f;
  Result a = f.mr().allocate(req(3 * MiB));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(f.pool().add_peer(5), SimulatedVmm::kInvalidValue);
  EXPECT_TRUE(f.pool().peers().empty());
  EXPECT_TRUE(f.vmm.accessible(0, addr(a.ptr), 3 * MiB));
  Result b = f.mr().allocate(req(4 * MiB));
  ASSERT_TRUE(b.ok());  // mapping goes on for the pool's own device
  EXPECT_FALSE(f.vmm.accessible(1, addr(b.ptr), 4 * MiB));
  ASSERT_EQ(f.mr().deallocate(a.ptr, sync_free(3 * MiB)), Status::ok);
  ASSERT_EQ(f.mr().deallocate(b.ptr, sync_free(4 * MiB)), Status::ok);
}

// A petabyte request (the attribution test's too_big, replayed by the OOM explanation) is
// refused before a range and its per-granule table (4 GiB for 1 PiB) are made.
TEST(ExpandablePool, ARequestNoDeviceHasIsRefusedWithoutReservingARange) {
  Fixture f;
  Result huge = f.mr().allocate(req(uint64_t{1} << 50));
  EXPECT_EQ(huge.status, Status::out_of_memory);
  EXPECT_EQ(f.vmm.live_ranges(), 0u);
  EXPECT_EQ(f.reserved(), 0u);
  EXPECT_TRUE(f.mr().allocate(req(MiB)).ok());
}

TEST(ExpandablePool, EveryPageGoesBackAtDestruction) {
  Fixture f(0, 16 * MiB);
  ASSERT_TRUE(f.mr().allocate(req(3 * MiB)).ok());
  ASSERT_TRUE(f.mr().allocate(req(15 * MiB)).ok());  // past the first range: a second one
  Result freed = f.mr().allocate(req(MiB));
  ASSERT_TRUE(freed.ok());
  ASSERT_EQ(f.mr().deallocate(freed.ptr, sync_free(MiB)), Status::ok);
  EXPECT_EQ(f.pool().range_count(), 2u);
  EXPECT_GT(f.vmm.live_mappings(), 0u);
  f.stack.reset();  // live blocks and all
  EXPECT_EQ(f.vmm.live_mappings(), 0u);
  EXPECT_EQ(f.vmm.live_handles(), 0u);
  EXPECT_EQ(f.vmm.live_ranges(), 0u);
  EXPECT_EQ(f.sim.in_use(0), 0u);
  EXPECT_EQ(f.sim.live_count(), 0u);
}

TEST(ExpandablePool, AnotherRangeWhenOneRunsOut) {
  Fixture f(0, 8 * MiB);
  Result a = f.mr().allocate(req(6 * MiB));
  Result b = f.mr().allocate(req(6 * MiB));  // 2 MiB left in the first range: a second
  Result c = f.mr().allocate(req(20 * MiB));  // larger than a range: a range of its size
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(f.pool().range_count(), 3u);
  EXPECT_EQ(f.pool().address_bytes(), 8 * MiB + 8 * MiB + 20 * MiB);
  EXPECT_EQ(f.reserved(), 6 * MiB + 6 * MiB + 20 * MiB);
  Result d = f.mr().allocate(req(2 * MiB));  // the first range's tail
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(addr(d.ptr), addr(a.ptr) + 6 * MiB);
  EXPECT_EQ(f.pool().range_count(), 3u);
}

TEST(ExpandablePool, TheCapCountsMappedMemory) {
  Fixture f(8 * MiB);
  Result a = f.mr().allocate(req(3 * MiB));
  Result b = f.mr().allocate(req(5 * MiB));  // 3 to 8 MiB: granules 1 to 3, 8 MiB mapped
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(f.stack->limit()->used_bytes(), 8 * MiB);
  Result c = f.mr().allocate(req(512));  // a fifth granule: over the cap
  EXPECT_EQ(c.status, Status::out_of_memory);
  EXPECT_EQ(c.in_use, 8 * MiB);
  EXPECT_EQ(f.reserved(), 8 * MiB);
  // Freeing a (pending) makes room: the next mapping synchronizes and unmaps granule 0 first.
  ASSERT_EQ(f.mr().deallocate(a.ptr, sync_free(3 * MiB)), Status::ok);
  Result d = f.mr().allocate(req(512));
  ASSERT_TRUE(d.ok()) << status_name(d.status);
  EXPECT_EQ(f.reserved(), 8 * MiB);
  EXPECT_EQ(f.stack->limit()->used_bytes(), 8 * MiB);
}

// The largest free block (stats, the OOM record's figure) counts mapped bytes inside free blocks
// only: the 256 MiB range's unmapped rest is address space, not memory a block could be given.
TEST(ExpandablePool, TheLargestFreeBlockIsMappedMemoryOnly) {
  Fixture f;
  EXPECT_EQ(f.pool().largest_free_block(), 0u);
  Result a = f.mr().allocate(req(3 * MiB));  // [0, 3 MiB): granules 0 and 1
  Result b = f.mr().allocate(req(KiB));      // [3 MiB, 3 MiB + 1 KiB), in granule 1
  ASSERT_TRUE(a.ok() && b.ok());
  // Free: the rest of granule 1 after b; the 252 MiB beyond it are not mapped.
  EXPECT_EQ(f.pool().largest_free_block(), MiB - KiB);
  EXPECT_EQ(f.stack->stats().largest_free_block_bytes, MiB - KiB);
  ASSERT_EQ(f.mr().deallocate(a.ptr, sync_free(3 * MiB)), Status::ok);  // pending, still mapped
  EXPECT_EQ(f.pool().largest_free_block(), 3 * MiB);
  // c maps granules 2 to 4 after unmapping granule 0 (wholly free): a's block keeps 1 MiB mapped.
  Result c = f.mr().allocate(req(5 * MiB));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(addr(c.ptr), addr(b.ptr) + KiB);
  EXPECT_EQ(f.pool().mapped_granules(), 4u);
  // Free and mapped now: [2, 3) MiB of a's block, and granule 4 after c's end (2 MiB - 1 KiB).
  EXPECT_EQ(f.pool().largest_free_block(), 2 * MiB - KiB);
  ASSERT_EQ(f.mr().deallocate(c.ptr, sync_free(5 * MiB)), Status::ok);  // pending: all 5 MiB
  EXPECT_EQ(f.pool().largest_free_block(), 5 * MiB);
  ASSERT_EQ(f.mr().deallocate(b.ptr, sync_free(KiB)), Status::ok);
  EXPECT_EQ(f.pool().empty_cache(), 8 * MiB);
  EXPECT_EQ(f.pool().largest_free_block(), 0u);
}

TEST(ExpandablePool, AFailedMappingLeavesNothingBehind) {
  Fixture f;
  f.sim.set_fail_alloc_after(3);  // the device gives three granules, then nothing
  Result a = f.mr().allocate(req(MiB));
  ASSERT_TRUE(a.ok());
  Result big = f.mr().allocate(req(10 * MiB));  // needs 5 more granules; gets 2
  EXPECT_EQ(big.status, Status::out_of_memory);
  EXPECT_EQ(big.in_use, 2 * MiB);
  EXPECT_EQ(f.reserved(), 2 * MiB);
  EXPECT_EQ(f.vmm.live_mappings(), 1u);
  EXPECT_EQ(f.vmm.live_handles(), 1u);
  EXPECT_EQ(f.stack->stats().failed_count, 1u);
}

TEST(ExpandablePool, StreamOrderedFreesAreReusedOnTheirStreamWithoutRemapping) {
  Fixture f;
  Result a = f.mr().allocate(req(4 * MiB, 7));
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(f.mr().deallocate(a.ptr, async_free(7, 4 * MiB)), Status::ok);
  Result again = f.mr().allocate(req(4 * MiB, 7));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.ptr, a.ptr);
  EXPECT_EQ(f.vmm.map_calls(), 2u);
  EXPECT_EQ(f.vmm.unmap_calls(), 0u);
  EXPECT_EQ(f.sim.sync_calls(), 0u);
  ASSERT_EQ(f.mr().deallocate(again.ptr, async_free(7, 4 * MiB)), Status::ok);
  // Another stream cannot use it before a synchronization; it needs new pages, so the pool
  // synchronizes, the freed pages are safe again, and they are reused instead of mapped anew.
  Result other = f.mr().allocate(req(4 * MiB, 8));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other.ptr, a.ptr);
  EXPECT_EQ(f.sim.sync_calls(), 1u);
  EXPECT_EQ(f.vmm.map_calls(), 2u);
  EXPECT_EQ(f.reserved(), 4 * MiB);
}

TEST(ExpandablePool, TheObserverSeesEachMappedGranuleAsASegment) {
  RecordingObserver observer;
  Fixture f(0, 256 * MiB, false, &observer);
  Result a = f.mr().allocate(req(3 * MiB));
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(observer.events.size(), 2u);
  EXPECT_EQ(observer.events[0], (SegmentEvent{true, 0, addr(a.ptr), kGranule}));
  EXPECT_EQ(observer.events[1], (SegmentEvent{true, 0, addr(a.ptr) + kGranule, kGranule}));
  ASSERT_EQ(f.mr().deallocate(a.ptr, sync_free(3 * MiB)), Status::ok);
  EXPECT_EQ(f.pool().empty_cache(), 4 * MiB);
  ASSERT_EQ(observer.events.size(), 4u);
  EXPECT_FALSE(observer.events[2].reserve);
  EXPECT_FALSE(observer.events[3].reserve);
  EXPECT_EQ(observer.net_reserved(), 0u);
}

// The simulated VMM refuses ranges whose end passes 2^64, as simcuda does: a reservation that
// wrapped "succeeded" (16 EiB), and an unmap or access change over a wrapping range answered
// success having touched nothing.
TEST(SimulatedVmmRules, RangesPastTheAddressSpaceAreRefused) {
  for (bool host : {false, true}) {
    SimulatedVmm::Options o;
    o.back_with_host_memory = host;
    SimulatedVmm vmm(o);
    uintptr_t va = 0;
    EXPECT_EQ(vmm.reserve(0, UINT64_MAX - kGranule + 1, 2 * kGranule, &va),
              SimulatedVmm::kOutOfMemory);
    EXPECT_EQ(va, 0u);
    EXPECT_EQ(vmm.live_ranges(), 0u);
    ASSERT_EQ(vmm.reserve(0, kGranule, 0, &va), SimulatedVmm::kSuccess);
    uint64_t handle = 0;
    ASSERT_EQ(vmm.create(0, kGranule, &handle), SimulatedVmm::kSuccess);
    ASSERT_EQ(vmm.map(va, kGranule, handle), SimulatedVmm::kSuccess);
    const uint64_t wrapping = 0 - static_cast<uint64_t>(va) + kGranule;  // va + it = 2 MiB
    EXPECT_EQ(vmm.set_access(0, va, wrapping, true), SimulatedVmm::kInvalidValue);
    EXPECT_FALSE(vmm.accessible(0, va, wrapping));
    EXPECT_EQ(vmm.unmap(va, wrapping), SimulatedVmm::kInvalidValue);
    EXPECT_EQ(vmm.live_mappings(), 1u);
    EXPECT_EQ(vmm.unmap_calls(), 0u);
    EXPECT_EQ(vmm.unmap(va, kGranule), SimulatedVmm::kSuccess);
    EXPECT_EQ(vmm.release(handle), SimulatedVmm::kSuccess);
    EXPECT_EQ(vmm.free_range(va, kGranule), SimulatedVmm::kSuccess);
  }
}

// SimulatedVmm whose cuMemRelease refuses while `refuse_releases` > 0.
class RefusingReleaseVmm final : public VmmUpstream {
 public:
  int refuse_releases = 0;
  SimulatedVmm inner;
  int granularity(int d, uint64_t* b) override { return inner.granularity(d, b); }
  int reserve(int d, uint64_t b, uint64_t a, uintptr_t* va) override {
    return inner.reserve(d, b, a, va);
  }
  int free_range(uintptr_t va, uint64_t b) override { return inner.free_range(va, b); }
  int create(int d, uint64_t b, uint64_t* h) override { return inner.create(d, b, h); }
  int release(uint64_t h) override {
    if (refuse_releases > 0) {
      --refuse_releases;
      return SimulatedVmm::kInvalidValue;
    }
    return inner.release(h);
  }
  int map(uintptr_t va, uint64_t b, uint64_t h) override { return inner.map(va, b, h); }
  int unmap(uintptr_t va, uint64_t b) override { return inner.unmap(va, b); }
  int set_access(int d, uintptr_t va, uint64_t b, bool rw) override {
    return inner.set_access(d, va, b, rw);
  }
  bool is_oom(int code) const override { return inner.is_oom(code); }
};

// A granule whose memory the driver would not take back is not reported released, stays
// charged to the cap, and is given back at the next empty_cache: no charge is lost for good.
TEST(ExpandablePool, AReleaseTheDriverRefusesIsRetried) {
  SimulatedUpstream sim;
  RefusingReleaseVmm vmm;
  StackConfig c;
  c.pool = PoolKind::expandable;
  c.limit = 8 * MiB;
  c.vmm = &vmm;
  DeviceStack stack(sim, 0, c);
  auto& pool = static_cast<ExpandablePool&>(*stack.pool());
  Result a = stack.top()->allocate(req(MiB));
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(stack.top()->deallocate(a.ptr, sync_free(MiB)), Status::ok);
  vmm.refuse_releases = 1;
  EXPECT_EQ(pool.empty_cache(), 0u);
  EXPECT_EQ(pool.mapped_granules(), 0u);
  EXPECT_EQ(stack.stats().reserved_bytes, kGranule);  // the device still holds it
  EXPECT_EQ(stack.limit()->used_bytes(), kGranule);
  EXPECT_EQ(pool.empty_cache(), kGranule);
  EXPECT_EQ(stack.stats().reserved_bytes, 0u);
  EXPECT_EQ(stack.limit()->used_bytes(), 0u);
  EXPECT_EQ(vmm.inner.live_handles(), 0u);
  EXPECT_EQ(sim.live_count(), 0u);
}

TEST(ExpandablePool, ADeviceWithoutVmmAnswersItsCode) {
  SimulatedUpstream sim;
  SimulatedVmm::Options o;
  o.supported = false;
  SimulatedVmm vmm(o);
  StackConfig c;
  c.pool = PoolKind::expandable;
  c.vmm = &vmm;
  DeviceStack stack(sim, 0, c);
  Result r = stack.top()->allocate(req(MiB));
  EXPECT_EQ(r.status, Status::upstream_error);
  EXPECT_EQ(r.upstream_code, SimulatedVmm::kNotSupported);
  EXPECT_EQ(stack.stats().reserved_bytes, 0u);
  StackConfig without;
  without.pool = PoolKind::expandable;
  EXPECT_FALSE(DeviceStack(sim, 0, without).valid());  // no VMM calls at all
}

// Threads on streams of their own, freeing synchronously and stream-ordered, writing tags into
// their blocks (an unmapped page would crash, a shared block loses a tag); afterwards empty_cache
// leaves no page mapped.
TEST(ExpandablePool, ThreadsOnStreamsKeepTheirBlocksAndGiveEveryPageBack) {
  Fixture f(0, 64 * MiB, true);
  constexpr int kThreads = 4;
  std::atomic<int> overwritten{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) + 11);
      const uint64_t stream = static_cast<uint64_t>(t) + 1;
      std::vector<std::pair<void*, uint64_t>> mine;
      for (int i = 0; i < 1500; ++i) {
        if (mine.size() < 8 && rng() % 2 == 0) {
          const uint64_t bytes = 16 + rng() % (rng() % 4 == 0 ? 3 * MiB : 64 * KiB);
          Result r = f.mr().allocate(req(bytes, stream));
          if (!r.ok()) {
            failed.fetch_add(1);
            continue;
          }
          const uint64_t tag = (static_cast<uint64_t>(t) << 32) | static_cast<uint64_t>(i);
          std::memcpy(r.ptr, &tag, sizeof tag);
          std::memcpy(static_cast<char*>(r.ptr) + bytes - sizeof tag, &tag, sizeof tag);
          mine.emplace_back(r.ptr, bytes);
        } else if (!mine.empty()) {
          auto [p, bytes] = mine.back();
          mine.pop_back();
          uint64_t head = 0, tail = 0;
          std::memcpy(&head, p, sizeof head);
          std::memcpy(&tail, static_cast<char*>(p) + bytes - sizeof tail, sizeof tail);
          if (head != tail || (head >> 32) != static_cast<uint64_t>(t)) overwritten.fetch_add(1);
          const Request fr = rng() % 2 ? async_free(stream, bytes) : sync_free(bytes);
          if (f.mr().deallocate(p, fr) != Status::ok) failed.fetch_add(1);
        }
      }
      for (auto [p, bytes] : mine)
        if (f.mr().deallocate(p, sync_free(bytes)) != Status::ok) failed.fetch_add(1);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(overwritten.load(), 0);
  EXPECT_EQ(failed.load(), 0);  // at most 4 x 8 x 3 MiB live: within 64 MiB
  EXPECT_EQ(f.stack->stats().allocated_bytes, 0u);
  f.pool().empty_cache();
  EXPECT_EQ(f.reserved(), 0u);
  EXPECT_EQ(f.vmm.live_mappings(), 0u);
  EXPECT_EQ(f.vmm.live_handles(), 0u);
  EXPECT_EQ(f.sim.in_use(0), 0u);
}

}  // namespace
}  // namespace gpumem::resources
