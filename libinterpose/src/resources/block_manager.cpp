#include "resources/block_manager.h"

#include <algorithm>
#include <iterator>

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

Block* BlockManager::new_block() {
  if (spare_blocks_.empty()) return new Block;
  Block* b = spare_blocks_.back();
  spare_blocks_.pop_back();
  *b = Block{};
  return b;
}

void BlockManager::delete_block(Block* b) {
  spare_blocks_.push_back(b);
}

void BlockManager::insert_free(Block* b) {
  if (free_nodes_.empty()) {
    b->free_pos = free_.insert(b).first;
  } else {
    FreeSet::node_type node = std::move(free_nodes_.back());
    free_nodes_.pop_back();
    node.value() = b;
    b->free_pos = free_.insert(std::move(node)).position;
  }
  if (b->stream != kAnyStream) ++tagged_free_;
}

void BlockManager::erase_free(Block* b) {
  free_nodes_.push_back(free_.extract(b->free_pos));
  if (b->stream != kAnyStream) --tagged_free_;
}

void BlockManager::unlink(Block* b) {
  if (b->prev) b->prev->next = b->next;
  if (b->next) b->next->prev = b->prev;
}

void BlockManager::add_segment(uintptr_t addr, uint64_t size, uint8_t kind) {
  auto* seg = new Segment{addr, size, kind, nullptr};
  Block* b = new_block();
  b->addr = addr;
  b->size = size;
  b->segment = seg;
  b->kind = kind;
  seg->first = b;
  segments_.emplace(addr, seg);
  insert_free(b);
}

Block* BlockManager::fit_in(uint64_t bytes, uint8_t kind, uint64_t stream) const {
  auto it = free_.lower_bound(Key{kind, stream, bytes, 0});
  if (it == free_.end() || (*it)->kind != kind || (*it)->stream != stream) return nullptr;
  return *it;
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
    rest->addr = b->addr + rounded;
    rest->size = b->size - rounded;
    rest->stream = b->stream;
    rest->segment = b->segment;
    rest->kind = b->kind;
    rest->prev = b;
    rest->next = b->next;
    if (b->next) b->next->prev = rest;
    b->next = rest;
    b->size = rounded;
    insert_free(rest);
  }
  b->state = BlockState::live;
  b->requested = requested;
  b->stream = kAnyStream;
  if (live_nodes_.empty()) {
    live_.emplace(b->addr, b);
  } else {
    LiveMap::node_type node = std::move(live_nodes_.back());
    live_nodes_.pop_back();
    node.key() = b->addr;
    node.mapped() = b;
    live_.insert(std::move(node));
  }
  return b->addr;
}

Block* BlockManager::find_live(uintptr_t addr) const {
  auto it = live_.find(addr);
  return it == live_.end() ? nullptr : it->second;
}

void BlockManager::release(Block* b, bool stream_ordered, uint64_t stream) {
  live_nodes_.push_back(live_.extract(b->addr));
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

void BlockManager::make_all_safe() {
  // Tagged blocks first. Merging only joins blocks of equal tags, so a tagged block still waiting
  // in scratch_ is never merged away (and freed) before its turn.
  // Synchronous frees (the common case) tag nothing: skip the walk over every free block.
  scratch_.clear();
  if (tagged_free_ > 0)
    for (Block* b : free_)
      if (b->stream != kAnyStream) scratch_.push_back(b);
  for (Block* b : scratch_) {
    erase_free(b);
    b->stream = kAnyStream;
    insert_coalesced(b);
  }
  while (!pending_.empty()) {
    Block* b = pending_.front();
    pending_.pop_front();
    b->stream = kAnyStream;
    insert_coalesced(b);
  }
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
  // The last block of each (kind, stream) run of the ordered set is that run's largest.
  for (auto it = free_.begin(); it != free_.end();) {
    const Block* b = *it;
    Key next_run = b->stream == kAnyStream ? Key{static_cast<uint8_t>(b->kind + 1), 0, 0, 0}
                                           : Key{b->kind, b->stream + 1, 0, 0};
    auto run_end =
        b->kind == 0xFF && b->stream == kAnyStream ? free_.end() : free_.lower_bound(next_run);
    largest = std::max(largest, (*std::prev(run_end))->size);
    it = run_end;
  }
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
