// The pool policies, GPUMEM_POOL's values: the one enum the preload's configuration, the stack
// builder (stack.h), `gpumem replay` and the benchmarks share, so their names cannot drift.
#pragma once

#include <string_view>

namespace gpumem::resources {

enum class PoolKind : int { none = 0, growth = 1, fixed = 2, expandable = 3 };

inline constexpr PoolKind kPoolKinds[] = {PoolKind::none, PoolKind::growth, PoolKind::fixed,
                                           PoolKind::expandable};

// "none", "growth", "fixed", "expandable": GPUMEM_POOL's spelling, the trace header's `pool`,
// replay's --pool.
constexpr const char* pool_kind_name(PoolKind kind) {
  switch (kind) {
    case PoolKind::growth:
      return "growth";
    case PoolKind::fixed:
      return "fixed";
    case PoolKind::expandable:
      return "expandable";
    case PoolKind::none:
      break;
  }
  return "none";
}

// The kind spelled `text` (pool_kind_name's words); false for anything else.
constexpr bool parse_pool_kind(std::string_view text, PoolKind* out) {
  for (PoolKind kind : kPoolKinds)
    if (text == pool_kind_name(kind)) {
      *out = kind;
      return true;
    }
  return false;
}

}  // namespace gpumem::resources
