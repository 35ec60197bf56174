// The preload library's settings: every GPUMEM_* variable, read once when the library loads
// (secure_getenv, so a setuid program ignores them). Nothing reads the environment after that.
// A bad value stops the process with exit status 2 and one line naming the variable, the value
// and the accepted forms, before the program does any CUDA work.
#pragma once

#include "gpumem/trace_name.h"

#include <cstddef>
#include <cstdint>

#include "gpumem/resources/pool_kind.h"
#include "gpumem/trace/format.h"
#include "stacks/stacks.h"

namespace gpumem {

enum class LogLevel : int { error = 0, warn = 1, info = 2, debug = 3 };
using resources::PoolKind;  // GPUMEM_POOL's values, shared with the stack builder and replay

// A cap as the user wrote it: absolute bytes, or a percentage of the device's capacity.
struct LimitSpec {
  bool set = false;
  uint64_t bytes = 0;  // when percent == 0
  double percent = 0;  // 0 < percent <= 100 when given as "60%"
};

struct Config {
  bool trace_off = false;                       // GPUMEM_TRACE=off
  char trace_template[4096] = {};               // GPUMEM_TRACE, default "gpumem-%p.trace"
  bool stacks = false;                          // GPUMEM_STACKS: any stacks recorded
  stacks::Mode stack_mode = stacks::Mode::off;  // GPUMEM_STACKS=1|native|python|mixed
  char tensors[512] = {};                       // GPUMEM_TENSORS (set by gpumem run --tensors)
  LogLevel log = LogLevel::warn;                // GPUMEM_LOG
  PoolKind pool = PoolKind::none;               // GPUMEM_POOL
  LimitSpec limit;                              // GPUMEM_LIMIT (every device)
  LimitSpec device_limit[trace::kMaxDevices];   // GPUMEM_LIMIT_<n> (overrides GPUMEM_LIMIT)
  uint64_t pool_size = 0;                       // GPUMEM_POOL_SIZE, 0 = not set
  bool limit_shared = false;                    // GPUMEM_LIMIT_SCOPE=shared
  char limit_name[65] = {};                     // GPUMEM_LIMIT_NAME: the shared budget's name
  long limit_group = -1;  // GPUMEM_LIMIT_GROUP: the ledger's group (created 0660); -1 = 0600
  int rank = -1;                                // RANK / LOCAL_RANK / OMPI_COMM_WORLD_RANK / ...
  char summary[4096] = {};  // "KEY=VALUE" lines of the settings in force (trace header)
  char warning[256] = {};   // a setting that is valid but has no effect ("" = none)
};

// Parses `getenv` into *out. On a bad value writes the message into err and returns false.
// Pure (no exit, no stderr) so tests can call it with any environment lookup.
using EnvLookup = const char* (*)(const char* name);
bool parse_config(EnvLookup getenv_fn, Config* out, char* err, size_t errlen);

// The GPUMEM_LIMIT_<...> variables of `envp` (NAME=VALUE strings, null-terminated) that
// parse_config never reads: <n> past the devices gpumem tracks (0 to 63), written with a leading
// zero, or not a number (a misspelt SCOPE, NAME or GROUP). Such a cap would be ignored without a
// word: false with the message in err, as parse_config's. Empty values count as unset.
bool check_limit_names(const char* const* envp, char* err, size_t errlen);

// The process-wide settings, parsed by load_config() at library load.
const Config& config();
// Reads the environment once; on a bad value prints the message and exits with status 2.
void load_config();

// A percentage limit is known in bytes only once the device's capacity is read (build_stack):
// when `bytes` (spec's share of `capacity`) is 0, or below one pool block while the limit sizes
// the fixed pool, prints one line naming `var` and exits with status 2, as a bad value does.
void check_resolved_limit(const char* var, const LimitSpec& spec, int device, uint64_t capacity,
                          uint64_t bytes);

// Trace names: expand_trace_template and rank_from_environment in gpumem/trace_name.h.

using resources::pool_kind_name;

}  // namespace gpumem
