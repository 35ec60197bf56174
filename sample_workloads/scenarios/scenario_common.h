// Shared by the scenario programs: size arguments ("1MiB") and CUDA errors as exit codes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gpumem/units.h"

namespace gpumem::scenario {

// Exits with status 2 and a message when `text` is not a size such as 4096, 64KiB or 1MiB.
inline uint64_t size_arg(const char* program, const char* name, const char* text) {
  uint64_t bytes = 0;
  if (parse_size(text, &bytes) != SizeParse::ok || bytes == 0) {
    std::fprintf(stderr, "%s: %s '%s' is not a size; use bytes or a unit, e.g. 4096, 64KiB, 1MiB\n",
                 program, name, text);
    std::exit(2);
  }
  return bytes;
}

inline long count_arg(const char* program, const char* name, const char* text, long max) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v < 1 || v > max) {
    std::fprintf(stderr, "%s: %s '%s' must be a whole number from 1 to %ld\n", program, name, text,
                 max);
    std::exit(2);
  }
  return v;
}

// Exits with status 3 when the device is out of memory, 4 when another CUDA call fails.
inline void check(const char* program, cudaError_t err, const char* call) {
  if (err == cudaSuccess) return;
  if (err == cudaErrorMemoryAllocation) {
    std::fprintf(stderr, "%s: %s: device out of memory; use fewer or smaller buffers\n", program,
                 call);
    std::exit(3);
  }
  std::fprintf(stderr,
               "%s: %s failed: %s. Without a GPU, run with LD_LIBRARY_PATH=<build>/simcuda-lib\n",
               program, call, cudaGetErrorString(err));
  std::exit(4);
}

}  // namespace gpumem::scenario
