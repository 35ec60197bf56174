// A randomised workload on the growth pool (200k operations; 1M with GPUMEM_TEST_LONG=1), checked
// against a reference model after every operation (counters, no overlap) and, every few thousand
// operations, against the pool's whole layout: every byte of every segment is in exactly one
// block, live blocks are exactly the model's, free neighbours of the same stream are coalesced,
// segments follow the size rule, and reserved bytes agree with the device and the observer.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>

#include "gpumem/resources/device_resource.h"
#include "gpumem/resources/fixed_pool.h"
#include "gpumem/resources/growth_pool.h"
#include "gpumem/resources/simulated_upstream.h"
#include "test_support.h"

namespace gpumem::resources {
namespace {
using namespace testing;

struct Live {
  uint64_t requested;
  uint64_t stream;
};

class Workload {
 public:
  Workload(PoolResource& pool, SimulatedUpstream& sim, RecordingObserver& observer, bool growth)
      : pool_(pool), sim_(sim), observer_(observer), growth_(growth) {}

  void run(uint64_t ops, uint64_t max_live, uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (uint64_t i = 0; i < ops; ++i) {
      const unsigned dice = static_cast<unsigned>(rng() % 1000);
      if (dice == 0) {
        ASSERT_EQ(pool_.synchronize(0), Status::ok);
      } else if (dice == 1) {
        uint64_t before = pool_.reserved_bytes();
        uint64_t released = pool_.empty_cache();
        ASSERT_EQ(pool_.reserved_bytes(), before - released);
      } else if (order_.size() < 16 || (order_.size() < max_live && dice < 520)) {
        ASSERT_NO_FATAL_FAILURE(allocate(rng));
      } else {
        ASSERT_NO_FATAL_FAILURE(free_one(rng));
      }
      ASSERT_EQ(pool_.allocated_bytes(), allocated_) << "after operation " << i;
      if (i % 4096 == 0) {
        ASSERT_NO_FATAL_FAILURE(check_layout());
      }
    }
    ASSERT_NO_FATAL_FAILURE(check_layout());
  }

  void free_everything(std::mt19937_64& rng) {
    while (!order_.empty()) ASSERT_NO_FATAL_FAILURE(free_one(rng));
  }

  void check_layout() {
    auto segments = pool_.snapshot();
    uint64_t reserved = 0, live_blocks = 0, live_bytes = 0, prev_end = 0;
    for (const SegmentView& s : segments) {
      ASSERT_GE(s.addr, prev_end) << "segments overlap";
      prev_end = s.addr + s.size;
      reserved += s.size;
      if (growth_) {
        if (s.kind == GrowthPool::kSmall)
          ASSERT_EQ(s.size, GrowthPool::kSmallSegment);
        else
          ASSERT_TRUE(
              s.size == GrowthPool::kLargeSegment ||
              (s.size >= GrowthPool::kOwnSegmentFrom && s.size % GrowthPool::kGranularity == 0))
              << s.size;
      }
      uint64_t cursor = s.addr;
      const BlockView* prev = nullptr;
      for (const BlockView& b : s.blocks) {
        ASSERT_EQ(b.addr, cursor) << "gap or overlap inside a segment";
        ASSERT_GT(b.size, 0u);
        cursor += b.size;
        if (b.state == BlockState::live) {
          auto it = model_.find(b.addr);
          ASSERT_NE(it, model_.end()) << "a live block the program does not hold";
          ASSERT_EQ(b.requested, it->second.requested);
          uint64_t rounded = round_up(b.requested, kBlockAlign);
          ASSERT_GE(b.size, rounded);
          ASSERT_LT(b.size - rounded, kBlockAlign) << "an unsplit remainder of 512 B or more";
          ++live_blocks;
          live_bytes += b.requested;
        }
        if (prev && prev->state == BlockState::free && b.state == BlockState::free) {
          ASSERT_NE(prev->stream, b.stream) << "free neighbours of one stream not coalesced";
        }
        prev = &b;
      }
      ASSERT_EQ(cursor, s.addr + s.size) << "blocks do not cover the segment";
    }
    ASSERT_EQ(live_blocks, model_.size());
    ASSERT_EQ(live_bytes, allocated_);
    ASSERT_EQ(reserved, pool_.reserved_bytes());
    ASSERT_EQ(reserved, sim_.in_use(0));
    ASSERT_EQ(reserved, observer_.net_reserved());
  }

  uint64_t live() const { return order_.size(); }

 private:
  uint64_t pick_size(std::mt19937_64& rng) {
    unsigned kind = static_cast<unsigned>(rng() % 100);
    if (kind < 60) return 1 + rng() % (64 * KiB);
    if (kind < 85) return 64 * KiB + rng() % (2 * MiB);
    if (kind < 97) return 2 * MiB + rng() % (10 * MiB);
    return 12 * MiB + rng() % (36 * MiB);
  }

  void allocate(std::mt19937_64& rng) {
    static constexpr uint64_t kStreams[] = {0, 11, 22};
    uint64_t stream = kStreams[rng() % 3];
    uint64_t bytes = pick_size(rng);
    Result r = pool_.allocate(req(bytes, stream));
    ASSERT_TRUE(r.ok()) << "allocation of " << bytes << " failed: " << status_name(r.status);
    uint64_t a = addr(r.ptr);
    uint64_t end = a + round_up(bytes, kBlockAlign);
    auto next = model_.lower_bound(a);
    if (next != model_.end()) {
      ASSERT_LE(end, next->first) << "overlaps the live block after it";
    }
    if (next != model_.begin()) {
      auto prev = std::prev(next);
      ASSERT_LE(prev->first + round_up(prev->second.requested, kBlockAlign), a)
          << "overlaps the live block before it";
    }
    model_.emplace(a, Live{bytes, stream});
    order_.push_back(a);
    allocated_ += bytes;
  }

  void free_one(std::mt19937_64& rng) {
    size_t i = rng() % order_.size();
    uint64_t a = order_[i];
    order_[i] = order_.back();
    order_.pop_back();
    auto it = model_.find(a);
    bool ordered = rng() % 2 == 0;
    Request how = ordered ? async_free(it->second.stream) : sync_free();
    ASSERT_EQ(pool_.deallocate(reinterpret_cast<void*>(a), how), Status::ok);
    allocated_ -= it->second.requested;
    model_.erase(it);
  }

  PoolResource& pool_;
  SimulatedUpstream& sim_;
  RecordingObserver& observer_;
  bool growth_;
  std::map<uint64_t, Live> model_;
  std::vector<uint64_t> order_;
  uint64_t allocated_ = 0;
};

uint64_t workload_ops() {
  const char* long_run = std::getenv("GPUMEM_TEST_LONG");
  return long_run && std::string(long_run) == "1" ? 1'000'000 : 200'000;
}

// After everything is freed and the device synchronized: one free block per segment.
void expect_fully_coalesced(PoolResource& pool) {
  ASSERT_EQ(pool.synchronize(0), Status::ok);
  for (const SegmentView& s : pool.snapshot()) {
    ASSERT_EQ(s.blocks.size(), 1u);
    EXPECT_EQ(s.blocks[0].size, s.size);
    EXPECT_EQ(s.blocks[0].state, BlockState::free);
    EXPECT_EQ(s.blocks[0].stream, kAnyStream);
  }
}

TEST(PoolInvariants, GrowthPoolRandomWorkload) {
  SimulatedUpstream sim;
  DeviceResource dev(sim);
  RecordingObserver observer;
  GrowthPool pool(dev, 0, &observer);
  Workload w(pool, sim, observer, /*growth=*/true);
  ASSERT_NO_FATAL_FAILURE(w.run(workload_ops(), 3000, 42));
  std::mt19937_64 rng(7);
  ASSERT_NO_FATAL_FAILURE(w.free_everything(rng));
  EXPECT_EQ(pool.allocated_bytes(), 0u);
  EXPECT_EQ(pool.alloc_count(), pool.free_count());
  EXPECT_EQ(pool.failed_count(), 0u);
  ASSERT_NO_FATAL_FAILURE(expect_fully_coalesced(pool));
  uint64_t reserved = pool.reserved_bytes();
  EXPECT_GT(reserved, 0u);
  EXPECT_GE(pool.peak_reserved_bytes(), reserved);
  EXPECT_EQ(pool.empty_cache(), reserved);
  EXPECT_EQ(pool.reserved_bytes(), 0u);
  EXPECT_EQ(sim.in_use(0), 0u);
  EXPECT_EQ(sim.live_count(), 0u);
  EXPECT_EQ(observer.net_reserved(), 0u);
}

TEST(PoolInvariants, FixedPoolRandomWorkload) {
  SimulatedUpstream sim;
  DeviceResource dev(sim);
  RecordingObserver observer;
  FixedPool pool(dev, 0, 64 * GiB, &observer);
  Workload w(pool, sim, observer, /*growth=*/false);
  ASSERT_NO_FATAL_FAILURE(w.run(workload_ops() / 4, 3000, 43));
  std::mt19937_64 rng(8);
  ASSERT_NO_FATAL_FAILURE(w.free_everything(rng));
  ASSERT_NO_FATAL_FAILURE(expect_fully_coalesced(pool));
  EXPECT_EQ(pool.segment_count(), 1u);
  EXPECT_EQ(pool.largest_free_block(), 64 * GiB);
  EXPECT_EQ(sim.alloc_calls(), 1u);
}

}  // namespace
}  // namespace gpumem::resources
