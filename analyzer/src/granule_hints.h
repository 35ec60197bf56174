// Where a search over a sorted array last found each granule of addresses: a direct-mapped table
// of indexes into the array, tried before the search. The caller checks a hint against the array
// before it trusts it, so a stale one (the array changed since) costs the search, never a wrong
// answer; nothing needs to invalidate the table. SegmentSpace keeps one over its segments and
// FreeExtents one over its buckets: a pool's blocks come and go in the same places.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace gpumem::analyzer {

template <size_t kSlots>
class GranuleHints {
 public:
  // Made on demand (an NVTX heap's own space has one segment and few extents, and there can be
  // thousands of heaps): until then on() is false and slot() must not be called.
  bool on() const { return table_ != nullptr; }
  void start() {
    if (!table_) table_ = std::make_unique<std::array<uint32_t, kSlots>>();  // all 0
  }
  // Granules of 2^shift bytes.
  void set_granule_shift(unsigned shift) { shift_ = shift; }
  uint32_t& slot(uint64_t address) const { return (*table_)[(address >> shift_) % kSlots]; }

 private:
  std::unique_ptr<std::array<uint32_t, kSlots>> table_;
  unsigned shift_ = 20;
};

}  // namespace gpumem::analyzer
