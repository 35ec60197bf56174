// The free blocks of one (kind, stream) list, indexed for best fit by (size, address) without
// allocating: TLSF-style size bins (exact bins up to 32 KiB, then 8 bins per power of two), each
// an intrusive doubly-linked list sorted by (size, address), and a bitmap of non-empty bins.
//
// Best fit: scan the request's own bin for the first block that is large enough (the bin is sorted,
// so it is the best of that bin); otherwise the head of the next non-empty bin (every block there
// is larger than any in lower bins). Insertion walks its bin to keep it sorted: constant time when
// the bin is short (the usual case) or the block goes last, linear in the bin's length otherwise
// (many free blocks of nearly equal size).
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
    Block* after = tail_[bin];  // the last block ordered before b
    if (Block* h = hint_[bin]; h != nullptr && before(h, b) && before(b, after)) {
      // After the bin's last insertion: forward from there. A batch inserted in address order
      // (BlockManager::make_all_safe) then walks each bin once, where walking back from the tail
      // each time was quadratic (40000 equal blocks freed in random order: 4.3 s).
      after = h;
      while (after->bin_next != nullptr && before(after->bin_next, b)) after = after->bin_next;
    } else {
      while (after != nullptr && before(b, after)) after = after->bin_prev;
    }
    hint_[bin] = b;
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
    if (hint_[bin] == b) hint_[bin] = b->bin_prev;
    (b->bin_prev ? b->bin_prev->bin_next : head_[bin]) = b->bin_next;
    (b->bin_next ? b->bin_next->bin_prev : tail_[bin]) = b->bin_prev;
    if (head_[bin] == nullptr) bitmap_[bin / 64] &= ~(uint64_t{1} << (bin % 64));
    b->bins = nullptr;
    b->bin_prev = b->bin_next = nullptr;
    --count_;
  }

  // The smallest block with size >= bytes, lowest address among equals; nullptr when none.
  Block* best_fit(uint64_t bytes) const {
    const unsigned bin = bin_of(bytes);
    for (Block* b = head_[bin]; b != nullptr; b = b->bin_next)
      if (b->size >= bytes) return b;
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
  Block* hint_[kBins] = {};  // the bin's last inserted block still in it (or one before it)
  uint64_t bitmap_[kWords] = {};
  size_t count_ = 0;
};

}  // namespace gpumem::resources
