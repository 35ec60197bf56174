// How simcuda charges a device for its memory (docs/simcuda.md, "Accounting"): the one copy of the
// rule, shared by the simulated driver and by `gpumem replay`'s simulated device
// (replay/src/simcuda_upstream.h), so a replay fails exactly where simcuda's cudaMalloc would.
// Header-only, no CUDA.
#pragma once

#include <cstdint>

namespace simcuda {

inline constexpr uint64_t kPage = 2ull << 20;        // large-allocation and VMM granularity
inline constexpr uint64_t kSmallLimit = 1ull << 20;  // below this, allocations are packed
inline constexpr uint64_t kSmallQuantum = 512;       // small allocations round up to this

inline uint64_t round_up(uint64_t v, uint64_t q) {
  uint64_t r = v % q;
  if (r == 0) return v;
  return v > UINT64_MAX - (q - r) ? UINT64_MAX - (UINT64_MAX % q) : v + (q - r);
}

// One allocation's charge: whole pages when it is large (*large), else bytes of the shared
// small-page area (*small).
inline void charge_for(uint64_t size, uint64_t* large, uint64_t* small) {
  if (size >= kSmallLimit) {
    *large = round_up(size, kPage);
    *small = 0;
  } else {
    *large = 0;
    *small = round_up(size, kSmallQuantum);
  }
}

// What a device is charged: its whole pages plus as many 2 MiB pages as its small bytes need.
inline uint64_t charged_bytes(uint64_t large_bytes, uint64_t small_bytes) {
  return large_bytes + round_up(small_bytes, kPage);
}

}  // namespace simcuda
