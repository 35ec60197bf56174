// The chunk checksum, shared by the encoder and the decoder (as ChunkState::learn is, in
// compact.h), so that the two cannot drift apart.
#include <cstring>

#include "gpumem/trace/compact.h"

namespace gpumem::trace::compact {

uint32_t checksum(uint32_t body_bytes, uint32_t records, const uint8_t* body, size_t len) {
  // 64-bit multiply-xorshift over 8-byte little-endian words (the last one zero-padded): fast
  // enough to check every chunk while reading, and any flipped or cut byte changes it.
  constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
  uint64_t h = 0x6A09E667F3BCC908ull;
  auto mix = [&](uint64_t w) {
    h = (h ^ w) * kMul;
    h ^= h >> 32;
  };
  mix(static_cast<uint64_t>(body_bytes) | static_cast<uint64_t>(records) << 32);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    std::memcpy(&w, body + i, 8);
    mix(w);
  }
  if (i < len) {
    uint64_t w = 0;
    std::memcpy(&w, body + i, len - i);
    mix(w);
  }
  return static_cast<uint32_t>(h ^ (h >> 32));
}

}  // namespace gpumem::trace::compact
