// 16 threads at once: the limit never lets the device hold more than the cap, even for a moment,
// and every counter is exact afterwards; the pools hand out blocks that never overlap (each block
// is real host memory stamped by its owner and checked before it is freed), with exact stats.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "gpumem/resources/device_resource.h"
#include "gpumem/resources/fixed_pool.h"
#include "gpumem/resources/growth_pool.h"
#include "gpumem/resources/limit_resource.h"
#include "gpumem/resources/simulated_upstream.h"
#include "test_support.h"

namespace gpumem::resources {
namespace {
using namespace testing;

constexpr int kThreads = 16;

TEST(Threads, LimitCountersAreExact) {
  constexpr uint64_t kLimit = 16 * MiB;
  SimulatedUpstream::Options o;
  o.capacity = kLimit;  // the device itself would refuse anything past the cap
  SimulatedUpstream sim(o);
  DeviceResource dev(sim);
  LimitResource limit(dev, kLimit);
  std::atomic<uint64_t> oks{0}, fails{0}, frees{0}, held{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
      std::vector<std::pair<void*, uint64_t>> mine;
      for (int i = 0; i < 4000; ++i) {
        if (mine.size() < 8 && rng() % 3 != 0) {
          uint64_t bytes = (1 + rng() % 2048) * 512;  // up to 1 MiB, multiples of 512
          Result r = limit.allocate(req(bytes));
          if (r.ok()) {
            mine.emplace_back(r.ptr, bytes);
            ++oks;
          } else {
            EXPECT_EQ(r.status, Status::out_of_memory);
            ++fails;
          }
        } else if (!mine.empty()) {
          auto [p, bytes] = mine.back();
          mine.pop_back();
          EXPECT_EQ(limit.deallocate(p, sync_free(bytes)), Status::ok);
          ++frees;
        }
      }
      uint64_t sum = 0;
      for (auto& [p, bytes] : mine) sum += bytes;
      held += sum;
      (void)t;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(dev.failed_count(), 0u) << "the device saw more than the cap";
  EXPECT_LE(sim.peak_in_use(0), kLimit);
  EXPECT_EQ(limit.used_bytes(), held.load());
  EXPECT_EQ(limit.allocated_bytes(), held.load());
  EXPECT_EQ(sim.in_use(0), held.load());
  EXPECT_EQ(limit.alloc_count(), oks.load());
  EXPECT_EQ(limit.failed_count(), fails.load());
  EXPECT_EQ(limit.free_count(), frees.load());
  EXPECT_GT(fails.load(), 0u) << "the workload should have reached the cap";
}

// Each thread stamps its blocks with (thread, sequence) at both ends and checks the stamp before
// freeing: a block handed to two owners at once would be overwritten.
void run_pool_threads(PoolResource& pool, SimulatedUpstream& sim, RecordingObserver& observer) {
  std::atomic<uint64_t> allocs{0}, frees{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t) * 977 + 5);
      const uint64_t stream = static_cast<uint64_t>(t) + 100;
      struct Held {
        char* p;
        uint64_t bytes;
        uint64_t stamp;
      };
      std::vector<Held> mine;
      for (uint64_t i = 0; i < 3000; ++i) {
        if (mine.size() < 12 && rng() % 2 == 0) {
          uint64_t bytes = rng() % 10 == 0 ? 2 * MiB + rng() % (6 * MiB) : 16 + rng() % (256 * KiB);
          Result r = pool.allocate(req(bytes, stream));
          ASSERT_TRUE(r.ok()) << status_name(r.status);
          uint64_t stamp = (static_cast<uint64_t>(t) << 32) | i;
          auto* p = static_cast<char*>(r.ptr);
          std::memcpy(p, &stamp, 8);
          std::memcpy(p + bytes - 8, &stamp, 8);
          mine.push_back({p, bytes, stamp});
          ++allocs;
        } else if (!mine.empty()) {
          size_t k = rng() % mine.size();
          Held h = mine[k];
          mine[k] = mine.back();
          mine.pop_back();
          uint64_t head = 0, tail = 0;
          std::memcpy(&head, h.p, 8);
          std::memcpy(&tail, h.p + h.bytes - 8, 8);
          ASSERT_EQ(head, h.stamp) << "block overwritten while held";
          ASSERT_EQ(tail, h.stamp) << "block overwritten while held";
          Request how = rng() % 2 ? async_free(stream) : sync_free();
          ASSERT_EQ(pool.deallocate(h.p, how), Status::ok);
          ++frees;
        }
      }
      for (Held& h : mine) {
        ASSERT_EQ(pool.deallocate(h.p, sync_free()), Status::ok);
        ++frees;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(pool.alloc_count(), allocs.load());
  EXPECT_EQ(pool.free_count(), frees.load());
  EXPECT_EQ(pool.failed_count(), 0u);
  EXPECT_EQ(pool.allocated_bytes(), 0u);
  EXPECT_GT(pool.peak_allocated_bytes(), 0u);
  uint64_t segments = 0;
  for (const SegmentView& v : pool.snapshot()) segments += v.size;
  EXPECT_EQ(pool.reserved_bytes(), segments);
  EXPECT_EQ(pool.reserved_bytes(), sim.in_use(0));
  EXPECT_EQ(pool.reserved_bytes(), observer.net_reserved());
  ASSERT_EQ(pool.synchronize(0), Status::ok);
  for (const SegmentView& v : pool.snapshot()) EXPECT_EQ(v.blocks.size(), 1u);
}

SimulatedUpstream::Options host_backed() {
  SimulatedUpstream::Options o;
  o.back_with_host_memory = true;
  return o;
}

TEST(Threads, GrowthPoolStatsAreExact) {
  SimulatedUpstream sim(host_backed());
  DeviceResource dev(sim);
  RecordingObserver observer;
  GrowthPool pool(dev, 0, &observer);
  ASSERT_NO_FATAL_FAILURE(run_pool_threads(pool, sim, observer));
  uint64_t reserved = pool.reserved_bytes();
  EXPECT_EQ(pool.empty_cache(), reserved);
  EXPECT_EQ(sim.live_count(), 0u);
}

TEST(Threads, FixedPoolStatsAreExact) {
  SimulatedUpstream sim(host_backed());
  DeviceResource dev(sim);
  RecordingObserver observer;
  FixedPool pool(dev, 0, 1 * GiB, &observer);
  ASSERT_NO_FATAL_FAILURE(run_pool_threads(pool, sim, observer));
  EXPECT_EQ(sim.alloc_calls(), 1u);
  EXPECT_EQ(pool.largest_free_block(), GiB);
}

}  // namespace
}  // namespace gpumem::resources
