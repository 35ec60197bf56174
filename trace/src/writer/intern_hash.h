// The hashes the writer's string and stack tables are indexed by (intern.cpp). A hash only picks
// the slot: an equal hash is never taken as an equal string or stack, the bytes kept beside the
// slot are compared (so the tests, which include this, can build colliding pairs on purpose).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace gpumem::intern {

inline uint64_t mix64(uint64_t x) {  // a 64-bit finaliser (splitmix64): good spread, invertible
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

// Over 8-byte words, each folded into the state and mixed (the last word zero-padded).
inline uint64_t hash_words(uint64_t seed, const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = mix64(seed + bytes + 0x9e3779b97f4a7c15ull);
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = mix64(h ^ w) + i;
  }
  if (i < bytes) {
    uint64_t w = 0;
    std::memcpy(&w, p + i, bytes - i);
    h = mix64(h ^ w) + i;
  }
  return h == 0 ? 1 : h;  // 0 marks an empty table slot
}

inline uint64_t hash_stack(const uint64_t* pcs, int depth) {
  return hash_words(1, pcs, static_cast<size_t>(depth) * sizeof(uint64_t));
}
inline uint64_t hash_string(const char* s, size_t len) {
  return hash_words(2, s, len);
}

}  // namespace gpumem::intern
