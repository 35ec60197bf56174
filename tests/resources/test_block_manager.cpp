// BlockManager's walks over the blocks the program does not hold, which the expandable pool uses
// so that it never walks every block (its live ones) at each mapping or fragmentation query:
// for_each_free_at_least (free on every stream, of at least a size) and
// for_each_unheld_largest_first (free, stream-tagged and pending, each free list largest first).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "gpumem/resources/block_manager.h"
#include "gpumem/resources/free_bins.h"
#include "test_support.h"

namespace gpumem::resources {
namespace {
using namespace testing;

constexpr uintptr_t kBase = 0x7f0000000000;

// One 64 MiB segment: blocks of the sizes below (MiB), each followed by a 1 MiB block kept live so
// that none coalesces with another; the rest of the segment a free tail.
class Layout {
 public:
  Layout() {
    m.add_segment(kBase, 64 * MiB, 0);
    for (uint64_t mib : {3, 1, 6, 2, 5, 4, 7}) {
      blocks.push_back(take(mib * MiB));
      take(1 * MiB);  // a live guard
    }
  }
  Block* take(uint64_t bytes) {
    Block* b = m.find_fit(bytes, 0, kAnyStream);
    m.take(b, bytes, bytes);
    return m.find_live(b->addr);
  }
  BlockManager m;
  std::vector<Block*> blocks;  // 3, 1, 6, 2, 5, 4, 7 MiB
};

std::vector<uint64_t> mib(const std::vector<uint64_t>& bytes) {
  std::vector<uint64_t> out;
  for (uint64_t b : bytes) out.push_back(b / MiB);
  return out;
}

TEST(BlockManagerWalks, UnheldLargestFirstPerListThenPending) {
  Layout l;
  // 3, 6, 5 and 7 MiB: freed without a stream, then made safe: free on every stream.
  for (size_t i : {0, 2, 4, 6}) l.m.release(l.blocks[i], false, 0);
  l.m.make_all_safe();
  l.m.release(l.blocks[1], true, 9);   // 1 MiB: free on stream 9 only
  l.m.release(l.blocks[3], true, 9);   // 2 MiB: the same
  l.m.release(l.blocks[5], false, 0);  // 4 MiB: pending
  std::vector<uint64_t> seen;
  l.m.for_each_unheld_largest_first([&](const Block& b) {
    seen.push_back(b.size);
    return true;
  });
  // The tail (64 - 35 MiB), then the free blocks largest first; stream 9's; the pending one.
  EXPECT_EQ(mib(seen), (std::vector<uint64_t>{29, 7, 6, 5, 3, 2, 1, 4}));

  // A false leaves that list: 5 MiB stops the first, 2 MiB the second; pending blocks all come.
  seen.clear();
  l.m.for_each_unheld_largest_first([&](const Block& b) {
    seen.push_back(b.size);
    return b.size > 5 * MiB && b.size != 2 * MiB;
  });
  EXPECT_EQ(mib(seen), (std::vector<uint64_t>{29, 7, 6, 5, 2, 4}));
}

TEST(BlockManagerWalks, FreeAtLeastSkipsTaggedPendingAndSmaller) {
  Layout l;
  for (size_t i : {0, 2, 3, 4}) l.m.release(l.blocks[i], false, 0);  // 3, 6, 2, 5 MiB
  l.m.make_all_safe();
  l.m.release(l.blocks[6], true, 9);   // 7 MiB: stream 9 only
  l.m.release(l.blocks[5], false, 0);  // 4 MiB: pending
  std::vector<uint64_t> seen;
  l.m.for_each_free_at_least(3 * MiB, [&](const Block& b) { seen.push_back(b.size); });
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(mib(seen), (std::vector<uint64_t>{3, 5, 6, 29}));
  seen.clear();
  l.m.for_each_free_at_least(0, [&](const Block& b) { seen.push_back(b.size); });
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(mib(seen), (std::vector<uint64_t>{2, 3, 5, 6, 29}));
}

// FreeBins keeps each bin sorted by (size, address) whatever the order of insertion (each bin's
// treap finds the place), and best_fit answers the smallest block of at least the bytes asked,
// the lowest address among equals. Both checked against a sorted set at each step below, and the
// bins emptied at the end.
// make_all_safe's radix sort against std::sort: sizes on both sides of its switch to std::sort,
// addresses over a few blocks' span and over 2^47 (segments far apart), ties included.
TEST(BlockManagerSort, SortsByAddressLikeStdSort) {
  std::mt19937_64 rng(5);
  std::vector<std::pair<uintptr_t, Block*>> v, scratch;
  for (size_t n : {0, 1, 2, 63, 64, 65, 1000, 50000}) {
    for (uint64_t span : {uint64_t{1} << 12, uint64_t{1} << 30, uint64_t{1} << 47}) {
      v.clear();
      for (size_t i = 0; i < n; ++i) {
        const uintptr_t addr = kBase + (rng() % span) / kBlockAlign * kBlockAlign;
        v.emplace_back(addr, reinterpret_cast<Block*>(static_cast<uintptr_t>(i + 1)));
      }
      auto want = v;
      std::stable_sort(want.begin(), want.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      BlockManager::sort_by_address(v, scratch);
      if (n >= 64) {
        EXPECT_EQ(v, want) << n << " " << span;  // stable above std::sort's range too
      } else {
        ASSERT_EQ(v.size(), n);
        EXPECT_TRUE(std::is_sorted(v.begin(), v.end(),
                                   [](const auto& a, const auto& b) { return a.first < b.first; }));
      }
    }
  }
}

TEST(FreeBinsOrder, SortedWhateverTheInsertionOrder) {
  std::mt19937_64 rng(3);
  std::vector<std::unique_ptr<Block>> blocks;
  for (uint64_t i = 0; i < 3000; ++i) {
    auto b = std::make_unique<Block>();
    b->addr = kBase + i * 64 * KiB;
    // Equal sizes share exact bins; larger ones share bins of mixed sizes.
    b->size = (rng() % 3 == 0 ? 1 + rng() % 4 : 64 + rng() % 16) * kBlockAlign;
    blocks.push_back(std::move(b));
  }
  FreeBins bins;
  using Key = std::pair<uint64_t, uintptr_t>;  // (size, address)
  std::set<Key> model;
  auto check = [&](int step) {
    std::vector<Key> order;
    bins.for_each([&](const Block* b) { order.emplace_back(b->size, b->addr); });
    const std::vector<Key> sorted(model.begin(), model.end());
    ASSERT_EQ(order, sorted) << step;
    for (uint64_t units : {1, 2, 3, 4, 5, 63, 64, 70, 79, 80, 200}) {
      const uint64_t bytes = units * kBlockAlign;
      const auto want = model.lower_bound({bytes, 0});
      const Block* got = bins.best_fit(bytes);
      if (want == model.end()) {
        EXPECT_EQ(got, nullptr) << step << " " << bytes;
      } else {
        ASSERT_NE(got, nullptr) << step << " " << bytes;
        EXPECT_EQ(Key(got->size, got->addr), *want) << step << " " << bytes;
      }
    }
  };
  std::vector<Block*> in;
  auto insert = [&](Block* b) {
    bins.insert(b);
    model.emplace(b->size, b->addr);
    in.push_back(b);
  };
  // Random order, then erases at random, then the rest in address order, then descending.
  std::vector<Block*> order;
  for (auto& b : blocks) order.push_back(b.get());
  std::shuffle(order.begin(), order.begin() + 1000, rng);
  for (size_t i = 0; i < 1000; ++i) insert(order[i]);
  check(0);
  for (int k = 0; k < 400; ++k) {
    const size_t i = rng() % in.size();
    bins.erase(in[i]);
    model.erase({in[i]->size, in[i]->addr});
    in.erase(in.begin() + static_cast<std::ptrdiff_t>(i));
    if (k % 50 == 0) check(1 + k);
  }
  for (size_t i = 1000; i < 2000; ++i) {
    insert(order[i]);
    if (i % 97 == 0) {  // an erase between insertions of the batch
      bins.erase(in[in.size() / 2]);
      model.erase({in[in.size() / 2]->size, in[in.size() / 2]->addr});
      in.erase(in.begin() + static_cast<std::ptrdiff_t>(in.size() / 2));
    }
  }
  check(1000);
  for (size_t i = 3000; i-- > 2000;) insert(order[i]);
  check(2000);
  EXPECT_EQ(bins.size(), model.size());
  std::shuffle(in.begin(), in.end(), rng);
  for (size_t i = 0; i < in.size(); ++i) {
    bins.erase(in[i]);
    model.erase({in[i]->size, in[i]->addr});
    if (i % 211 == 0) check(3000 + static_cast<int>(i));
  }
  check(-1);
  EXPECT_TRUE(bins.empty());
  EXPECT_EQ(bins.best_fit(kBlockAlign), nullptr);
}

}  // namespace
}  // namespace gpumem::resources
