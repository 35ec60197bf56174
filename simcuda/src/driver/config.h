// SIMCUDA_* settings, read once at cuInit. A bad value prints one line naming the variable, the
// value and the accepted forms, then exits with status 2 (a test harness must not run on a
// device it did not ask for).
#pragma once

#include <cstdint>

namespace simcuda {

struct Config {
  int devices = 1;                  // SIMCUDA_DEVICES
  uint64_t memory = 16ull << 30;    // SIMCUDA_MEMORY, bytes per device
  bool fail_alloc_enabled = false;  // SIMCUDA_FAIL_ALLOC_AFTER set
  uint64_t fail_alloc_after = 0;    // allocations allowed before failures start
  uint64_t alloc_latency_us = 35;   // SIMCUDA_ALLOC_LATENCY_US (cudaMalloc on a GPU: docs/simcuda.md)
  uint64_t free_latency_us = 35;    // SIMCUDA_FREE_LATENCY_US (cudaFree likewise)
  char shared[65] = {};             // SIMCUDA_SHARED: the machine-wide devices' name, "" = private
  bool vmm = true;                  // SIMCUDA_VMM=0: a device without virtual memory management
  bool peer = true;                 // SIMCUDA_PEER=0: devices that cannot access each other
};

// Parses the environment on first call (thread-safe) and returns the same object afterwards.
const Config& config();

}  // namespace simcuda
