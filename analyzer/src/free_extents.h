// The free extents of a pool's segments, [start, end) ranges ordered by start, with the largest
// size at hand after every change: what SegmentSpace needs on every pooled event.
//
// The extents sit in buckets of up to kCap, each a sorted array; a vector of the buckets' first
// starts finds a bucket by an eight-way search (after a hint by address, when it holds), and a
// tournament tree over the buckets' largest sizes gives the largest of all at its root. A change to
// one extent moves at most kCap entries of one bucket (no allocation), rescans that bucket only
// when its largest extent shrank, and updates one path of the tree. A std::map of extents plus a
// lazy max-heap of sizes (what this replaced) chased a pointer per tree level and swept the heap:
// 230 ns per pooled event in bench_analyzer. Buckets split when full and merge when a neighbour has
// room, so the top level stays about n / (kCap / 4) buckets or fewer; it is rebuilt (O(buckets))
// only then.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "granule_hints.h"
#include "sorted_search.h"

namespace gpumem::analyzer {

template <uint32_t kCap = 64>
class FreeExtentsOf {
  static_assert(kCap >= 8 && std::has_single_bit(kCap));

 public:
  struct Extent {
    uint64_t start;
    uint64_t end;
  };
  // Where an extent is: valid until the next insert or erase (set() keeps it valid).
  struct Pos {
    uint32_t bucket;
    uint32_t index;
  };

  bool valid(Pos p) const { return p.bucket < buckets_.size(); }
  Pos end() const { return {static_cast<uint32_t>(buckets_.size()), 0}; }
  Extent get(Pos p) const {
    const Bucket& k = *buckets_[p.bucket];
    return {k.x[p.index].start, k.x[p.index].end};
  }
  size_t size() const { return size_; }
  uint64_t largest() const { return tree_.empty() ? 0 : tree_[1]; }

  // The extent with the largest start <= address; end() when none.
  Pos at_or_before(uint64_t address) const {
    const uint32_t b = bucket_at_or_before(address);
    if (b == kNoBucket) return end();
    const Bucket& k = *buckets_[b];
    // k.x[0].start <= address: at least one.
    return {b, k.count_at_most(address) - 1};
  }
  // The first extent with start >= address; end() when none.
  Pos lower_bound(uint64_t address) const {
    if (address == 0) return buckets_.empty() ? end() : Pos{0, 0};
    // The first start > address - 1: the same as >= address.
    Pos p = at_or_before(address - 1);
    if (!valid(p)) return buckets_.empty() ? end() : Pos{0, 0};
    return next(p);
  }
  // The extent before p (p may be end()); end() when p is the first.
  Pos prev(Pos p) const {
    if (p.index > 0) return {p.bucket, p.index - 1};
    if (p.bucket == 0) return end();
    return {p.bucket - 1, buckets_[p.bucket - 1]->count - 1};
  }
  Pos next(Pos p) const {
    return p.index + 1 < buckets_[p.bucket]->count ? Pos{p.bucket, p.index + 1}
                                                    : Pos{p.bucket + 1, 0};
  }

  // Changes the extent at p in place; the caller keeps the order (it stays between its
  // neighbours' starts).
  void set(Pos p, uint64_t start, uint64_t end) {
    Bucket& k = *buckets_[p.bucket];
    const uint64_t old = k.x[p.index].end - k.x[p.index].start, now = end - start;
    k.x[p.index].start = start;
    k.x[p.index].end = end;
    if (p.index == 0) firsts_[p.bucket] = start;
    if (now > old)
      raise(p.bucket, now);
    else if (now < old)
      lowered(p.bucket, old);
  }

  // Inserts x before p (p may be end()), where it belongs in start order.
  void insert_before(Pos p, Extent x) {
    if (buckets_.empty()) {
      add_bucket(0);
      rebuild_tree();
      p = {0, 0};
    } else if (!valid(p)) {
      p = {p.bucket - 1, buckets_[p.bucket - 1]->count};
    } else if (p.index == 0 && p.bucket > 0 && buckets_[p.bucket - 1]->count < kCap) {
      p = {p.bucket - 1, buckets_[p.bucket - 1]->count};  // the end of the one before has room
    }
    if (buckets_[p.bucket]->count == kCap) {
      split(p.bucket);
      if (p.index > kCap / 2) p = {p.bucket + 1, p.index - kCap / 2};
    }
    Bucket& k = *buckets_[p.bucket];
    k.move(p.index, p.index + 1, k.count - p.index);
    k.x[p.index].start = x.start;
    k.x[p.index].end = x.end;
    ++k.count;
    ++size_;
    if (p.index == 0) firsts_[p.bucket] = x.start;
    raise(p.bucket, x.end - x.start);
  }
  void insert_after(Pos p, Extent x) { insert_before(next(p), x); }

  void erase(Pos p) {
    Bucket& k = *buckets_[p.bucket];
    const uint64_t old = k.x[p.index].end - k.x[p.index].start;
    k.move(p.index + 1, p.index, k.count - p.index - 1);
    k.x[--k.count].start = kNone;
    --size_;
    if (k.count == 0) {
      remove_bucket(p.bucket);
      return;
    }
    if (p.index == 0) firsts_[p.bucket] = k.x[0].start;
    if (k.count <= kCap / 4 && merge_with_neighbour(p.bucket)) return;
    lowered(p.bucket, old);
  }

 private:
  static constexpr uint64_t kNone = UINT64_MAX;  // the start of every unused entry
  struct Bucket {
    Bucket() {
      for (Extent& e : x) e.start = kNone;
    }
    uint32_t count = 0;
    uint64_t max = 0;  // the largest size in [0, count)
    // Starts and ends side by side: an insert or erase is one memmove (two separate arrays,
    // searched a little faster, measured 3 % slower per pooled event).
    Extent x[kCap];
    // How many starts are <= key, over all kCap entries (unused ones hold kNone and sort last):
    // the last start of each of the first seven eighths compared at once gives the eighth, then
    // that eighth's starts compared at once. Two steps of independent loads instead of a binary
    // search's five dependent ones, with no branch (as count_at_most in sorted_search.h).
    uint32_t count_at_most(uint64_t key) const {
      constexpr uint32_t kEighth = kCap / 8;
      uint32_t e = 0;
#pragma GCC unroll 7
      for (uint32_t j = 1; j < 8; ++j) e += x[kEighth * j - 1].start <= key ? 1 : 0;
      uint32_t n = kEighth * e;
#pragma GCC unroll 8
      for (uint32_t i = 0; i < kEighth; ++i) n += x[kEighth * e + i].start <= key ? 1 : 0;
      return std::min(n, count);  // key == kNone counts the unused ones too
    }
    void move(uint32_t from, uint32_t to, uint32_t n) {
      std::memmove(x + to, x + from, n * sizeof(Extent));
    }
  };

  static constexpr uint32_t kNoBucket = UINT32_MAX;
  // The last bucket whose first start is <= address (kNoBucket when none). With hints, the bucket
  // found last for the address's granule is tried first, then its neighbours: one is the answer
  // whenever its first start is <= address and the next bucket's is not, however the buckets
  // moved since (the firsts are sorted), so a stale hint costs the search, never a wrong answer.
  // A pool's blocks come and go in the same places, and buckets rarely split or merge (about once
  // in 800 changes with buckets of 32): 97-99 % of the lookups of bench_analyzer's pooled pattern
  // and of growth- and expandable-pool traces hit (docs/performance.md).
  uint32_t bucket_at_or_before(uint64_t address) const {
    const uint32_t n = static_cast<uint32_t>(firsts_.size());
    const uint64_t* firsts = firsts_.data();
    uint32_t* hint = nullptr;
    if (hints_.on()) {
      hint = &hints_.slot(address);
      const uint32_t h = *hint;
      if (h < n) {
        if (firsts[h] > address) {
          if (h > 0 && firsts[h - 1] <= address) return *hint = h - 1;
        } else if (h + 1 == n || firsts[h + 1] > address) {
          return h;
        } else if (h + 2 == n || firsts[h + 2] > address) {
          return *hint = h + 1;
        }
      }
    }
    const uint32_t f = count_at_most(n, address, [firsts](uint32_t i) { return firsts[i]; });
    if (f == 0) return kNoBucket;
    if (hint != nullptr) *hint = f - 1;
    return f - 1;
  }
  // Called after every change to the buckets: hints from kHintsFromBuckets buckets on (an NVTX
  // heap's own space has a few extents, and there are thousands of heaps), by granules of about
  // a quarter of a bucket's span of addresses (the median span: a growth pool's segments lie far
  // apart).
  void set_hint_granule() {
    if (buckets_.size() < kHintsFromBuckets) return;
    hints_.start();
    spans_.resize(buckets_.size() - 1);
    for (size_t b = 0; b + 1 < buckets_.size(); ++b) spans_[b] = firsts_[b + 1] - firsts_[b];
    std::nth_element(spans_.begin(), spans_.begin() + spans_.size() / 2, spans_.end());
    const uint64_t span = spans_[spans_.size() / 2];
    hints_.set_granule_shift(span < 16 ? 1u : static_cast<unsigned>(std::bit_width(span / 4)) - 1);
  }

  uint64_t& leaf(uint32_t b) { return tree_[leaves_ + b]; }
  // Bucket b's largest is at least v now.
  void raise(uint32_t b, uint64_t v) {
    Bucket& k = *buckets_[b];
    if (v <= k.max) return;
    k.max = v;
    leaf(b) = v;
    for (size_t j = (leaves_ + b) / 2; j >= 1 && tree_[j] < v; j /= 2) tree_[j] = v;
  }
  // An extent of size `old` in bucket b shrank or left: its largest may be smaller now.
  void lowered(uint32_t b, uint64_t old) {
    Bucket& k = *buckets_[b];
    if (old < k.max) return;
    uint64_t m = 0;
    for (uint32_t i = 0; i < k.count; ++i) m = std::max(m, k.x[i].end - k.x[i].start);
    if (m == k.max) return;
    k.max = m;
    leaf(b) = m;
    for (size_t j = (leaves_ + b) / 2; j >= 1; j /= 2) {
      const uint64_t v = std::max(tree_[2 * j], tree_[2 * j + 1]);
      if (tree_[j] == v) break;
      tree_[j] = v;
    }
  }

  void add_bucket(uint32_t b) {
    buckets_.insert(buckets_.begin() + b, std::make_unique<Bucket>());
    firsts_.insert(firsts_.begin() + b, 0);
  }
  // Moves the upper half of full bucket b into a new bucket b + 1.
  void split(uint32_t b) {
    add_bucket(b + 1);
    Bucket& lo = *buckets_[b];
    Bucket& hi = *buckets_[b + 1];
    std::copy(lo.x + kCap / 2, lo.x + kCap, hi.x);
    for (uint32_t i = kCap / 2; i < kCap; ++i) lo.x[i].start = kNone;
    lo.count = hi.count = kCap / 2;
    firsts_[b + 1] = hi.x[0].start;
    lo.max = max_of(lo);
    hi.max = max_of(hi);
    rebuild_tree();
  }
  // Bucket b holds few extents: moves them into a neighbour, or the neighbour's into b, when
  // both fit in half a bucket. True when it did (the tree is then rebuilt).
  bool merge_with_neighbour(uint32_t b) {
    uint32_t lo = b, hi = b + 1;
    if (hi >= buckets_.size() || buckets_[lo]->count + buckets_[hi]->count > kCap / 2) {
      if (b == 0) return false;
      lo = b - 1;
      hi = b;
      if (buckets_[lo]->count + buckets_[hi]->count > kCap / 2) return false;
    }
    Bucket& l = *buckets_[lo];
    const Bucket& h = *buckets_[hi];
    std::copy(h.x, h.x + h.count, l.x + l.count);
    l.count += h.count;
    l.max = max_of(l);
    firsts_[lo] = l.x[0].start;
    buckets_.erase(buckets_.begin() + hi);
    firsts_.erase(firsts_.begin() + hi);
    rebuild_tree();
    return true;
  }
  void remove_bucket(uint32_t b) {
    buckets_.erase(buckets_.begin() + b);
    firsts_.erase(firsts_.begin() + b);
    rebuild_tree();
  }
  static uint64_t max_of(const Bucket& k) {
    uint64_t m = 0;
    for (uint32_t i = 0; i < k.count; ++i) m = std::max(m, k.x[i].end - k.x[i].start);
    return m;
  }
  void rebuild_tree() {
    if (buckets_.empty()) {
      tree_.clear();
      leaves_ = 0;
      return;
    }
    set_hint_granule();
    leaves_ = std::bit_ceil(buckets_.size());
    tree_.assign(2 * leaves_, 0);
    for (size_t b = 0; b < buckets_.size(); ++b) tree_[leaves_ + b] = buckets_[b]->max;
    for (size_t j = leaves_ - 1; j >= 1; --j) tree_[j] = std::max(tree_[2 * j], tree_[2 * j + 1]);
  }

  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<uint64_t> firsts_;  // buckets_[b]->x[0].start
  // tree_[leaves_ + b] = buckets_[b]->max; tree_[j] = max of its two children; tree_[1] = all.
  std::vector<uint64_t> tree_;
  size_t leaves_ = 0;
  size_t size_ = 0;
  static constexpr size_t kHintsFromBuckets = 4;
  GranuleHints<1024> hints_;  // a bucket index by granule of addresses (bucket_at_or_before())
  std::vector<uint64_t> spans_;  // set_hint_granule()'s scratch
};

using FreeExtents = FreeExtentsOf<>;

}  // namespace gpumem::analyzer
