// See live_map.h.
#include "live_map.h"

#include <sys/mman.h>

namespace gpumem {
namespace {
uint64_t pack(const LiveInfo& i) {
  return (i.bytes << 16) | (static_cast<uint64_t>(i.route & 0x3) << 12) |
         (static_cast<uint64_t>(static_cast<uint8_t>(i.device + 1)) << 4) | (i.kind & 0xF);
}
LiveInfo unpack(uint64_t v) {
  LiveInfo i;
  i.bytes = v >> 16;
  i.device = static_cast<int>((v >> 4) & 0xFF) - 1;
  i.kind = static_cast<uint16_t>(v & 0xF);
  i.route = static_cast<uint8_t>((v >> 12) & 0x3);
  return i;
}

constexpr unsigned kWindowSlotsLog2 = 7;  // 128 slots per 64 KiB window of 512-byte granules
constexpr uint64_t kFibonacci = 0x9E3779B97F4A7C15ull;
}  // namespace

// Device addresses: the home slot keeps neighbours together. Addresses in one 64 KiB window (a
// pool's blocks are 512-byte multiples) get consecutive slots of one 2 KiB run; windows are spread
// by a multiplicative hash. A scattered hash puts every new block address on a table page of its
// own: thousands of first-touch page faults (~1 us each) while a pool walks its segments
// (measured: 7139 faults and 2.5 us per alloc/free pair over 1000 pairs; docs/performance.md).
uint64_t LiveMap::home(uint64_t k) const {
  if (keys_ == Keys::opaque) return ((k ^ (k >> 29)) * kFibonacci) >> (64 - log2_slots_);
  constexpr uint64_t kWithinMask = (uint64_t{1} << kWindowSlotsLog2) - 1;
  const uint64_t window = ((k >> 16) * kFibonacci) >> (64 - log2_slots_);
  return (window & ~kWithinMask) | ((k >> 9) & kWithinMask);
}

// The table is mapped on first use, not at load, so processes that never allocate pay nothing.
bool LiveMap::ensure_table() {
  if (slots_.load(std::memory_order_acquire) != nullptr) return true;
  size_t bytes = sizeof(Slot) << log2_slots_;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  Slot* expected = nullptr;
  if (!slots_.compare_exchange_strong(expected, static_cast<Slot*>(p))) munmap(p, bytes);
  return true;
}

bool LiveMap::insert(uint64_t key, const LiveInfo& info) {
  if (key == 0 || key == kTombstone || !ensure_table()) return false;
  Slot* slots = slots_.load(std::memory_order_acquire);
  const uint64_t mask = (1ull << log2_slots_) - 1;
  uint64_t i = home(key);
  for (unsigned probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & mask) {
    uint64_t cur = slots[i].key.load(std::memory_order_relaxed);
    if (cur != 0 && cur != kTombstone) continue;
    // The value is written before the key is published, so whoever finds the key sees it.
    // Racing inserters of other keys for this slot: only the CAS winner's value stands, and the
    // loser rewrites its own value in the next slot it wins.
    if (slots[i].key.compare_exchange_strong(cur, kTombstone - 1, std::memory_order_acquire)) {
      slots[i].value.store(pack(info), std::memory_order_relaxed);
      slots[i].key.store(key, std::memory_order_release);
      return true;
    }
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool LiveMap::erase(uint64_t key, LiveInfo* info) {
  Slot* slots = slots_.load(std::memory_order_acquire);
  if (key == 0 || key >= kTombstone - 1 || slots == nullptr) return false;
  const uint64_t mask = (1ull << log2_slots_) - 1;
  uint64_t i = home(key);
  for (unsigned probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & mask) {
    uint64_t cur = slots[i].key.load(std::memory_order_acquire);
    if (cur == 0) return false;
    if (cur != key) continue;
    uint64_t v = slots[i].value.load(std::memory_order_relaxed);
    // Two threads freeing the same pointer at once: one wins, the other sees "unknown".
    if (!slots[i].key.compare_exchange_strong(cur, kTombstone, std::memory_order_acq_rel))
      return false;
    *info = unpack(v);
    return true;
  }
  return false;
}

}  // namespace gpumem
