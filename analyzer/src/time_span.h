// Differences of trace timestamps. A corrupt trace can hold any 64-bit time, so a plain
// subtraction may overflow (undefined behaviour); this one saturates instead.
#pragma once

#include <cstdint>
#include <limits>

namespace gpumem::analyzer {

inline int64_t span_ns(int64_t from, int64_t to) {
  int64_t d = 0;
  if (__builtin_sub_overflow(to, from, &d))
    return to > from ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  return d;
}

}  // namespace gpumem::analyzer
