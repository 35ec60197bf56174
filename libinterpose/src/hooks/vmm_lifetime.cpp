// See vmm_lifetime.h.
#include "hooks/vmm_lifetime.h"

#include <mutex>

namespace gpumem::vmm {
namespace {

constexpr size_t kSlots = size_t{1} << 16;  // per table; a power of two
constexpr uint64_t kEmpty = 0;
constexpr uint64_t kTombstone = ~uint64_t{0};

struct HandleSlot {
  uint64_t handle;
  uint32_t references;
  uint32_t mappings;
};
struct MappingSlot {
  uint64_t ptr;
  uint64_t size;
  uint64_t handle;
};

std::mutex g_mu;
HandleSlot g_handles[kSlots];
MappingSlot g_mappings[kSlots];
size_t g_live_mappings = 0;  // mapping slots in use: an unmap with none skips the table's scan

size_t home(uint64_t key) {
  return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 48) & (kSlots - 1);
}

// The slot holding key, or nullptr. Caller holds g_mu.
template <class Slot, uint64_t Slot::*Key>
Slot* find(Slot* table, uint64_t key) {
  if (key == kEmpty || key == kTombstone) return nullptr;
  for (size_t i = home(key), n = 0; n < kSlots; i = (i + 1) & (kSlots - 1), ++n) {
    if (table[i].*Key == key) return &table[i];
    if (table[i].*Key == kEmpty) return nullptr;
  }
  return nullptr;
}

// A free slot for key (the first tombstone or empty one on its probe path), or nullptr when full.
template <class Slot, uint64_t Slot::*Key>
Slot* claim(Slot* table, uint64_t key) {
  if (key == kEmpty || key == kTombstone) return nullptr;
  for (size_t i = home(key), n = 0; n < kSlots; i = (i + 1) & (kSlots - 1), ++n)
    if (table[i].*Key == kEmpty || table[i].*Key == kTombstone) return &table[i];
  return nullptr;
}

// Frees slot s of table: empty when the next slot is empty (no probe path runs through s), else
// a tombstone. Without this, create/release churn would leave tombstones everywhere, and every
// lookup of an unknown key would probe the whole table.
template <class Slot, uint64_t Slot::*Key>
void vacate(Slot* table, Slot* s) {
  const size_t next = (static_cast<size_t>(s - table) + 1) & (kSlots - 1);
  s->*Key = table[next].*Key == kEmpty ? kEmpty : kTombstone;
}

HandleSlot* find_handle(uint64_t h) {
  return find<HandleSlot, &HandleSlot::handle>(g_handles, h);
}

// Drops one mapping of s->handle; true when that handle's memory goes with it.
bool drop_mapping(MappingSlot* s) {
  HandleSlot* h = find_handle(s->handle);
  vacate<MappingSlot, &MappingSlot::ptr>(g_mappings, s);
  --g_live_mappings;
  if (h == nullptr || h->mappings == 0) return false;
  if (--h->mappings != 0 || h->references != 0) return false;
  vacate<HandleSlot, &HandleSlot::handle>(g_handles, h);
  return true;
}

}  // namespace

void created(uint64_t handle) {
  std::lock_guard lock(g_mu);  // a live handle is never handed out twice: no lookup first
  if (HandleSlot* s = claim<HandleSlot, &HandleSlot::handle>(g_handles, handle))
    *s = HandleSlot{handle, 1, 0};
}

void retained(uint64_t handle) {
  std::lock_guard lock(g_mu);
  if (HandleSlot* s = find_handle(handle)) ++s->references;
}

void mapped(uint64_t ptr, uint64_t size, uint64_t handle) {
  std::lock_guard lock(g_mu);
  HandleSlot* h = find_handle(handle);
  if (h == nullptr) return;
  MappingSlot* m = claim<MappingSlot, &MappingSlot::ptr>(g_mappings, ptr);
  if (m == nullptr) return;  // not tracked: the handle's free comes at its release
  *m = MappingSlot{ptr, size, handle};
  ++g_live_mappings;
  ++h->mappings;
}

Release release(uint64_t handle) {
  std::lock_guard lock(g_mu);
  HandleSlot* h = find_handle(handle);
  if (h == nullptr || h->references == 0) return Release::untracked;
  if (--h->references != 0 || h->mappings != 0) return Release::still_live;
  vacate<HandleSlot, &HandleSlot::handle>(g_handles, h);
  return Release::last;
}

void release_failed(uint64_t handle, Release what) {
  if (what == Release::untracked) return;
  if (what == Release::last) return created(handle);
  std::lock_guard lock(g_mu);
  if (HandleSlot* h = find_handle(handle)) ++h->references;
}

size_t unmapped(uint64_t ptr, uint64_t size, uint64_t* gone, size_t max) {
  std::lock_guard lock(g_mu);
  size_t n = 0;
  const uint64_t end = ptr + size;
  auto drop = [&](MappingSlot* m) {
    const uint64_t handle = m->handle;
    if (drop_mapping(m)) gone[n++] = handle;
  };
  // The usual range is one mapping, or mappings laid end to end: follow them. Stops with gone[]
  // full, leaving the rest of the range's mappings for the caller's next call.
  uint64_t at = ptr;
  while (at < end && n < max) {
    MappingSlot* m = find<MappingSlot, &MappingSlot::ptr>(g_mappings, at);
    if (m == nullptr) break;
    at += m->size;
    drop(m);
  }
  if (at >= end || n == max || g_live_mappings == 0) return n;
  // A range with holes: every mapping that starts inside it.
  for (MappingSlot& m : g_mappings) {
    if (n == max) break;
    if (m.ptr != kEmpty && m.ptr != kTombstone && m.ptr >= ptr && m.ptr < end) drop(&m);
  }
  return n;
}

}  // namespace gpumem::vmm
