// See vmm_lifetime.h.
#include "hooks/vmm_lifetime.h"

#include <pthread.h>

#include <mutex>

namespace gpumem::vmm {
namespace {

constexpr size_t kSlots = size_t{1} << 16;  // per table; a power of two
constexpr uint64_t kEmpty = 0;
constexpr uint64_t kTombstone = ~uint64_t{0};

enum class Origin : uint8_t { created, imported, imported_recorded, pool_memory };

struct HandleSlot {
  uint64_t handle;
  uint32_t references;
  uint32_t mappings;
  uint64_t import_address;  // Origin::imported_recorded: where its alloc was recorded
  Origin origin;
  uint8_t lookup;  // the import's trace::Lookup
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

// fork() while another thread holds g_mu would leave the child's copy locked by a thread the
// child does not have: its first VMM call would wait forever. The forking thread holds it across
// fork instead, so the tables are whole and unlocked on both sides. No lock is taken under g_mu,
// so these handlers wait for nothing but the section in progress, whatever their order.
void lock_for_fork() {
  g_mu.lock();
}
void unlock_after_fork() {
  g_mu.unlock();
}
[[maybe_unused]] const int g_fork_handlers =
    pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);

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

// Drops one mapping of s->handle; true when that handle's memory goes with it (*import_address:
// where an imported handle's alloc was recorded, else 0).
bool drop_mapping(MappingSlot* s, uint64_t* import_address) {
  HandleSlot* h = find_handle(s->handle);
  vacate<MappingSlot, &MappingSlot::ptr>(g_mappings, s);
  --g_live_mappings;
  if (h == nullptr || h->mappings == 0) return false;
  if (--h->mappings != 0 || h->references != 0) return false;
  *import_address = h->origin == Origin::imported_recorded ? h->import_address : 0;
  const bool recorded = h->origin != Origin::pool_memory;  // the pool's memory is its own
  vacate<HandleSlot, &HandleSlot::handle>(g_handles, h);
  return recorded;
}

// A new slot for handle with one reference. Caller holds g_mu.
void claim_handle(uint64_t handle, Origin origin, uint8_t lookup, uint64_t import_address) {
  if (HandleSlot* s = claim<HandleSlot, &HandleSlot::handle>(g_handles, handle))
    *s = HandleSlot{handle, 1, 0, import_address, origin, lookup};
}

}  // namespace

void created(uint64_t handle) {
  std::lock_guard lock(g_mu);  // a live handle is never handed out twice: no lookup first
  claim_handle(handle, Origin::created, 0, 0);
}

void imported(uint64_t handle, uint8_t lookup) {
  std::lock_guard lock(g_mu);
  if (HandleSlot* s = find_handle(handle))
    ++s->references;
  else
    claim_handle(handle, Origin::imported, lookup, 0);
}

void retained(uint64_t handle) {
  std::lock_guard lock(g_mu);
  if (HandleSlot* s = find_handle(handle)) ++s->references;
}

void retained_pool_memory(uint64_t handle) {
  std::lock_guard lock(g_mu);
  if (HandleSlot* s = find_handle(handle))
    ++s->references;
  else
    claim_handle(handle, Origin::pool_memory, 0, 0);
}

bool mapped(uint64_t ptr, uint64_t size, uint64_t handle, uint8_t* import_lookup) {
  std::lock_guard lock(g_mu);
  HandleSlot* h = find_handle(handle);
  if (h == nullptr) return false;
  const bool first_import = h->origin == Origin::imported;
  if (first_import) {
    h->origin = Origin::imported_recorded;
    h->import_address = ptr;
    *import_lookup = h->lookup;
  }
  MappingSlot* m = claim<MappingSlot, &MappingSlot::ptr>(g_mappings, ptr);
  if (m == nullptr) return first_import;  // not tracked: the handle's free comes at its release
  *m = MappingSlot{ptr, size, handle};
  ++g_live_mappings;
  ++h->mappings;
  return first_import;
}

Release release(uint64_t handle, uint64_t* import_address) {
  std::lock_guard lock(g_mu);
  HandleSlot* h = find_handle(handle);
  if (h == nullptr || h->references == 0) return Release::untracked;
  if (--h->references != 0 || h->mappings != 0) return Release::still_live;
  const Origin origin = h->origin;
  *import_address = h->import_address;
  vacate<HandleSlot, &HandleSlot::handle>(g_handles, h);
  switch (origin) {
    case Origin::created: return Release::last;
    case Origin::imported: return Release::unmapped_import;
    case Origin::imported_recorded: return Release::last_import;
    case Origin::pool_memory: return Release::pool_memory;
  }
  return Release::untracked;
}

void release_failed(uint64_t handle, Release what, uint64_t import_address) {
  std::lock_guard lock(g_mu);
  switch (what) {
    case Release::untracked: return;
    case Release::last: return claim_handle(handle, Origin::created, 0, 0);
    case Release::unmapped_import: return claim_handle(handle, Origin::imported, 0, 0);
    case Release::last_import:
      return claim_handle(handle, Origin::imported_recorded, 0, import_address);
    case Release::pool_memory: return claim_handle(handle, Origin::pool_memory, 0, 0);
    case Release::still_live:
      if (HandleSlot* h = find_handle(handle)) ++h->references;
      return;
  }
}

size_t unmapped(uint64_t ptr, uint64_t size, Gone* gone, size_t max) {
  std::lock_guard lock(g_mu);
  size_t n = 0;
  const uint64_t end = ptr + size;
  auto drop = [&](MappingSlot* m) {
    const uint64_t handle = m->handle;
    uint64_t import_address = 0;
    if (drop_mapping(m, &import_address)) gone[n++] = Gone{handle, import_address};
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
