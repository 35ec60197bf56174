// The building blocks on their own: segment free extents and the max-box timeline.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "address_map.h"
#include "free_extents.h"
#include "live_allocations.h"
#include "metrics.h"
#include "segment_space.h"
#include "timeline.h"

namespace gpumem::analyzer {
namespace {

// The address map against std::unordered_map: grown through many doublings, entries erased at
// random (backward shift), then a retain pass (the analyzer's forgetting of freed addresses) that
// must still find every kept key and no other, and go on taking entries.
TEST(AddressMap, MatchesAMapThroughGrowthEraseAndRetain) {
  AddressMap<uint64_t> m;
  std::unordered_map<uint64_t, uint64_t> want;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 400000; ++i) {
    const uint64_t key = (rng() % 600000) * 256;  // key 0 included: it lives apart
    if (rng() % 4 == 0) {
      EXPECT_EQ(m.erase(key), want.erase(key) == 1) << key;
      continue;
    }
    bool inserted = false;
    m.find_or_insert(key, &inserted) = key ^ 0x55;
    EXPECT_EQ(inserted, want.emplace(key, key ^ 0x55).second) << key;
  }
  ASSERT_EQ(m.size(), want.size());
  ASSERT_GT(m.size(), size_t{1} << 17);
  auto keep = [](uint64_t key, uint64_t) { return key % 3 == 0; };
  m.retain_if(keep);
  std::erase_if(want, [&](const auto& kv) { return !keep(kv.first, kv.second); });
  ASSERT_EQ(m.size(), want.size());
  size_t seen = 0;
  m.for_each([&](uint64_t key, uint64_t value) {
    ++seen;
    auto it = want.find(key);
    ASSERT_NE(it, want.end()) << key;
    EXPECT_EQ(value, it->second);
  });
  EXPECT_EQ(seen, want.size());
  for (uint64_t k = 0; k < 600000 * 256; k += 256 * 7)
    EXPECT_EQ(m.find(k) != nullptr, want.count(k) == 1) << k;
  bool inserted = false;  // and it goes on taking entries after the pass
  m.find_or_insert(1, &inserted) = 2;
  EXPECT_TRUE(inserted);
  EXPECT_EQ(*m.find(1), 2u);
}

// NVTX heaps registered inside an allocation (not at its start) find it without a walk of the
// map when it starts at the heap's address rounded down to a power of two, or is the one found
// last; otherwise one walk, then the cache. What they find is checked as the allocation is now
// (freed, or made again smaller at the same address, it no longer holds the address).
TEST(LiveAllocations, HeapsInsideAllocationsFindThemWithoutWalkingTheMap) {
  LiveAllocations live;
  bool was_live = false;
  for (uint64_t k = 0; k < 1000; ++k) live.claim(0x10000000 + k * 0x100000, &was_live).bytes = 4096;
  uint64_t start = 0;
  // Aligned allocations: 1000 heaps 100 B inside each, no walk.
  for (uint64_t k = 0; k < 1000; ++k) {
    ASSERT_EQ(live.holding(0x10000000 + k * 0x100000 + 100, &start),
              live.find(0x10000000 + k * 0x100000));
    ASSERT_EQ(start, 0x10000000 + k * 0x100000);
  }
  EXPECT_EQ(live.holding_walks(), 0u);
  // One allocation at an odd 512 B boundary, 20000 heaps inside it: one walk.
  const uint64_t big = 0x7f0000000200;
  live.claim(big, &was_live).bytes = 1 << 30;
  for (uint64_t k = 1; k <= 20000; ++k) {
    ASSERT_EQ(live.holding(big + k * 4096, &start), live.find(big));
    ASSERT_EQ(start, big);
  }
  EXPECT_EQ(live.holding_walks(), 1u);
  EXPECT_EQ(live.holding(0x10000000 + 7 * 0x100000 + 100, &start),
            live.find(0x10000000 + 7 * 0x100000));
  EXPECT_EQ(live.holding(big + 4096, &start), live.find(big));  // a walk: the last one moved
  EXPECT_EQ(live.holding_walks(), 2u);
  live.find(big)->bytes = 8192;  // made again at the same address, smaller
  EXPECT_EQ(live.holding(big + 100 * 4096, &start), nullptr);
  live.mark_freed(*live.find(big));
  EXPECT_EQ(live.holding(big + 4096, &start), nullptr);
  EXPECT_EQ(live.holding(0x10000000 + 0x100000 + 4096, &start), nullptr);  // just past its end
}

TEST(SegmentSpace, TakeSplitsAndGiveBackMerges) {
  SegmentSpace s;
  uint64_t id = s.reserve(1000, 1000);
  ASSERT_NE(id, 0u);
  EXPECT_EQ(s.total_free(), 1000u);
  EXPECT_EQ(s.take(1100, 100), id);  // free: [1000,1100) [1200,2000)
  EXPECT_EQ(s.total_free(), 900u);
  EXPECT_EQ(s.largest_free(), 800u);
  EXPECT_DOUBLE_EQ(s.external_fragmentation(), 1.0 - 800.0 / 900.0);
  EXPECT_EQ(s.take(1150, 100), 0u);  // overlaps the live block: refused, nothing changes
  EXPECT_EQ(s.total_free(), 900u);
  EXPECT_EQ(s.give_back(1100, 100, id), 100u);
  EXPECT_EQ(s.largest_free(), 1000u);
  EXPECT_EQ(s.external_fragmentation(), 0.0);
}

TEST(SegmentSpace, AdjacentSegmentsDoNotMerge) {
  SegmentSpace s;
  uint64_t a = s.reserve(0, 100);
  uint64_t b = s.reserve(100, 300);
  ASSERT_NE(a, 0u);
  ASSERT_NE(b, 0u);
  EXPECT_EQ(s.reserve(50, 100), 0u);  // overlaps
  EXPECT_EQ(s.largest_free(), 300u);
  EXPECT_DOUBLE_EQ(s.external_fragmentation(), 0.25);
  EXPECT_EQ(s.take(90, 20), 0u);  // spans two segments
  EXPECT_EQ(s.take(0, 100), a);
  EXPECT_EQ(s.take(100, 300), b);
  EXPECT_EQ(s.total_free(), 0u);
  EXPECT_EQ(s.give_back(100, 300, b), 300u);
  EXPECT_EQ(s.give_back(0, 100, a), 100u);
  EXPECT_EQ(s.largest_free(), 300u);  // still two extents
  uint64_t bytes = 0, used = 0;
  EXPECT_TRUE(s.release(100, &bytes, &used));
  EXPECT_EQ(bytes, 300u);
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(s.total_free(), 100u);
  EXPECT_FALSE(s.release(100, &bytes, &used));
}

// Random takes and give-backs in three adjacent segments, checked after every step against a
// brute-force model (one flag per 16-byte granule): total free and the largest free extent
// (extents never span two segments), and that take refuses exactly what is not entirely free.
TEST(SegmentSpace, MatchesABruteForceModelUnderRandomUse) {
  // Five segments: the lookup keeps hints from four on.
  constexpr uint64_t kGranule = 16, kSegments = 5, kSegmentGranules = 64;
  SegmentSpace s;
  uint64_t ids[kSegments];
  for (uint64_t i = 0; i < kSegments; ++i)
    ids[i] = s.reserve(i * kSegmentGranules * kGranule, kSegmentGranules * kGranule);
  std::vector<bool> used(kSegments * kSegmentGranules, false);
  struct Live {
    uint64_t first, count, id;
  };
  std::vector<Live> live;
  std::mt19937_64 rng(7);
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || rng() % 2 == 0) {
      const uint64_t first = rng() % used.size();
      const uint64_t count = 1 + rng() % 12;
      const uint64_t seg = first / kSegmentGranules;
      bool fits = first + count <= (seg + 1) * kSegmentGranules;
      for (uint64_t g = first; fits && g < first + count; ++g) fits = !used[g];
      const uint64_t id = s.take(first * kGranule, count * kGranule);
      ASSERT_EQ(id, fits ? ids[seg] : 0u) << "step " << step;
      if (fits) {
        for (uint64_t g = first; g < first + count; ++g) used[g] = true;
        live.push_back({first, count, id});
      }
    } else {
      const size_t k = rng() % live.size();
      const Live l = live[k];
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
      ASSERT_EQ(s.give_back(l.first * kGranule, l.count * kGranule, l.id), l.count * kGranule);
      for (uint64_t g = l.first; g < l.first + l.count; ++g) used[g] = false;
    }
    uint64_t total = 0, largest = 0, run = 0;
    for (uint64_t g = 0; g < used.size(); ++g) {
      if (g % kSegmentGranules == 0) run = 0;  // extents stop at segment bounds
      run = used[g] ? 0 : run + 1;
      total += !used[g];
      largest = std::max(largest, run);
    }
    ASSERT_EQ(s.total_free(), total * kGranule) << "step " << step;
    ASSERT_EQ(s.largest_free(), largest * kGranule) << "step " << step;
  }
}

// Random inserts, changes and erases on a grid of `cells` 1000-byte cells, checked every five
// steps against a std::map: order, neighbours and the largest size. The lookups go through the
// bucket hints (from four buckets on), which the moving bucket bounds keep making stale.
template <uint32_t kCap>
void matches_a_map_under_random_use(uint64_t cells) {
  using Set = FreeExtentsOf<kCap>;
  Set s;
  std::map<uint64_t, uint64_t> model;  // start -> end
  std::mt19937_64 rng(3);
  auto check = [&](int step) {
    ASSERT_EQ(s.size(), model.size()) << step;
    uint64_t largest = 0;
    auto p = s.lower_bound(0);
    for (const auto& [start, end] : model) {
      ASSERT_TRUE(s.valid(p)) << step;
      ASSERT_EQ(s.get(p).start, start) << step;
      ASSERT_EQ(s.get(p).end, end) << step;
      largest = std::max(largest, end - start);
      p = s.next(p);
    }
    ASSERT_FALSE(s.valid(p)) << step;
    ASSERT_EQ(s.largest(), largest) << step;
  };
  for (int step = 0; step < 30000; ++step) {
    // Extents on a grid of 1000-byte cells, one per cell at most: [cell*1000, cell*1000 + len).
    const uint64_t cell = rng() % cells, at = cell * 1000;
    const auto found = model.find(at);
    const typename Set::Pos p = s.at_or_before(at + 999);
    if (found == model.end()) {
      ASSERT_TRUE(!s.valid(p) || s.get(p).start < at) << step;
      const uint64_t len = 1 + rng() % 999;
      if (rng() % 2 == 0)
        s.insert_before(s.lower_bound(at), {at, at + len});
      else if (s.valid(p))
        s.insert_after(p, {at, at + len});
      else
        s.insert_before(s.lower_bound(0), {at, at + len});
      model[at] = at + len;
    } else {
      ASSERT_TRUE(s.valid(p)) << step;
      ASSERT_EQ(s.get(p).start, at) << step;
      const typename Set::Pos q = s.prev(s.lower_bound(at + 1));
      ASSERT_TRUE(q.bucket == p.bucket && q.index == p.index) << step;
      if (rng() % 3 == 0) {
        const uint64_t len = 1 + rng() % 999;  // grows or shrinks in place
        s.set(p, at, at + len);
        found->second = at + len;
      } else {
        s.erase(p);
        model.erase(found);
      }
    }
    if (step % 5 == 0 || model.size() < 3) check(step);
  }
  check(-1);
  while (!model.empty()) {  // emptied, largest last
    s.erase(s.at_or_before(model.begin()->first));
    model.erase(model.begin());
    check(-2);
  }
  EXPECT_EQ(s.largest(), 0u);
}

// Buckets of 8: splits, merges and removals of buckets often; the searches' one-entry eighths.
TEST(FreeExtents, MatchesAMapUnderRandomUse) { matches_a_map_under_random_use<8>(400); }
// Buckets of 32 (eighths of four), about 90 of them: the top level's eight-way steps.
TEST(FreeExtents, BucketsOf32MatchAMapUnderRandomUse) {
  matches_a_map_under_random_use<32>(4000);
}
// The analyzer's own buckets (FreeExtents, 64: eighths of eight), about 90 of them.
TEST(FreeExtents, TheAnalyzersBucketsMatchAMapUnderRandomUse) {
  static_assert(std::is_same_v<FreeExtents, FreeExtentsOf<64>>);
  matches_a_map_under_random_use<64>(8000);
}

TEST(SegmentSpace, ReleaseReportsBytesStillUsed) {
  SegmentSpace s;
  uint64_t id = s.reserve(0, 100);
  ASSERT_EQ(s.take(10, 30), id);
  uint64_t bytes = 0, used = 0;
  ASSERT_TRUE(s.release(0, &bytes, &used));
  EXPECT_EQ(used, 30u);
  EXPECT_EQ(s.total_free(), 0u);
  EXPECT_EQ(s.give_back(10, 30, id), 0u);  // its segment is gone
}

// The segment lookup of take and give_back (an index rebuilt after segments come and go): random
// reserves, releases, whole-segment takes and give-backs over 64 places with gaps between them,
// each answer checked against the model's segment ids.
TEST(SegmentSpace, LookupFollowsReservesAndReleases) {
  SegmentSpace s;
  std::vector<uint64_t> id(64, 0);  // 0: not reserved
  std::vector<bool> taken(64, false);
  std::mt19937_64 rng(5);
  for (int step = 0; step < 20000; ++step) {
    const size_t i = rng() % id.size();
    const uint64_t at = i * 1000;
    ASSERT_EQ(s.take(at + 500, 10), 0u) << step;  // the gap after each place
    if (id[i] == 0) {
      id[i] = s.reserve(at, 100);
      ASSERT_NE(id[i], 0u) << step;
    } else if (rng() % 4 == 0) {
      uint64_t bytes = 0, used = 0;
      ASSERT_TRUE(s.release(at, &bytes, &used)) << step;
      ASSERT_EQ(bytes, 100u) << step;
      ASSERT_EQ(used, taken[i] ? 100u : 0u) << step;
      id[i] = 0;
      taken[i] = false;
      ASSERT_EQ(s.take(at, 100), 0u) << step;  // gone
    } else if (!taken[i]) {
      ASSERT_EQ(s.take(at, 100), id[i]) << step;
      taken[i] = true;
    } else {
      ASSERT_EQ(s.take(at, 100), 0u) << step;  // not free
      ASSERT_EQ(s.give_back(at, 100, id[i]), 100u) << step;
      taken[i] = false;
    }
  }
}

// A space of one segment answers lookups without the index's search (an expandable pool's run of
// granules, a heap's space): a give-back or release below or above it finds no segment.
TEST(SegmentSpace, OneSegmentAnswersOnlyInsideIt) {
  for (const bool joining : {false, true}) {
    SegmentSpace s;
    const uint64_t id = s.reserve(1000, 1000, joining);
    ASSERT_NE(id, 0u);
    ASSERT_EQ(s.take(1000, 100), id);
    for (const uint64_t outside : {500u, 2000u, 2500u}) {
      EXPECT_EQ(s.give_back(outside, 10, id), 0u) << outside << joining;
      uint64_t used = 0;
      EXPECT_FALSE(s.release_part(outside, 10, &used)) << outside << joining;
      EXPECT_EQ(s.take(outside, 10), 0u) << outside << joining;
    }
    EXPECT_EQ(s.total_free(), 900u) << joining;
    EXPECT_EQ(s.largest_free(), 900u) << joining;
    EXPECT_EQ(s.give_back(1000, 100, id), 100u) << joining;
    EXPECT_EQ(s.largest_free(), 1000u) << joining;
  }
}

// A segment reserved before each allocation (NVTX heaps: one per heap) must not rebuild the
// segment index at each lookup: that made such traces quadratic (50000 heaps took 12 s). The map
// answers until the lookups since the last change are a sixteenth of the segments; then the index
// is rebuilt once and serves.
TEST(SegmentSpace, IndexRebuildsStayAmortised) {
  SegmentSpace s;
  constexpr uint64_t kSegments = 5000;
  for (uint64_t i = 0; i < kSegments; ++i) {
    const uint64_t id = s.reserve(i * 1000, 100);
    ASSERT_EQ(s.take(i * 1000 + 10, 10), id) << i;
  }
  // One rebuild for each of the first 16 segments (a sixteenth of fewer than 16 is no lookup).
  EXPECT_EQ(s.index_rebuilds(), 15u);
  for (uint64_t i = 0; i < kSegments; ++i) {
    ASSERT_EQ(s.take(i * 1000 + 50, 10), i + 1) << i;
    ASSERT_EQ(s.take(i * 1000 + 200, 10), 0u) << i;  // between segments
  }
  EXPECT_EQ(s.index_rebuilds(), 16u);  // after 5000 / 16 lookups through the map
  uint64_t bytes = 0, used = 0;
  ASSERT_TRUE(s.release(0, &bytes, &used));
  EXPECT_EQ(used, 20u);
  EXPECT_EQ(s.take(5, 10), 0u);  // gone, answered by the map
  EXPECT_EQ(s.take(1000 + 70, 10), 2u);
  EXPECT_EQ(s.index_rebuilds(), 16u);
}

// The expandable pool's granules (joining segments): adjacent ones are one segment, so a block
// and a free extent span them; an unmapped granule in the middle splits the segment in two.
TEST(SegmentSpace, JoiningSegmentsAreOneRunOfGranules) {
  SegmentSpace s;
  ASSERT_NE(s.reserve(200, 100, true), 0u);
  ASSERT_NE(s.reserve(0, 100, true), 0u);
  EXPECT_EQ(s.largest_free(), 100u);  // 0..100 and 200..300: not adjacent
  ASSERT_NE(s.reserve(100, 100, true), 0u);  // fills the hole: one segment of 300
  EXPECT_EQ(s.total_free(), 300u);
  EXPECT_EQ(s.largest_free(), 300u);
  const uint64_t id = s.take(50, 200);  // across three granules
  ASSERT_NE(id, 0u);
  EXPECT_EQ(s.total_free(), 100u);
  EXPECT_EQ(s.largest_free(), 50u);
  EXPECT_DOUBLE_EQ(s.external_fragmentation(), 0.5);
  uint64_t used = 0;
  EXPECT_FALSE(s.release_part(250, 100, &used));  // past the segment's end
  EXPECT_FALSE(s.release_part(400, 100, &used));  // nothing there
  EXPECT_EQ(s.give_back(50, 200, id + 1000), 200u);  // the id does not matter: the bytes do
  EXPECT_EQ(s.largest_free(), 300u);
  ASSERT_TRUE(s.release_part(100, 100, &used));  // the middle granule
  EXPECT_EQ(used, 0u);
  EXPECT_EQ(s.total_free(), 200u);
  EXPECT_EQ(s.largest_free(), 100u);
  EXPECT_EQ(s.take(50, 100), 0u);  // would span the hole
  // A segment that does not join keeps to itself next to joining ones.
  ASSERT_NE(s.reserve(300, 100), 0u);
  EXPECT_EQ(s.take(250, 100), 0u);
  EXPECT_FALSE(s.release_part(300, 50, &used));  // not the whole of a segment that does not join
  ASSERT_TRUE(s.release_part(300, 100, &used));
  EXPECT_EQ(s.total_free(), 200u);
}

// A block partly in a granule released under it (a corrupt or cut trace): the release counts the
// block's bytes in that granule as used, and the block's free gives back only what is still
// reserved and not free (a granule mapped again there is free, not the block's).
TEST(SegmentSpace, JoiningReleaseUnderABlockGivesBackTheRestOnly) {
  SegmentSpace s;
  for (uint64_t g = 0; g < 4; ++g) ASSERT_NE(s.reserve(g * 100, 100, true), 0u);
  const uint64_t id = s.take(50, 200);
  ASSERT_NE(id, 0u);
  uint64_t used = 0;
  ASSERT_TRUE(s.release_part(100, 100, &used));
  EXPECT_EQ(used, 100u);
  EXPECT_EQ(s.total_free(), 200u);  // 0..50 and 250..400
  ASSERT_NE(s.reserve(100, 100, true), 0u);  // mapped again: free
  EXPECT_EQ(s.total_free(), 300u);
  EXPECT_EQ(s.give_back(50, 200, id), 100u);  // 50..100 and 200..250
  EXPECT_EQ(s.total_free(), 400u);
  EXPECT_EQ(s.largest_free(), 400u);
}

// Random maps, unmaps, takes and give-backs of joining segments, checked after every step against
// a brute-force model (an owner per 16-byte unit, 4 units a granule): free extents run across
// mapped granules and stop at unmapped ones; release_part's used bytes; give_back's bytes.
TEST(SegmentSpace, JoiningMatchesABruteForceModelUnderRandomUse) {
  constexpr uint64_t kUnit = 16, kPerGranule = 4, kGranules = 24;
  constexpr int64_t kUnmapped = -2, kFree = -1;
  SegmentSpace s;
  std::vector<int64_t> owner(kGranules * kPerGranule, kUnmapped);
  std::vector<int64_t> ghost(owner.size(), -1);  // a live block's unit unmapped under it
  struct Live {
    uint64_t first, count, id;
  };
  std::map<int64_t, Live> live;
  int64_t next = 0;
  std::mt19937_64 rng(11);
  for (int step = 0; step < 20000; ++step) {
    const uint64_t op = rng() % 8;
    const uint64_t g = rng() % kGranules;
    const uint64_t g0 = g * kPerGranule, g1 = g0 + kPerGranule;
    if (op < 2) {  // map
      const bool mapped = owner[g0] != kUnmapped;
      ASSERT_EQ(s.reserve(g0 * kUnit, kPerGranule * kUnit, true) != 0, !mapped) << step;
      if (!mapped)
        for (uint64_t u = g0; u < g1; ++u) owner[u] = kFree;
    } else if (op == 2) {  // unmap, mostly only a wholly free granule (as the pool does)
      bool idle = true;
      for (uint64_t u = g0; u < g1; ++u) idle = idle && owner[u] == kFree;
      if (!idle && rng() % 4 != 0) continue;
      uint64_t used = 0, expect = 0;
      for (uint64_t u = g0; u < g1; ++u) expect += owner[u] >= 0;
      const bool mapped = owner[g0] != kUnmapped;
      ASSERT_EQ(s.release_part(g0 * kUnit, kPerGranule * kUnit, &used), mapped) << step;
      if (mapped) {
        ASSERT_EQ(used, expect * kUnit) << step;
      }
      for (uint64_t u = g0; u < g1; ++u) {
        if (owner[u] >= 0) ghost[u] = owner[u];
        owner[u] = kUnmapped;
      }
    } else if (op < 6 || live.empty()) {  // take
      const uint64_t first = rng() % owner.size();
      const uint64_t count = 1 + rng() % 10;
      bool ghosts = false, fits = first + count <= owner.size();
      for (uint64_t u = first; u < first + count && u < owner.size(); ++u) {
        fits = fits && owner[u] == kFree;
        ghosts = ghosts || ghost[u] >= 0;
      }
      if (ghosts) continue;  // would be a second live block over a dead one's bytes
      const uint64_t id = s.take(first * kUnit, count * kUnit);
      ASSERT_EQ(id != 0, fits) << step;
      if (fits) {
        for (uint64_t u = first; u < first + count; ++u) owner[u] = next;
        live[next++] = {first, count, id};
      }
    } else {  // give back
      auto it = live.begin();
      std::advance(it, static_cast<std::ptrdiff_t>(rng() % live.size()));
      const Live l = it->second;
      uint64_t expect = 0;
      for (uint64_t u = l.first; u < l.first + l.count; ++u) {
        if (owner[u] == it->first) {
          owner[u] = kFree;
          ++expect;
        }
        if (ghost[u] == it->first) ghost[u] = -1;
      }
      ASSERT_EQ(s.give_back(l.first * kUnit, l.count * kUnit, l.id), expect * kUnit) << step;
      live.erase(it);
    }
    uint64_t total = 0, largest = 0, run = 0;
    for (int64_t o : owner) {
      run = o == kFree ? run + 1 : 0;
      total += o == kFree;
      largest = std::max(largest, run);
    }
    ASSERT_EQ(s.total_free(), total * kUnit) << "step " << step;
    ASSERT_EQ(s.largest_free(), largest * kUnit) << "step " << step;
  }
}

TEST(MaxBoxTimeline, KeepsEveryPointWhileItFits) {
  MaxBoxTimeline t(2000);
  for (int i = 0; i < 10; ++i) t.add(i * 5000, static_cast<uint64_t>(i), 2 * i, 0.0);
  Timeline p = t.points();
  ASSERT_EQ(p.t_ns.size(), 10u);
  EXPECT_EQ(p.allocated[9], 9u);
  EXPECT_EQ(p.reserved[9], 18u);
}

TEST(MaxBoxTimeline, EachBoxKeepsItsMaximum) {
  MaxBoxTimeline t(4);
  // 100 points over 100 µs, a spike of 1000 at t = 37 µs.
  for (int i = 0; i < 100; ++i)
    t.add(i * 1000, i == 37 ? 1000u : 1u, i == 80 ? 500u : 1u, i == 50 ? 0.5 : 0.0);
  Timeline p = t.points();
  ASSERT_LE(p.t_ns.size(), 4u);
  uint64_t max_a = 0, max_r = 0;
  double max_f = 0;
  for (size_t i = 0; i < p.t_ns.size(); ++i) {
    max_a = std::max(max_a, p.allocated[i]);
    max_r = std::max(max_r, p.reserved[i]);
    max_f = std::max(max_f, p.fragmentation[i]);
    if (p.allocated[i] == 1000u) {
      EXPECT_EQ(p.t_ns[i], 37000);
    }
  }
  EXPECT_EQ(max_a, 1000u);
  EXPECT_EQ(max_r, 500u);
  EXPECT_EQ(max_f, 0.5);
}

TEST(SizeClass, Bounds) {
  EXPECT_EQ(size_class(0), 0);
  EXPECT_EQ(size_class(1), 1);
  EXPECT_EQ(size_class(1023), 10);
  EXPECT_EQ(size_class(1024), 11);
  EXPECT_EQ(size_class_min(11), 1024u);
  EXPECT_EQ(size_class_max(11), 2047u);
  EXPECT_EQ(size_class_max(64), UINT64_MAX);
  EXPECT_EQ(size_class(UINT64_MAX), 64);
}

}  // namespace
}  // namespace gpumem::analyzer
