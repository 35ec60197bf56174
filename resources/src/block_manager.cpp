#include "gpumem/resources/block_manager.h"

#include <algorithm>
#include <array>
#include <bit>
#include <iterator>
#include <utility>

namespace gpumem::resources {

BlockManager::~BlockManager() {
  for (auto& [addr, seg] : segments_) {
    for (Block* b = seg->first; b != nullptr;) {
      Block* next = b->next;
      delete b;
      b = next;
    }
    delete seg;
  }
  for (Block* b : spare_blocks_) delete b;
}

FreeBins* BlockManager::bins_for(uint8_t kind, uint64_t stream, bool create) {
  if (stream == kAnyStream) {
    auto& bins = any_bins_[kind];
    if (!bins && create) bins = std::make_unique<FreeBins>();
    return bins.get();
  }
  auto it = tagged_bins_.find({kind, stream});
  if (it != tagged_bins_.end()) return it->second.get();
  if (!create) return nullptr;
  std::unique_ptr<FreeBins> bins;
  if (spare_bins_.empty()) {
    bins = std::make_unique<FreeBins>();
  } else {
    bins = std::move(spare_bins_.back());
    spare_bins_.pop_back();
  }
  return tagged_bins_.emplace(std::pair{kind, stream}, std::move(bins)).first->second.get();
}

void BlockManager::add_segment(uintptr_t addr, uint64_t size, uint8_t kind) {
  auto* seg = new Segment{addr, size, kind, nullptr};
  Block* b = new_block();
  *b = Block{.addr = addr, .size = size, .segment = seg, .kind = kind};
  seg->first = b;
  segments_.emplace(addr, seg);
  insert_free(b);
}

Block* BlockManager::fit_in(uint64_t bytes, uint8_t kind, uint64_t stream) const {
  const FreeBins* bins = bins_for(kind, stream);
  return bins ? bins->best_fit(bytes) : nullptr;
}

Block* BlockManager::find_fit(uint64_t bytes, uint8_t kind, uint64_t stream) const {
  Block* any = fit_in(bytes, kind, kAnyStream);
  if (tagged_free_ == 0 || stream == kAnyStream) return any;
  Block* same = fit_in(bytes, kind, stream);
  if (same == nullptr) return any;
  if (any == nullptr) return same;
  // Best fit across both lists; equal sizes go to the lower address.
  if (same->size != any->size) return same->size < any->size ? same : any;
  return same->addr < any->addr ? same : any;
}

uintptr_t BlockManager::take(Block* b, uint64_t rounded, uint64_t requested) {
  erase_free(b);
  if (b->size - rounded >= kBlockAlign) {
    Block* rest = new_block();
    *rest = Block{.addr = b->addr + rounded,
                  .size = b->size - rounded,
                  .stream = b->stream,
                  .prev = b,
                  .next = b->next,
                  .segment = b->segment,
                  .kind = b->kind};
    if (b->next) b->next->prev = rest;
    b->next = rest;
    b->size = rounded;
    insert_free(rest);
  }
  b->state = BlockState::live;
  b->requested = requested;
  b->stream = kAnyStream;
  live_.insert(b);
  return b->addr;
}

void BlockManager::release(Block* b, bool stream_ordered, uint64_t stream) {
  live_.erase(b);
  b->requested = 0;
  if (stream_ordered) {
    b->stream = stream;
    insert_coalesced(b);
  } else {
    b->state = BlockState::pending;
    pending_.push_back(b);
  }
}

void BlockManager::insert_coalesced(Block* b) {
  b->state = BlockState::free;
  Block* prev = b->prev;
  if (prev && prev->state == BlockState::free && prev->stream == b->stream) {
    erase_free(prev);
    prev->size += b->size;
    unlink(b);
    delete_block(b);
    b = prev;
  }
  Block* next = b->next;
  if (next && next->state == BlockState::free && next->stream == b->stream) {
    erase_free(next);
    b->size += next->size;
    unlink(next);
    delete_block(next);
  }
  insert_free(b);
}

void BlockManager::merge_run(Block* b) {
  auto joins = [](const Block* n) {
    return n != nullptr && n->state == BlockState::free && n->stream == kAnyStream;
  };
  Block* first = b;
  while (joins(first->prev)) first = first->prev;
  if (first->bins) erase_free(first);
  while (joins(first->next)) {
    Block* n = first->next;
    first->size += n->size;
    unlink(n);
    if (n->bins) {  // free before the synchronization: not listed in pending_, recycle it now
      erase_free(n);
      delete_block(n);
    } else {  // pending: still listed in pending_; leave a husk (size 0) for make_all_safe
      n->size = 0;
    }
  }
  insert_free(first);
}

// A radix sort (least significant digit first, 8 bits a pass, over the offsets from the lowest
// address): O(n), where std::sort through the blocks' pointers missed the cache at each
// comparison and made a synchronization of a few thousand pending blocks cost more than the
// order saved (a quarter of a `gpumem replay` limit search's time; docs/performance.md).
void BlockManager::sort_by_address(std::vector<std::pair<uintptr_t, Block*>>& v,
                                   std::vector<std::pair<uintptr_t, Block*>>& scratch) {
  if (v.size() < 64) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return;
  }
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (const auto& e : v) {
    lo = std::min(lo, e.first);
    hi = std::max(hi, e.first);
  }
  constexpr int kDigitBits = 8;  // 1 KiB of counts on the stack: any thread may synchronize
  constexpr uintptr_t kDigits = uintptr_t{1} << kDigitBits;
  scratch.resize(v.size());
  const int bits = static_cast<int>(std::bit_width(hi - lo));
  for (int shift = 0; shift < bits; shift += kDigitBits) {
    std::array<uint32_t, kDigits> start{};
    for (const auto& e : v) ++start[((e.first - lo) >> shift) & (kDigits - 1)];
    uint32_t sum = 0;
    for (uint32_t& c : start) sum += std::exchange(c, sum);
    for (const auto& e : v) scratch[start[((e.first - lo) >> shift) & (kDigits - 1)]++] = e;
    v.swap(scratch);
  }
}

void BlockManager::make_all_safe() {
  // Tagged blocks first. Merging only joins blocks of equal tags, so a tagged block still waiting
  // in scratch_ is never merged away (and freed) before its turn.
  // Synchronous frees (the common case) tag nothing: skip the walk over every free block.
  // Tagged blocks are walked in (kind, stream, size, address) order, as before.
  scratch_.clear();
  if (tagged_free_ > 0)
    for (const auto& [key, bins] : tagged_bins_)
      bins->for_each([&](Block* b) { scratch_.push_back(b); });
  for (Block* b : scratch_) {
    erase_free(b);
    b->stream = kAnyStream;
    insert_coalesced(b);
  }
  // Every tagged list is empty now: keep a few for the next stream-ordered frees, drop the rest
  // (stream handles come and go).
  for (auto& [key, bins] : tagged_bins_)
    if (spare_bins_.size() < kSpareBins) spare_bins_.push_back(std::move(bins));
  tagged_bins_.clear();
  // Pending blocks: mark them all free first, then merge each maximal run of free neighbours once
  // (one index insertion per run instead of an erase and an insertion per block). The result is
  // the same as merging them one by one: runs are maximal either way and keep their first block.
  // In address order: the bins' treaps are then descended along nearly the same path from one
  // insertion to the next (the blocks' nodes stay in cache).
  by_address_.clear();
  for (Block* b : pending_) {
    b->state = BlockState::free;
    b->stream = kAnyStream;
    by_address_.emplace_back(b->addr, b);
  }
  sort_by_address(by_address_, sort_scratch_);
  for (size_t i = 0; i < by_address_.size(); ++i) pending_[i] = by_address_[i].second;
  for (Block* b : pending_)
    if (b->size != 0 && b->bins == nullptr) merge_run(b);  // else: already merged into a run
  for (Block* b : pending_)
    if (b->size == 0) delete_block(b);
  pending_.clear();
}

bool BlockManager::lookup(uintptr_t p, BlockInfo* out) const {
  auto seg_it = segments_.upper_bound(p);
  if (seg_it == segments_.begin()) return false;
  const Segment* seg = std::prev(seg_it)->second;
  if (p >= seg->addr + seg->size) return false;
  const Block* hit = find_live(p);
  for (const Block* b = seg->first; hit == nullptr && b != nullptr; b = b->next)
    if (p >= b->addr && p < b->addr + b->size) hit = b;
  if (hit == nullptr || hit->state != BlockState::live) return false;
  if (out) {
    out->base = reinterpret_cast<void*>(hit->addr);
    out->bytes = hit->requested;
    out->block_bytes = hit->size;
    out->segment_base = reinterpret_cast<void*>(seg->addr);
    out->segment_bytes = seg->size;
  }
  return true;
}

uint64_t BlockManager::largest_free() const {
  uint64_t largest = 0;
  auto consider = [&](const FreeBins* bins) {
    if (const Block* b = bins ? bins->largest() : nullptr) largest = std::max(largest, b->size);
  };
  for (const auto& bins : any_bins_) consider(bins.get());
  for (const auto& [key, bins] : tagged_bins_) consider(bins.get());
  for (const Block* b : pending_) largest = std::max(largest, b->size);
  return largest;
}

std::vector<SegmentView> BlockManager::snapshot() const {
  std::vector<SegmentView> out;
  out.reserve(segments_.size());
  for (const auto& [addr, seg] : segments_) {
    SegmentView v{seg->addr, seg->size, seg->kind, {}};
    for (const Block* b = seg->first; b != nullptr; b = b->next)
      v.blocks.push_back({b->addr, b->size, b->requested, b->stream, b->state});
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace gpumem::resources
