// The free blocks of one (kind, stream) list, indexed for best fit by (size, address) without
// allocating: TLSF-style size bins (exact bins up to 32 KiB, then 8 bins per power of two), each
// an intrusive doubly-linked list sorted by (size, address), and a bitmap of non-empty bins.
//
// Each bin's blocks are also the nodes of an intrusive treap ordered by (size, address), with a
// priority hashed from the address: an insertion finds its place, and a best fit its block, in
// O(log n) expected whatever the order of the frees. A sorted list walked to find the place was
// linear in the bin's length: 40000 equal blocks freed with cudaFreeAsync (each inserted at
// once, in the program's order) took 1.7 s in random order and 2.4 s in descending order
// (bench_policy BM_growth_free_async_equal_blocks).
//
// Best fit: the first block of the request's own bin that is large enough (the bin is sorted, so
// it is the best of that bin); otherwise the head of the next non-empty bin (every block there is
// larger than any in lower bins).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "gpumem/resources/block.h"

namespace gpumem::resources {

class FreeBins {
 public:
  // The bin of a block of `size` bytes (a multiple of kBlockAlign, >= kBlockAlign).
  static unsigned bin_of(uint64_t size) {
    const uint64_t units = size / kBlockAlign;
    if (units < kExact) return static_cast<unsigned>(units);
    const unsigned log = static_cast<unsigned>(std::bit_width(units)) - 1;  // >= kExactLog
    const unsigned sub = static_cast<unsigned>(units >> (log - kSubLog)) & (kSub - 1);
    return kExact + (log - kExactLog) * kSub + sub;
  }

  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }

  void insert(Block* b) {
    const unsigned bin = bin_of(b->size);
    b->bins = this;
    Block* after = nullptr;  // the last block ordered before b: its place in the list
    tree_insert(tree_[bin], b, after);
    Block* next = after ? after->bin_next : head_[bin];
    b->bin_prev = after;
    b->bin_next = next;
    (after ? after->bin_next : head_[bin]) = b;
    (next ? next->bin_prev : tail_[bin]) = b;
    bitmap_[bin / 64] |= uint64_t{1} << (bin % 64);
    ++count_;
  }

  void erase(Block* b) {
    const unsigned bin = bin_of(b->size);
    Block** link = &tree_[bin];
    while (*link != b) link = before(*link, b) ? &(*link)->bin_right : &(*link)->bin_left;
    *link = tree_merge(b->bin_left, b->bin_right);
    (b->bin_prev ? b->bin_prev->bin_next : head_[bin]) = b->bin_next;
    (b->bin_next ? b->bin_next->bin_prev : tail_[bin]) = b->bin_prev;
    if (head_[bin] == nullptr) bitmap_[bin / 64] &= ~(uint64_t{1} << (bin % 64));
    b->bins = nullptr;
    b->bin_prev = b->bin_next = b->bin_left = b->bin_right = nullptr;
    --count_;
  }

  // The smallest block with size >= bytes, lowest address among equals; nullptr when none.
  Block* best_fit(uint64_t bytes) const {
    const unsigned bin = bin_of(bytes);
    Block* best = nullptr;
    for (Block* t = tree_[bin]; t != nullptr;) {
      if (t->size >= bytes) {
        best = t;
        t = t->bin_left;
      } else {
        t = t->bin_right;
      }
    }
    if (best != nullptr) return best;
    const unsigned next = first_bin_from(bin + 1);
    return next < kBins ? head_[next] : nullptr;
  }

  // The largest block; nullptr when empty.
  Block* largest() const {
    for (unsigned w = kWords; w-- > 0;)
      if (bitmap_[w] != 0) return tail_[w * 64 + 63 - std::countl_zero(bitmap_[w])];
    return nullptr;
  }

  template <class Fn>
  void for_each(Fn&& fn) const {
    for_each_at_least(0, fn);
  }
  // Each block, largest first, until fn returns false.
  template <class Fn>
  void for_each_largest_first(Fn&& fn) const {
    for (unsigned w = kWords; w-- > 0;)
      for (uint64_t bits = bitmap_[w]; bits != 0;) {
        const unsigned top = 63 - static_cast<unsigned>(std::countl_zero(bits));
        for (Block* b = tail_[w * 64 + top]; b != nullptr; b = b->bin_prev)
          if (!fn(b)) return;
        bits &= ~(uint64_t{1} << top);
      }
  }
  // Each block with size >= bytes (and a few smaller ones of the first bin: fn checks).
  template <class Fn>
  void for_each_at_least(uint64_t bytes, Fn&& fn) const {
    for (unsigned bin = first_bin_from(bytes == 0 ? 0 : bin_of(bytes)); bin < kBins;
         bin = first_bin_from(bin + 1))
      for (Block* b = head_[bin]; b != nullptr; b = b->bin_next) fn(b);
  }

 private:
  static constexpr unsigned kExactLog = 6;  // blocks under 64 units (32 KiB) have a bin per size
  static constexpr unsigned kExact = 1u << kExactLog;
  static constexpr unsigned kSubLog = 3;  // then 8 bins per power of two
  static constexpr unsigned kSub = 1u << kSubLog;
  static constexpr unsigned kMaxLog = 63;  // units are below 2^55 (kMaxRequestBytes / 512)
  static constexpr unsigned kBins = kExact + (kMaxLog - kExactLog + 1) * kSub;
  static constexpr unsigned kWords = (kBins + 63) / 64;

  static bool before(const Block* a, const Block* b) {
    return a->size != b->size ? a->size < b->size : a->addr < b->addr;
  }
  // The treap's priority: a hash of the address (blocks are 512 B aligned), so that its shape is
  // that of a random tree whatever the order of insertion, without storing anything.
  static uint64_t priority(const Block* b) {
    return (b->addr / kBlockAlign) * 0x9E3779B97F4A7C15ull;
  }
  // Inserts b into the treap rooted at t (recursion depth: the tree's, O(log n) expected); on the
  // way down, sets `after` to the last block ordered before b (unchanged when none is).
  static void tree_insert(Block*& t, Block* b, Block*& after) {
    if (t == nullptr) {
      b->bin_left = b->bin_right = nullptr;
      t = b;
    } else if (before(t, b)) {
      after = t;
      tree_insert(t->bin_right, b, after);
      if (priority(t->bin_right) > priority(t)) {  // rotate left
        Block* r = t->bin_right;
        t->bin_right = r->bin_left;
        r->bin_left = t;
        t = r;
      }
    } else {
      tree_insert(t->bin_left, b, after);
      if (priority(t->bin_left) > priority(t)) {  // rotate right
        Block* l = t->bin_left;
        t->bin_left = l->bin_right;
        l->bin_right = t;
        t = l;
      }
    }
  }
  // Joins two treaps, every block of l before every block of r.
  static Block* tree_merge(Block* l, Block* r) {
    if (l == nullptr) return r;
    if (r == nullptr) return l;
    if (priority(l) > priority(r)) {
      l->bin_right = tree_merge(l->bin_right, r);
      return l;
    }
    r->bin_left = tree_merge(l, r->bin_left);
    return r;
  }

  // The first non-empty bin at or after `from`; kBins when none.
  unsigned first_bin_from(unsigned from) const {
    if (from >= kBins) return kBins;
    unsigned w = from / 64;
    uint64_t bits = bitmap_[w] & (~uint64_t{0} << (from % 64));
    while (bits == 0) {
      if (++w == kWords) return kBins;
      bits = bitmap_[w];
    }
    return w * 64 + static_cast<unsigned>(std::countr_zero(bits));
  }

  Block* head_[kBins] = {};
  Block* tail_[kBins] = {};
  Block* tree_[kBins] = {};  // each bin's treap root
  uint64_t bitmap_[kWords] = {};
  size_t count_ = 0;
};

}  // namespace gpumem::resources
