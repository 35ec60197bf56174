// `gpumem replay`: run a recorded allocation sequence again, per device and in order, through the
// stack the preload library builds (resources::DeviceStack from the same StackConfig: pool kind,
// limit, fixed pool size) over a simulated device of the trace's capacity, and answer "does it fit
// under this policy and limit?" and "what is the smallest limit under which it fits?".
// docs/replay-fit.md.
//
//   std::string error;
//   auto program = gpumem::replay::load_program(path, &error);   // reads the trace once
//   DeviceRun run = gpumem::replay::replay_device(*program, dev, {Policy::growth, limit});
//   LimitSearch s = gpumem::replay::smallest_limit(*program, dev, Policy::growth);
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gpumem/resources/pool_kind.h"
#include "gpumem/resources/pool_observer.h"

namespace gpumem::replay {

// The preload's pool kinds (GPUMEM_POOL): replay builds the very stack the preload builds.
using Policy = resources::PoolKind;
inline const char* policy_name(Policy p) {
  return resources::pool_kind_name(p);
}

// The bytes between two limits that can behave differently under a policy: none counts requested
// bytes exactly (1 B), the fixed pool's size is rounded down to 512 B, the growth pool takes whole
// 2 MiB segments.
uint64_t limit_granularity(Policy p);

// One step of the compiled program (one device's events, in trace order).
struct Step {
  enum Kind : uint8_t { alloc, free, empty_cache };
  Kind kind = alloc;
  bool pooled_kind = true;       // a pool may serve it (resources/pool_serves.h, as the preload)
  bool recorded_failed = false;  // an alloc_failed record: tried, then freed at once if it fits
  uint16_t api = 0;
  uint16_t flags = 0;
  uint32_t slot = 0;   // which live allocation (recycled index)
  uint32_t phase = 0;  // index into Program::phases, 0 = none
  uint64_t bytes = 0;
  uint64_t stream = 0;
  int64_t t_ns = 0;     // relative to the trace's clock base
  uint64_t record = 0;  // record index in the trace (for people)
};

struct DeviceProgram {
  int device = 0;
  std::string name;
  uint64_t capacity_bytes = 0;  // from the header; 0 = unknown
  uint64_t recorded_limit_bytes = 0;
  std::vector<Step> steps;
  uint32_t slots = 0;  // most allocations live at once (+ recorded failures)
  uint64_t recorded_failures = 0;
  uint64_t unknown_frees = 0;    // frees of addresses the trace never showed allocated: skipped
  uint64_t skipped_pinned = 0;   // pinned host allocations: not device memory
  // Memory imported from another process (IPC, shareable handles): the exporter's, never charged
  // to this process's cap by the preload, so not replayed either.
  uint64_t skipped_imported = 0;
  uint64_t unpooled_allocs = 0;  // what no pool serves: stream-ordered, pitched, managed, VMM ...
};

struct Program {
  std::string path;
  std::string recorded_pool;        // header pool ("none", "growth", "fixed" or "")
  uint64_t recorded_pool_size = 0;  // the header's GPUMEM_POOL_SIZE line in bytes; 0 = not set
  std::string command;
  bool truncated = false;
  // A bounded trace (GPUMEM_TRACE_MAX): records dropped from its middle. What is replayed there is
  // its digest: the allocations live across the cut and at each device's peaks, in order.
  uint64_t dropped_records = 0;
  std::vector<std::string> phases;  // [0] = "" (no phase)
  std::vector<DeviceProgram> devices;
};

// Told, during one replay, of each step before it runs, then of each segment the replayed pool
// reserves or releases for it (the expandable pool's: each granule it maps or unmaps), in order:
// the replayed reserved curve, change by change, which tests compare with the recorded trace's.
class StepObserver : public resources::PoolObserver {
 public:
  virtual void on_step(const Step& step) = 0;
};

// Reads the trace once. nullptr and *error (one line saying what is wrong and what to do) on
// failure.
std::unique_ptr<Program> load_program(const std::string& path, std::string* error);

struct ReplayOptions {
  Policy policy = Policy::none;
  uint64_t limit = 0;      // 0 = no limit: the device's capacity bounds it
  uint64_t pool_size = 0;  // the fixed pool's size (GPUMEM_POOL_SIZE); 0 = the limit, as there
  uint64_t capacity = 0;   // 0 = the program's capacity (or unbounded when the trace has none)
  bool metrics = true;     // fragmentation and peaks; off makes searches faster
  StepObserver* observer = nullptr;  // the steps and the pool's segments, as they happen
};

struct Failure {
  uint64_t record = 0;
  int64_t t_ns = 0;
  std::string phase;
  std::string api;
  uint64_t bytes = 0;
  uint64_t in_use_bytes = 0;     // as the refusing layer counts (limit, pool or device)
  uint64_t allocated_bytes = 0;  // what the program held then
  uint64_t reserved_bytes = 0;   // what the policy held from the device then
  std::string refused_by;        // "limit", "pool", "device"
  bool recorded_failed = false;  // it also failed in the recorded run
};

struct DeviceRun {
  int device = 0;
  Policy policy = Policy::none;
  uint64_t limit_bytes = 0;
  uint64_t capacity_bytes = 0;
  bool fits = true;
  std::optional<Failure> failure;  // the first failing allocation; replay stops there
  uint64_t steps_replayed = 0;
  uint64_t peak_allocated_bytes = 0;
  uint64_t peak_reserved_bytes = 0;  // what the policy took from the device at most
  uint64_t device_peak_bytes = 0;    // as simcuda charges it (2 MiB pages)
  // At the peak-allocated instant, and the maximum over the run (1 - largest free / total free,
  // inside pool segments; 0 without a pool).
  double fragmentation_at_peak = 0;
  double fragmentation_max = 0;
  uint64_t reserved_unallocated_at_peak_bytes = 0;
  std::optional<double> utilization;  // peak allocated / peak reserved
};

// The capacity a replay of `device` uses: the override, else the trace's, else unbounded.
uint64_t effective_capacity(const DeviceProgram& device, uint64_t override_capacity);

DeviceRun replay_device(const Program& program, const DeviceProgram& device,
                        const ReplayOptions& options);

struct LimitSearch {
  Policy policy = Policy::none;
  uint64_t granularity = 1;
  bool fits_at_capacity = false;  // false: no limit helps; smallest/safe are empty
  // The smallest limit (a multiple of the granularity) under which the program fits.
  std::optional<uint64_t> smallest_bytes;
  // The smallest limit from which every checked larger limit fits too; == smallest when monotone.
  std::optional<uint64_t> safe_bytes;
  bool non_monotonic = false;    // the two differ, or a limit above the boundary failed
  bool below_exhaustive = true;  // every step below the boundary was replayed
  uint64_t replays = 0;          // replays the search ran
};

// The smallest limit (a multiple of the granularity) under which the device's whole program fits:
// binary search, then a scan below and a check of `window` steps above (search.cpp).
LimitSearch smallest_limit(const Program& program, const DeviceProgram& device, Policy policy,
                           uint64_t capacity = 0, int window = 8);

}  // namespace gpumem::replay
