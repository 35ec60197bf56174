// The conformance suite every resource passes (RMM's mr_tests pattern): one parameterised suite,
// instantiated for each stack the preload can build (resources::DeviceStack over a simulated
// device). A new resource or stack layer joins by adding a Case to kCases (docs/policies.md,
// "Adding a resource"). What each case must answer is the same everywhere:
//   - allocate/deallocate round trips, blocks 512 B aligned and never overlapping;
//   - zero bytes is invalid_value, changing nothing;
//   - out of memory: out_of_memory, a null pointer, in_use as the refusing layer counts, the
//     counters untouched but failed_count, and the resource still serves afterwards;
//   - stats: the top layer's counters (DeviceStack::top_counters) say allocated == sum of live
//     requested bytes, peak == the highest seen; the stack's reserved >= allocated; stats()
//     agrees with the layers' own accessors;
//   - freeing null, an unknown pointer or a block twice fails and changes no counter; a free the
//     device refuses comes back with the device's own code (FreeResult::upstream_code);
//   - the stack's stats() come from the layers that own them; synchronize reaches the device;
//   - many threads at once: every block is the caller's alone, and the counters end at zero.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gpumem/resources/block.h"
#include "gpumem/resources/simulated_upstream.h"
#include "gpumem/resources/simulated_vmm.h"
#include "gpumem/resources/stack.h"
#include "test_support.h"

namespace gpumem::resources {
namespace {
using namespace testing;

constexpr uint64_t kCapacity = 64 * MiB;

struct Case {
  const char* name;
  StackConfig config;
  // The most the stack can hand out: the capacity, the limit or the pool's size. A growth pool's
  // limit is larger: a 1-10 MiB request takes a 20 MiB segment (docs/policies.md).
  uint64_t budget;
  uint64_t in_use_after_1m;  // Result::in_use when a request over budget is refused, 1 MiB held
};

const Case kCases[] = {
    {"Device", {PoolKind::none, 0, 0}, kCapacity, 1 * MiB},
    {"LimitOverDevice", {PoolKind::none, 16 * MiB, 0}, 16 * MiB, 1 * MiB},
    {"GrowthPool", {PoolKind::growth, 0, 0}, kCapacity, 2 * MiB},
    {"GrowthPoolOverLimit", {PoolKind::growth, 48 * MiB, 0}, 48 * MiB, 2 * MiB},
    {"FixedPool", {PoolKind::fixed, 0, 16 * MiB}, 16 * MiB, 1 * MiB},
    {"FixedPoolSizedByLimit", {PoolKind::fixed, 16 * MiB, 0}, 16 * MiB, 1 * MiB},
    {"FixedPoolUnderLargerLimit", {PoolKind::fixed, 32 * MiB, 8 * MiB}, 8 * MiB, 1 * MiB},
    // 1 MiB held maps one 2 MiB granule; the budget is the device's (or the limit's) to the byte.
    {"ExpandablePool", {PoolKind::expandable, 0, 0}, kCapacity, 2 * MiB},
    {"ExpandablePoolOverLimit", {PoolKind::expandable, 48 * MiB, 0}, 48 * MiB, 2 * MiB},
};

// The case's name in failure messages instead of its bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class Conformance : public ::testing::TestWithParam<Case> {
 protected:
  static SimulatedUpstream::Options device_options() {
    SimulatedUpstream::Options o;
    o.capacity = kCapacity;
    o.back_with_host_memory = true;  // so blocks can be written and checked
    return o;
  }

  MemoryResource& mr() { return *stack_.top(); }
  // The top layer's own counters: what the program holds through mr().
  const AllocationCounters& counted() { return *stack_.top_counters(); }
  const Case& c() const { return GetParam(); }

  // Every counter a failed call must leave alone.
  struct Counters {
    uint64_t allocated, peak, allocs, frees, failed;
    bool operator==(const Counters&) const = default;
  };
  Counters counters() {
    return {counted().allocated_bytes(), counted().peak_allocated_bytes(), counted().alloc_count(),
            counted().free_count(), counted().failed_count()};
  }

  // The expandable pool's VMM calls, host-backed like the device (a 256 MiB range per case).
  static SimulatedVmm::Options vmm_options() {
    SimulatedVmm::Options o;
    o.back_with_host_memory = true;
    return o;
  }
  static StackConfig with_vmm(StackConfig c, VmmUpstream& vmm) {
    if (c.pool == PoolKind::expandable) {
      c.vmm = &vmm;
      c.vmm_range = 256 * MiB;
    }
    return c;
  }

  SimulatedUpstream sim_{device_options()};
  SimulatedVmm vmm_{vmm_options()};
  DeviceStack stack_{sim_, 0, with_vmm(GetParam().config, vmm_)};
};

TEST_P(Conformance, BuildsAValidStack) {
  ASSERT_TRUE(stack_.valid());
  EXPECT_EQ(stack_.pool() != nullptr, c().config.pool != PoolKind::none);
  EXPECT_EQ(stack_.limit() != nullptr, c().config.limit != 0);
  EXPECT_EQ(stack_.stats().limit_bytes, c().config.limit);
}

TEST_P(Conformance, RoundTripsAlignedDisjointBlocks) {
  const uint64_t sizes[] = {1, 511, 512, 513, 4 * KiB, 1 * MiB - 1, 1 * MiB, 3 * MiB + 1};
  std::map<uint64_t, uint64_t> live;  // address -> bytes
  uint64_t sum = 0;
  for (uint64_t bytes : sizes) {
    Result r = mr().allocate(req(bytes));
    ASSERT_TRUE(r.ok()) << bytes << ": " << status_name(r.status);
    ASSERT_NE(r.ptr, nullptr);
    EXPECT_EQ(addr(r.ptr) % kBlockAlign, 0u) << bytes;
    live.emplace(addr(r.ptr), bytes);
    sum += bytes;
  }
  ASSERT_EQ(live.size(), std::size(sizes));
  for (auto it = live.begin(); std::next(it) != live.end(); ++it)
    EXPECT_LE(it->first + it->second, std::next(it)->first) << "blocks overlap";
  EXPECT_EQ(counted().allocated_bytes(), sum);
  EXPECT_EQ(counted().alloc_count(), std::size(sizes));
  for (const auto& [address, bytes] : live)
    EXPECT_EQ(mr().deallocate(reinterpret_cast<void*>(address), sync_free(bytes)), Status::ok);
  EXPECT_EQ(counted().allocated_bytes(), 0u);
  EXPECT_EQ(counted().free_count(), std::size(sizes));
  EXPECT_EQ(counted().failed_count(), 0u);
  EXPECT_EQ(counted().peak_allocated_bytes(), sum);
}

TEST_P(Conformance, ZeroBytesIsInvalidAndChangesNothing) {
  Result held = mr().allocate(req(KiB));
  ASSERT_TRUE(held.ok());
  const Counters before = counters();
  Result r = mr().allocate(req(0));
  EXPECT_EQ(r.status, Status::invalid_value);
  EXPECT_EQ(r.ptr, nullptr);
  Counters after = counters();
  EXPECT_EQ(after.failed, before.failed + 1);
  after.failed = before.failed;
  EXPECT_EQ(after, before);
  EXPECT_EQ(mr().deallocate(held.ptr, sync_free(KiB)), Status::ok);
}

TEST_P(Conformance, OutOfMemoryAnswersAndKeepsServing) {
  Result held = mr().allocate(req(MiB));
  ASSERT_TRUE(held.ok());
  const Counters before = counters();
  const uint64_t reserved = stack_.stats().reserved_bytes;

  Result r = mr().allocate(req(c().budget));  // with 1 MiB held, the budget cannot fit
  EXPECT_EQ(r.status, Status::out_of_memory);
  EXPECT_EQ(r.ptr, nullptr);
  EXPECT_EQ(r.in_use, c().in_use_after_1m);
  Result huge = mr().allocate(req(kMaxRequestBytes + 1));  // refused before any rounding
  EXPECT_EQ(huge.status, Status::out_of_memory);
  EXPECT_EQ(huge.ptr, nullptr);
  EXPECT_EQ(huge.in_use, MiB);

  Counters after = counters();
  EXPECT_EQ(after.failed, before.failed + 2);
  after.failed = before.failed;
  EXPECT_EQ(after, before);
  EXPECT_EQ(stack_.stats().reserved_bytes, reserved);  // a refused request leaves nothing reserved

  // What is left still serves: everything up to the budget but the held MiB and its rounding.
  Result rest = mr().allocate(req(c().budget - 2 * MiB));
  ASSERT_TRUE(rest.ok()) << status_name(rest.status);
  EXPECT_EQ(mr().deallocate(rest.ptr, sync_free(c().budget - 2 * MiB)), Status::ok);
  EXPECT_EQ(mr().deallocate(held.ptr, sync_free(MiB)), Status::ok);
  EXPECT_EQ(counted().allocated_bytes(), 0u);
}

TEST_P(Conformance, StatsStayConsistent) {
  std::mt19937_64 rng(26);
  std::vector<std::pair<void*, uint64_t>> live;
  uint64_t sum = 0, highest = 0;
  for (int step = 0; step < 2000; ++step) {
    const bool alloc = live.empty() || (live.size() < 64 && rng() % 3 != 0);
    if (alloc) {
      const uint64_t bytes = 1 + rng() % (rng() % 8 == 0 ? 2 * MiB : 64 * KiB);
      Result r = mr().allocate(req(bytes));
      if (!r.ok()) {
        ASSERT_EQ(r.status, Status::out_of_memory);
        continue;
      }
      live.emplace_back(r.ptr, bytes);
      sum += bytes;
      highest = std::max(highest, sum);
    } else {
      const size_t i = rng() % live.size();
      ASSERT_EQ(mr().deallocate(live[i].first, sync_free(live[i].second)), Status::ok);
      sum -= live[i].second;
      live[i] = live.back();
      live.pop_back();
    }
    ASSERT_EQ(counted().allocated_bytes(), sum) << "step " << step;
    ASSERT_EQ(counted().peak_allocated_bytes(), highest) << "step " << step;
    ASSERT_GE(stack_.stats().reserved_bytes, counted().allocated_bytes()) << "step " << step;
    ASSERT_GE(stack_.stats().peak_reserved_bytes, stack_.stats().reserved_bytes) << "step " << step;
    ASSERT_EQ(counted().alloc_count() - counted().free_count(), live.size()) << "step " << step;
  }
  const Stats s = stack_.stats();
  EXPECT_EQ(s.allocated_bytes, counted().allocated_bytes());
  EXPECT_EQ(s.reserved_bytes, stack_.stats().reserved_bytes);
  EXPECT_EQ(s.peak_allocated_bytes, counted().peak_allocated_bytes());
  EXPECT_EQ(s.peak_reserved_bytes, stack_.stats().peak_reserved_bytes);
  EXPECT_EQ(s.alloc_count, counted().alloc_count());
  EXPECT_EQ(s.free_count, counted().free_count());
  EXPECT_EQ(s.failed_count, counted().failed_count());
  EXPECT_EQ(s.limit_bytes, c().config.limit);
  for (const auto& [p, bytes] : live) ASSERT_EQ(mr().deallocate(p, sync_free(bytes)), Status::ok);
  EXPECT_EQ(counted().allocated_bytes(), 0u);
}

TEST_P(Conformance, FreeingUnknownPointersFailsAndChangesNothing) {
  Result held = mr().allocate(req(MiB));
  ASSERT_TRUE(held.ok());
  Result gone = mr().allocate(req(KiB));
  ASSERT_TRUE(gone.ok());
  ASSERT_EQ(mr().deallocate(gone.ptr, sync_free(KiB)), Status::ok);
  const Counters before = counters();
  EXPECT_EQ(mr().deallocate(nullptr, sync_free(KiB)), Status::invalid_value);
  int not_device_memory = 0;
  EXPECT_NE(mr().deallocate(&not_device_memory, sync_free(4)), Status::ok);
  EXPECT_NE(mr().deallocate(gone.ptr, sync_free(KiB)), Status::ok);  // a second free
  EXPECT_EQ(counters(), before);
  EXPECT_EQ(mr().deallocate(held.ptr, sync_free(MiB)), Status::ok);
  EXPECT_EQ(counted().allocated_bytes(), 0u);
}

// deallocate answers a FreeResult: a refusal by a pool is its own (invalid_value, no code); one by
// the device comes back up through every layer with the device's raw code (the preload's hooks
// return that code to the program).
TEST_P(Conformance, AFailedFreeCarriesTheDevicesOwnCode) {
  Result held = mr().allocate(req(MiB));
  ASSERT_TRUE(held.ok());
  const FreeResult ok = mr().deallocate(held.ptr, sync_free(MiB));
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.upstream_code, 0);
  int not_device_memory = 0;
  const FreeResult bad = mr().deallocate(&not_device_memory, sync_free(4));
  if (stack_.pool() != nullptr) {
    EXPECT_EQ(bad.status, Status::invalid_value);
    EXPECT_EQ(bad.upstream_code, 0);
  } else {
    EXPECT_EQ(bad.status, Status::upstream_error);
    EXPECT_EQ(bad.upstream_code, SimulatedUpstream::kInvalidValue);
  }
}

// The stack's numbers come from the layers that own them: reserved is what the layer below the
// pool let through (every byte taken from the device), and a synchronize reaches the device.
TEST_P(Conformance, StatsComeFromTheOwningLayers) {
  Result held = mr().allocate(req(3 * MiB));
  ASSERT_TRUE(held.ok());
  const Stats s = stack_.stats();
  EXPECT_EQ(s.reserved_bytes, stack_.reserved_counters().allocated_bytes());
  EXPECT_EQ(s.reserved_bytes, stack_.device()->allocated_bytes());
  EXPECT_EQ(s.allocated_bytes, 3 * MiB);
  if (stack_.pool() != nullptr) {
    EXPECT_EQ(s.reserved_bytes, stack_.pool()->reserved_bytes());
    EXPECT_EQ(s.largest_free_block_bytes, stack_.pool()->largest_free_block());
  } else {
    EXPECT_EQ(s.reserved_bytes, s.allocated_bytes);
  }
  EXPECT_EQ(mr().synchronize(0), Status::ok);
  EXPECT_EQ(sim_.sync_calls(), 1u);
  EXPECT_EQ(mr().deallocate(held.ptr, sync_free(3 * MiB)), Status::ok);
}

TEST_P(Conformance, ManyThreadsGetBlocksOfTheirOwn) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 1500;
  std::atomic<int> overwritten{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
      std::vector<std::pair<void*, uint64_t>> mine;
      for (int i = 0; i < kRounds; ++i) {
        if (mine.size() < 16 && rng() % 2 == 0) {
          const uint64_t bytes = 16 + rng() % (32 * KiB);  // room for a head and a tail tag
          Result r = mr().allocate(req(bytes));
          if (!r.ok()) {
            failed.fetch_add(1);
            continue;
          }
          const uint64_t tag = (static_cast<uint64_t>(t) << 32) | static_cast<uint64_t>(i);
          std::memcpy(r.ptr, &tag, sizeof tag);  // a block shared with another thread loses it
          std::memcpy(static_cast<char*>(r.ptr) + bytes - sizeof tag, &tag, sizeof tag);
          mine.emplace_back(r.ptr, bytes);
        } else if (!mine.empty()) {
          auto [p, bytes] = mine.back();
          mine.pop_back();
          uint64_t head = 0, tail = 0;
          std::memcpy(&head, p, sizeof head);
          std::memcpy(&tail, static_cast<char*>(p) + bytes - sizeof tail, sizeof tail);
          if (head != tail || (head >> 32) != static_cast<uint64_t>(t)) overwritten.fetch_add(1);
          if (mr().deallocate(p, sync_free(bytes)) != Status::ok) failed.fetch_add(1);
        }
      }
      for (auto [p, bytes] : mine)
        if (mr().deallocate(p, sync_free(bytes)) != Status::ok) failed.fetch_add(1);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(overwritten.load(), 0);
  EXPECT_EQ(failed.load(), 0);  // at most 4 threads x 16 x 32 KiB live: fits every budget
  EXPECT_EQ(counted().allocated_bytes(), 0u);
  EXPECT_EQ(counted().alloc_count(), counted().free_count());
  EXPECT_EQ(counted().failed_count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Resources, Conformance, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace gpumem::resources
