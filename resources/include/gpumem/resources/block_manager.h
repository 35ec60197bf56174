// The block bookkeeping both pools share: segments cut into address-ordered blocks, best fit over
// the free blocks ordered by (kind, stream, size, address), splitting and coalescing with address
// neighbours inside one segment, and the "pending" list of the reuse rule (docs/policies.md).
//
// Not thread-safe: the owning pool holds its lock around every call. Steady state is free of heap
// allocation: block objects are recycled, the free index (free_bins.h) is intrusive and the live
// table (live_table.h) is flat; both only allocate when they grow.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "gpumem/resources/block.h"
#include "gpumem/resources/free_bins.h"
#include "gpumem/resources/live_table.h"
#include "gpumem/resources/request.h"

namespace gpumem::resources {

// A copy of the layout, for tests, replay and fragmentation numbers.
struct BlockView {
  uintptr_t addr;
  uint64_t size;
  uint64_t requested;
  uint64_t stream;
  BlockState state;
};
struct SegmentView {
  uintptr_t addr;
  uint64_t size;
  uint8_t kind;
  std::vector<BlockView> blocks;  // in address order, covering the segment exactly
};

class BlockManager {
 public:
  BlockManager() = default;
  ~BlockManager();
  BlockManager(const BlockManager&) = delete;
  BlockManager& operator=(const BlockManager&) = delete;

  // A new segment becomes one free block, safe on every stream.
  void add_segment(uintptr_t addr, uint64_t size, uint8_t kind);
  // Best fit: the smallest free block of `kind` with size >= bytes that is reusable on `stream`
  // (tagged with it or kAnyStream), lowest address among equals. nullptr when none.
  Block* find_fit(uint64_t bytes, uint8_t kind, uint64_t stream) const;
  // Hands out `b` (from find_fit) for `rounded` bytes; a remainder of >= kBlockAlign is split off
  // as a free block with the same stream tag. Returns the address.
  uintptr_t take(Block* b, uint64_t rounded, uint64_t requested);
  Block* find_live(uintptr_t addr) const { return live_.find(addr); }
  // Frees a live block: stream-ordered -> free at once, tagged with `stream`, coalesced with free
  // neighbours of the same tag; otherwise -> pending (not reusable, not coalesced).
  void release(Block* b, bool stream_ordered, uint64_t stream);
  // True when a device synchronization would make more blocks reusable.
  bool has_unsafe() const { return !pending_.empty() || tagged_free_ > 0; }
  // Call after a device synchronization: every pending and stream-tagged block becomes free on
  // every stream, and all are coalesced.
  void make_all_safe();
  // Sorts (address, block) pairs by address, in O(n) (make_all_safe's order; `scratch` is its
  // second buffer, kept for its capacity).
  static void sort_by_address(std::vector<std::pair<uintptr_t, Block*>>& v,
                              std::vector<std::pair<uintptr_t, Block*>>& scratch);
  // Removes each segment that is a single free block and for which release(addr, size) returns
  // true (the upstream gave it back). Returns the bytes removed.
  template <class Release>
  uint64_t remove_empty_segments(Release&& release);
  template <class Fn>
  void for_each_segment(Fn&& fn) const {
    for (const auto& [addr, seg] : segments_) fn(addr, seg->size);
  }

  // Every block of every segment in address order (a walk over all blocks: for rare paths).
  template <class Fn>
  void for_each_block(Fn&& fn) const {
    for (const auto& [addr, seg] : segments_)
      for (const Block* b = seg->first; b != nullptr; b = b->next) fn(*b);
  }

  // Each free block reusable on every stream (not pending, not tagged) of at least `bytes`, in
  // no particular order: fn(const Block&).
  template <class Fn>
  void for_each_free_at_least(uint64_t bytes, Fn&& fn) const {
    for (const auto& bins : any_bins_)
      if (bins != nullptr)
        bins->for_each_at_least(bytes, [&](const Block* b) {
          if (b->size >= bytes) fn(*b);
        });
  }
  // Each block the program does not hold (free, stream-tagged or pending): each free list's
  // blocks largest first, that list left at fn's first false; then the pending ones (fn's answer
  // ignored). fn(const Block&) -> bool.
  template <class Fn>
  void for_each_unheld_largest_first(Fn&& fn) const {
    auto list = [&](const FreeBins* bins) {
      if (bins != nullptr) bins->for_each_largest_first([&](const Block* b) { return fn(*b); });
    };
    for (const auto& bins : any_bins_) list(bins.get());
    for (const auto& [key, bins] : tagged_bins_) list(bins.get());
    for (const Block* b : pending_) (void)fn(*b);
  }
  bool lookup(uintptr_t p, BlockInfo* out) const;
  // True when p lies inside one of the segments (live, free or pending block alike).
  bool contains(uintptr_t p) const {
    auto it = segments_.upper_bound(p);
    if (it == segments_.begin()) return false;
    --it;
    return p - it->first < it->second->size;
  }
  // Largest block not held by the program (free or pending).
  uint64_t largest_free() const;
  std::vector<SegmentView> snapshot() const;
  size_t segment_count() const { return segments_.size(); }
  size_t pending_count() const { return pending_.size(); }

 private:
  // The free blocks of `kind` reusable on `stream` only (kAnyStream: everywhere); created on first
  // use when `create`.
  FreeBins* bins_for(uint8_t kind, uint64_t stream, bool create);
  const FreeBins* bins_for(uint8_t kind, uint64_t stream) const {
    if (stream == kAnyStream) return any_bins_[kind].get();  // the common case, inline
    auto it = tagged_bins_.find({kind, stream});
    return it == tagged_bins_.end() ? nullptr : it->second.get();
  }
  Block* fit_in(uint64_t bytes, uint8_t kind, uint64_t stream) const;
  void insert_free(Block* b) {
    FreeBins* bins = b->stream == kAnyStream ? any_bins_[b->kind].get() : nullptr;
    if (bins == nullptr) bins = bins_for(b->kind, b->stream, true);
    bins->insert(b);
    if (b->stream != kAnyStream) ++tagged_free_;
  }
  void erase_free(Block* b) {
    b->bins->erase(b);
    if (b->stream != kAnyStream) --tagged_free_;
  }
  void insert_coalesced(Block* b);
  // make_all_safe: merges the run of free, unrestricted blocks around `b` into its first block.
  void merge_run(Block* b);
  static void unlink(Block* b) {
    if (b->prev) b->prev->next = b->next;
    if (b->next) b->next->prev = b->prev;
  }
  // Uninitialised (the caller assigns a whole Block): recycled, or new when none is spare.
  Block* new_block() {
    if (spare_blocks_.empty()) return new Block;
    Block* b = spare_blocks_.back();
    spare_blocks_.pop_back();
    return b;
  }
  void delete_block(Block* b) { spare_blocks_.push_back(b); }

  std::map<uintptr_t, Segment*> segments_;
  std::array<std::unique_ptr<FreeBins>, 256> any_bins_;  // by kind: blocks safe on every stream
  std::map<std::pair<uint8_t, uint64_t>, std::unique_ptr<FreeBins>> tagged_bins_;  // (kind, stream)
  LiveTable live_;
  std::vector<Block*> pending_;  // in the order they were freed
  uint64_t tagged_free_ = 0;     // free blocks whose stream tag is not kAnyStream
  // Recycled storage, so the common path does not call malloc.
  std::vector<Block*> spare_blocks_;
  static constexpr size_t kSpareBins = 4;
  std::vector<std::unique_ptr<FreeBins>> spare_bins_;
  std::vector<Block*> scratch_;
  // make_all_safe's pending blocks by address, and its sort's second buffer.
  std::vector<std::pair<uintptr_t, Block*>> by_address_, sort_scratch_;
};

template <class Release>
uint64_t BlockManager::remove_empty_segments(Release&& release) {
  uint64_t removed = 0;
  for (auto it = segments_.begin(); it != segments_.end();) {
    Segment* seg = it->second;
    Block* only = seg->first;
    if (only->next != nullptr || only->state != BlockState::free ||
        !release(seg->addr, seg->size)) {
      ++it;
      continue;
    }
    erase_free(only);
    delete_block(only);
    removed += seg->size;
    delete seg;
    it = segments_.erase(it);
  }
  return removed;
}

}  // namespace gpumem::resources
