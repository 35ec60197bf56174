// The live allocations of the process: address -> (bytes, device, kind). Lock-free open
// addressing over one preallocated anonymous mapping (no malloc, no lock on insert/erase), so a
// free can be matched to its allocation and a free of an unknown pointer recognised.
//
// Keys are unique while live (CUDA never returns an address twice before it is freed), which is
// what makes reusing a tombstone on insert safe. Probing is bounded: a table so full that a key
// finds no slot within kMaxProbe drops it (counted in dropped()); its free is then reported as
// unknown rather than stalling the program.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace gpumem {

struct LiveInfo {
  uint64_t bytes = 0;
  int device = -1;
  uint16_t kind = 0;  // trace::MemKind
  uint8_t route = 0;  // policy::Route that served it (0 = straight to CUDA, no policy)
};

class LiveMap {
 public:
  // How keys are spread over the table. Device addresses: neighbours share a run of slots, so a
  // pool walking its segments touches few pages of the table. Opaque values (VMM handles, which
  // may be small integers): a plain multiplicative hash.
  enum class Keys { device_addresses, opaque };
  // Reserves 2^log2_slots slots (16 bytes each, at least 2^7) of lazily committed memory.
  // constexpr: a global LiveMap is constant-initialised (no guard on every access, usable by
  // hooks that run before static initialisers).
  explicit constexpr LiveMap(unsigned log2_slots, Keys keys)
      : log2_slots_(log2_slots < 7 ? 7 : log2_slots), keys_(keys) {}
  ~LiveMap() = default;  // deliberately leaked: hooks may run during static destruction
  LiveMap(const LiveMap&) = delete;
  LiveMap& operator=(const LiveMap&) = delete;

  bool insert(uint64_t key, const LiveInfo& info);
  // Removes key and returns its info; false when the key is not live.
  bool erase(uint64_t key, LiveInfo* info);
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct Slot {
    std::atomic<uint64_t> key;    // 0 empty, kTombstone erased, else the address
    std::atomic<uint64_t> value;  // bytes << 16 | (device + 1) << 4 | kind
  };
  static constexpr uint64_t kTombstone = ~0ull;
  static constexpr unsigned kMaxProbe = 4096;
  bool ensure_table();
  uint64_t home(uint64_t key) const;

  unsigned log2_slots_;
  Keys keys_;
  std::atomic<Slot*> slots_{nullptr};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace gpumem
