// A pool over the device's virtual memory API (docs/policies.md "Expandable pool"), the shape of
// PyTorch's expandable_segments for any program: per device, one large address range reserved up
// front (VmmUpstream::reserve) and backed by physical memory only where blocks are, one granule
// (the device's allocation granularity, 2 MiB) at a time. Blocks are handed out from the ranges
// with the growth pool's bookkeeping and reuse rule (best fit, stream-aware, pending until a
// device synchronization), so only the backing differs:
//   - a block about to be handed out gets every granule it touches mapped (cuMemCreate + cuMemMap
//     + cuMemSetAccess); the physical memory is allocated through the layer below the pool (the
//     limit, the device), so the cap and the stack's reserved bytes count mapped memory;
//   - before it maps anything, the pool synchronizes when frees are pending and unmaps and releases
//     every granule that lies wholly inside a free block, so reserved stays within a granule per
//     free extent of allocated whenever it grows;
//   - empty_cache() unmaps and releases every wholly free granule; the ranges stay reserved;
//   - its largest free block counts mapped bytes only (the OOM record's figure);
//   - a range that has no room left is joined by another (the larger of the range size and the
//     request), so a pool runs out of physical memory, never of addresses.
// Peer access: mapped memory is reachable only from the devices cuMemSetAccess names, not through
// cudaDeviceEnablePeerAccess as cudaMalloc memory is. The pool names its own device, and every
// peer add_peer() named, on every granule it has mapped and on every one it maps later (PyTorch's
// expandable segments do the same); remove_peer() takes the access back. Access maps no memory:
// reserved bytes and the cap are unchanged.
// Each mapped granule is a segment for the observer (and the trace): reserved when mapped,
// released before it is unmapped. The destructor unmaps, releases and frees everything.
#pragma once

#include <map>
#include <set>
#include <vector>

#include "gpumem/resources/pool_resource.h"
#include "gpumem/resources/vmm_upstream.h"

namespace gpumem::resources {

class ExpandablePool final : public PoolResource {
 public:
  static constexpr uint64_t kDefaultRangeBytes = uint64_t{64} << 30;
  // No device has 1 TiB: a larger request is refused as out of memory before a range (and its
  // table of one handle per granule, 4 MiB per TiB) is reserved for it.
  static constexpr uint64_t kLargestRequest = uint64_t{1} << 40;

  // `upstream` (the limit or the device) allocates the physical memory through its real call
  // (Request::real_alloc runs vmm.create); range_bytes 0 = kDefaultRangeBytes.
  ExpandablePool(MemoryResource& upstream, VmmUpstream& vmm, int device,
                 PoolObserver* observer = nullptr, uint64_t range_bytes = 0);
  ~ExpandablePool() override;

  // The device's granularity, known from the first allocation on (0 before).
  uint64_t granularity() const;
  size_t mapped_granules() const;
  size_t range_count() const;
  // Bytes of address space reserved (all ranges).
  uint64_t address_bytes() const;

  // Gives device `peer` read/write access to every mapped granule, now and when mapped later. All
  // or none: on a failing cuMemSetAccess the granules granted so far are revoked and its code
  // comes back. 0 when done, or when peer is the pool's device or already a peer.
  int add_peer(int peer);
  // Takes that access back from every mapped granule; later granules are not granted. Returns
  // the first failing cuMemSetAccess's code (the rest are still revoked), 0 otherwise.
  int remove_peer(int peer);
  std::vector<int> peers() const;

 private:
  struct Range {
    uint64_t bytes = 0;
    std::vector<uint64_t> handles;  // per granule: its physical handle, 0 = not mapped
  };

  Result grow(uint64_t rounded, uint8_t kind, const Request& req) override;
  Result prepare_fit(Block** b, uint64_t rounded, uint8_t kind, const Request& req) override;
  uint64_t do_empty_cache(Family family) override;
  // The largest stretch of mapped memory inside one free block: unmapped address space is not
  // free memory (a block there needs new pages the device may not have).
  uint64_t largest_free_locked() const override;

  // The range holding addr and its base; null when none does.
  Range* range_of(uintptr_t addr, uintptr_t* base);
  bool all_mapped(const Range& r, size_t g0, size_t g1) const;
  // Maps the unmapped granules [g0, g1) of the range at base; all or none.
  Result map_granules(uintptr_t base, Range& r, size_t g0, size_t g1, const Request& req);
  // Unmaps granule g; true when its memory went back to the layer below as well.
  bool unmap_granule(uintptr_t base, Range& r, size_t g, Family family);
  // Releases an unmapped handle; a refused one joins unreleased_. True when released.
  bool give_back(uint64_t handle, Family family);
  // Unmaps every mapped granule wholly inside a free block reusable on every stream, except those
  // in [keep_from, keep_to). Returns the bytes released.
  uint64_t unmap_free_granules(Family family, uintptr_t keep_from, uintptr_t keep_to);
  FreeResult release_handle(uint64_t handle, Family family);

  VmmUpstream& vmm_;
  const uint64_t range_bytes_;
  uint64_t granularity_ = 0;
  std::map<uintptr_t, Range> ranges_;
  std::set<uintptr_t> mapped_;  // addresses of the mapped granules, for the walk over free blocks
  std::vector<int> peers_;      // devices besides ours given access to every mapped granule
  // Unmapped handles whose release the driver refused: still charged below, released at the next
  // unmap pass (empty_cache, or before a mapping) or at destruction.
  std::vector<uint64_t> unreleased_;
};

}  // namespace gpumem::resources
