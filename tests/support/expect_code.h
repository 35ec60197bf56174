// For the programs the tests run under the preload (plain main(), no gtest): a check that
// prints the call, its code and the line on stderr and counts the failure, so the program ends
// non-zero and the test shows what went wrong. The including file defines, before its first
// use, `int g_failures` and `const char* const kProgram` (its name, for the message).
#pragma once

#include <cstdio>

#define EXPECT_CODE(call, code)                                                                \
  do {                                                                                         \
    const int e_ = static_cast<int>(call);                                                     \
    if (e_ != static_cast<int>(code)) {                                                        \
      std::fprintf(stderr, "%s: %s returned %d, expected %d (line %d)\n", kProgram, #call, e_, \
                   static_cast<int>(code), __LINE__);                                          \
      ++g_failures;                                                                            \
    }                                                                                          \
  } while (0)
