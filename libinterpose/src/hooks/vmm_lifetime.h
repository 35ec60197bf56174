// CUDA's lifetime rule for VMM physical memory (cuMemCreate), which the driver hooks follow:
// an allocation stays alive while its handle holds a reference (cuMemCreate gives one,
// cuMemRetainAllocationHandle one more, cuMemRelease takes one back) or any cuMemMap of it remains
// mapped. The memory goes, and gpumem records its free and returns its bytes to the cap, at the
// call that drops the last of both: a cuMemRelease, or a cuMemUnmap when the handle was already
// released (NVIDIA's VMM sample and NCCL release right after mapping). docs/interception.md.
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
// A cuMemRetainAllocationHandle that succeeded: one more reference (no-op for an unknown handle).
void retained(uint64_t handle);
// A cuMemMap of `handle` at [ptr, ptr + size) that succeeded.
void mapped(uint64_t ptr, uint64_t size, uint64_t handle);

enum class Release {
  untracked,   // not a handle this table knows: the free goes through the path as any free
  last,        // the last reference and no mapping: the memory goes with this call
  still_live,  // a reference or a mapping remains: no free yet
};
// Takes one reference before the real cuMemRelease. When the real call fails, call
// release_failed to give it back.
Release release(uint64_t handle);
void release_failed(uint64_t handle, Release what);

// A cuMemUnmap of [ptr, ptr + size) that succeeded: drops the mappings in the range and writes
// to gone[] the handles whose memory went with it (released, no mapping left); returns how many.
// With gone[] full (max) it stops, leaving the range's other mappings: call again until it
// returns less than max.
size_t unmapped(uint64_t ptr, uint64_t size, uint64_t* gone, size_t max);

}  // namespace gpumem::vmm
