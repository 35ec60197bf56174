// CUDA's lifetime rule for VMM physical memory (cuMemCreate), which the driver hooks follow:
// an allocation stays alive while its handle holds a reference (cuMemCreate gives one,
// cuMemRetainAllocationHandle one more, cuMemRelease takes one back) or any cuMemMap of it remains
// mapped. The memory goes, and gpumem records its free and returns its bytes to the cap, at the
// call that drops the last of both: a cuMemRelease, or a cuMemUnmap when the handle was already
// released (NVIDIA's VMM sample and NCCL release right after mapping). docs/interception.md.
//
// A handle from cuMemImportFromShareableHandle follows the same rule, but its memory is another
// process's (kind imported, never charged here) and its size is unknown until it is mapped: its
// alloc is recorded at its first cuMemMap, at the mapping's address, and its free at the call
// that drops the last reference and mapping, as for cuMemCreate.
//
// The counts live in two fixed open-addressing tables (no malloc) under one lock: VMM calls are
// rare next to allocations, and the lock is taken by VMM hooks only. A handle the tables cannot
// hold (more than 65536 live) is untracked: its free is recorded at its release, as before.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gpumem::vmm {

// A cuMemCreate that succeeded: one reference, no mapping.
void created(uint64_t handle);
// A cuMemImportFromShareableHandle that succeeded, reached by `lookup` (trace::Lookup): one
// reference to another process's memory, no mapping. A handle already known (this process's own
// allocation, or one imported before) gets one more reference instead.
void imported(uint64_t handle, uint8_t lookup);
// A cuMemRetainAllocationHandle that succeeded: one more reference (no-op for an unknown handle).
void retained(uint64_t handle);
// The same for an address in gpumem's own pool (GPUMEM_POOL=expandable maps its segments with
// cuMemMap; NCCL retains a buffer's handle to learn whether it is cuMem memory, then releases
// it): counted, so that its cuMemRelease goes to CUDA unrecorded, not as an unknown free.
void retained_pool_memory(uint64_t handle);
// A cuMemMap of `handle` at [ptr, ptr + size) that succeeded. True when it is the first mapping
// of an imported handle, whose alloc is recorded now at ptr; *import_lookup says how the import
// was reached.
bool mapped(uint64_t ptr, uint64_t size, uint64_t handle, uint8_t* import_lookup);

enum class Release {
  untracked,        // not a handle this table knows: the free goes through the path as any free
  last,             // the last reference and no mapping: the memory goes with this call
  still_live,       // a reference or a mapping remains: no free yet
  last_import,      // the last of an imported handle that was mapped: its free at *import_address
  unmapped_import,  // the last of an imported handle never mapped: never recorded, nothing to free
  pool_memory,      // the last reference the program took to gpumem's pool memory: not recorded
};
// Takes one reference before the real cuMemRelease. When the real call fails, call
// release_failed (with the same import_address) to give it back.
Release release(uint64_t handle, uint64_t* import_address);
void release_failed(uint64_t handle, Release what, uint64_t import_address);

// A handle whose memory went with a cuMemUnmap; import_address is the address its import was
// recorded at, 0 for memory this process created.
struct Gone {
  uint64_t handle;
  uint64_t import_address;
};

// A cuMemUnmap of [ptr, ptr + size) that succeeded: drops the mappings in the range and writes
// to gone[] the handles whose memory went with it (released, no mapping left); returns how many.
// With gone[] full (max) it stops, leaving the range's other mappings: call again until it
// returns less than max.
size_t unmapped(uint64_t ptr, uint64_t size, Gone* gone, size_t max);

}  // namespace gpumem::vmm
