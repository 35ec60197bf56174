// Whether this test program is built with a sanitizer (scripts/test's asan and tsan stages).
// Tests with many calls make fewer there: a sanitizer judges the code paths and the order of
// accesses, which a fraction of the calls exercises, and each call costs it 5-20 times more.
#pragma once

namespace gpumem::test {

#ifdef GPUMEM_SANITIZED
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

}  // namespace gpumem::test
