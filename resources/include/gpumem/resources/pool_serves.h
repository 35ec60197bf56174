// Which allocations a gpumem pool serves: device memory from cudaMalloc, cuMemAlloc or the
// PyTorch allocator, not stream-ordered. Stream-ordered, pitched, managed, VMM, array and host
// memory go to the layer below the pool (they still count against the cap). The preload routes
// by it (libinterpose/src/policy.cpp) and so does `gpumem replay`, so a replayed pool serves
// exactly what the recorded one did.
#pragma once

#include <cstdint>

#include "gpumem/trace/format.h"

namespace gpumem::resources {

constexpr bool pool_serves(trace::Api api, uint16_t flags) {
  const bool plain =
      api == trace::Api::cudaMalloc || api == trace::Api::cuMemAlloc || api == trace::Api::torch;
  const auto kind = static_cast<trace::MemKind>(flags & trace::kFlagKindMask);
  return plain && kind == trace::MemKind::device && (flags & trace::kFlagAsync) == 0;
}

}  // namespace gpumem::resources
