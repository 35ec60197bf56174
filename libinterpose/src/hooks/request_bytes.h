// The bytes a pitched or 3D allocation asks for, from its dimensions.
#pragma once

#include <cstdint>

namespace gpumem::hooks {

// width * height (* depth), saturated at UINT64_MAX: a product that wraps would record a huge
// request as a few bytes, and let it pass a limit.
inline uint64_t saturating_product(uint64_t a, uint64_t b, uint64_t c = 1) {
  uint64_t ab = 0, abc = 0;
  if (__builtin_mul_overflow(a, b, &ab) || __builtin_mul_overflow(ab, c, &abc)) {
    // Zero times anything is zero, whatever the other factors.
    return a == 0 || b == 0 || c == 0 ? 0 : UINT64_MAX;
  }
  return abc;
}

}  // namespace gpumem::hooks
