// Byte units for the tests, defined once: the files of one test program share unity translation
// units (tests/CMakeLists.txt), where each file's own definition would be a second one.
#pragma once

#include <cstdint>

inline constexpr uint64_t kKiB = uint64_t{1} << 10;
inline constexpr uint64_t kMiB = uint64_t{1} << 20;
inline constexpr uint64_t kGiB = uint64_t{1} << 30;
