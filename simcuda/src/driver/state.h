// The simulated driver's state: devices, their accounting, contexts, streams, events, pools and
// every live allocation. One mutex guards it all; simcuda is a test device, not a hot path, and
// the expensive parts (mmap, munmap, simulated latency) run outside the lock. Each call changes
// the state in a single critical section, so a fork (which takes the lock, see state.cpp) always
// leaves the child a consistent copy. The state is never destroyed (exit-safe).
#pragma once

#include <cuda.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config.h"
#include "gpumem/resources/shared_ledger.h"
#include "gpumem/simcuda/accounting.h"

// Opaque CUDA handle types, defined here for the simulated driver only.
struct CUctx_st {
  int device;
  bool primary;
  int retains;  // primary contexts: cuDevicePrimaryCtxRetain count
};
struct CUstream_st {
  int device;
  unsigned flags;
};
struct CUevent_st {
  unsigned flags;
  bool recorded = false;
  int64_t time_ns = 0;
};
struct CUmemPoolHandle_st {
  int device;
  // Pool accounting, all in bytes. reserved is charged to the device in whole 2 MiB pages;
  // used is the sum of live allocations, each rounded up to 512 B.
  uint64_t reserved = 0, reserved_high = 0, used = 0, used_high = 0;
  uint64_t release_threshold = 0;
  uint64_t peer_read_write =
      0;  // other devices given read-write access (cuMemPoolSetAccess), a bit each
  bool destroyed = false;  // cuMemPoolDestroy'd: unknown to every call; its handle may come back
};

namespace simcuda {

// kPage, kSmallLimit, kSmallQuantum, round_up, charge_for: gpumem/simcuda/accounting.h.

enum class Kind { device, managed, pool };

struct Allocation {
  int device;
  uint64_t size;          // bytes asked for (pitch * height for pitched)
  uint64_t mapped;        // bytes of host VA behind it
  uint64_t large_charge;  // bytes charged as whole pages
  uint64_t small_charge;  // bytes charged to the small-page area
  Kind kind;
  CUmemPoolHandle_st* pool;
};

// A physical VMM allocation (cuMemCreate). Backed by a memfd so that every mapping of the handle
// shows the same bytes. Charged to its device until released and unmapped everywhere.
struct PhysicalAllocation {
  int device;
  uint64_t size;
  int fd;
  int references;  // create + retains - releases
  int mappings;    // live cuMemMap ranges using it
  bool exportable = false;  // created with CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR requested
  bool imported = false;    // another process's memory (shareable.cpp): charged to no one here
};

struct HostBlock {
  uint64_t size;
  uint64_t mapped;
};
struct Reservation {
  uint64_t size;
};
struct Mapping {
  uint64_t size;
  PhysicalAllocation* handle;
  // cuMemSetAccess: bit d set = device d may read (readers) or write (writers) the mapping.
  uint64_t readers = 0, writers = 0;
};

struct Device {
  int ordinal = 0;
  uint64_t capacity = 0;
  uint64_t large_bytes = 0;  // whole pages: large allocations, pool reservations, VMM handles
  uint64_t small_bytes = 0;  // sum of small allocations, each rounded up to 512 B
  CUctx_st primary{};
  CUmemPoolHandle_st default_pool{};
  // Peer access enabled from this device (cuCtxEnablePeerAccess): bit p set = this device may
  // access ordinary allocations of device p. Modelled per device pair, not per context pair.
  uint64_t peers = 0;
  // SIMCUDA_SHARED: the device every process of that name shares; this process's slot holds
  // its used(). Null for a private device.
  gpumem::resources::SharedLedger* shared = nullptr;

  // Charged bytes (this process's): whole pages plus as many 2 MiB small pages as the small
  // bytes need.
  [[nodiscard]] uint64_t used() const { return charged_bytes(large_bytes, small_bytes); }
  // Charges `large` page bytes and `small` small bytes when they fit (on a shared device: with
  // every other process's charge, in one step of its ledger); false and no change otherwise.
  // Caller holds the lock, as for give().
  [[nodiscard]] bool take(uint64_t large, uint64_t small);
  void give(uint64_t large, uint64_t small);
  // Free bytes of the device: capacity less every process's charge when shared.
  [[nodiscard]] uint64_t free_bytes() const;
};

struct State {
  std::mutex mu;
  std::vector<std::unique_ptr<Device>> devices;
  std::map<uintptr_t, Allocation> allocations;    // device, managed and pool memory
  std::map<uintptr_t, HostBlock> host;            // pinned host memory
  std::map<uintptr_t, Reservation> reservations;  // cuMemAddressReserve ranges
  std::map<uintptr_t, Mapping> mappings;          // cuMemMap ranges
  std::unordered_set<PhysicalAllocation*> handles;
  std::unordered_set<CUctx_st*> contexts;  // cuCtxCreate contexts (not primary ones)
  // Pools made by cuMemPoolCreate, never deleted: a destroyed one is handed out again by a later
  // create once nothing is allocated from it (as a real driver may reuse the address).
  std::vector<std::unique_ptr<CUmemPoolHandle_st>> created_pools;
  std::unordered_set<CUstream_st*> streams;
  std::unordered_set<CUevent_st*> events;
  std::atomic<uint64_t> alloc_attempts{0};
};

// The driver state, valid after cuInit succeeded. Never destroyed.
State& state();
bool initialized();

// The calling thread's current context (nullptr when none).
CUctx_st*& current_context();

// Checks cuInit and the current context; sets *device. Returns the error the driver would give.
CUresult current_device(int* device);
// Device of a stream argument (0, CU_STREAM_LEGACY, CU_STREAM_PER_THREAD or a created stream).
// Caller holds the lock.
CUresult stream_device(CUstream stream, int* device);
bool valid_device(int device);
// The context ctx names when it is a primary or a live created one; nullptr otherwise.
CUctx_st* context_of(CUcontext ctx);

// Fault injection and simulated latency (SIMCUDA_FAIL_ALLOC_AFTER, SIMCUDA_*_LATENCY_US).
// count_allocation returns false when this allocation must fail with out-of-memory.
bool count_allocation();
void alloc_latency();
void free_latency();

// Host memory that backs simulated device memory: reserved lazily, never zeroed by us.
void* map_memory(uint64_t bytes, uint64_t* mapped);
void unmap_memory(void* p, uint64_t mapped);

// Pool bookkeeping (caller holds the lock): reserve room for `bytes` more, or release cached
// memory above `keep`.
bool pool_grow(Device& dev, CUmemPoolHandle_st& pool, uint64_t bytes);
void pool_release_to(Device& dev, CUmemPoolHandle_st& pool, uint64_t keep);

}  // namespace simcuda

#define SIMCUDA_EXPORT extern "C" __attribute__((visibility("default")))

// For simcuda's runtime, outside the CUDA ABI. simcuda_driver_fork_adopt() returns 1 when the
// caller now takes the driver's lock around fork() by calling simcuda_driver_fork(0) in its
// prepare handler and simcuda_driver_fork(1) in its parent and child handlers, and 0 when the
// driver already registered its own handlers (cuInit came first).
SIMCUDA_EXPORT int simcuda_driver_fork_adopt(void);
SIMCUDA_EXPORT void simcuda_driver_fork(int phase);
