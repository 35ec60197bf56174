// NVTX memory-extension heaps (heap_* / region_* records, docs/interception.md "NVTX"): an
// allocator's own pool inside memory the trace already counts, and the sub-allocations it made in
// it, in the growth pool's shape. A heap over a live device allocation turns that allocation into
// a segment of the device (reserved as before, no longer allocated; DeviceState::
// heap_segment_begin), and each region is a pooled allocation inside it, with the site of its
// region_register record; unregistering the last heap of the allocation (or freeing it) turns the
// segment back. Beside the device numbers each heap keeps a row (nvtx_heaps[] in the report): how
// full the allocator's pool got and its largest free gap then. The edge cases (a heap over no live
// allocation, a region outside its heap or over another) are in docs/report-schema.md.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "attribution.h"
#include "devices.h"
#include "gpumem/analyzer/model.h"
#include "live_allocations.h"
#include "metrics.h"
#include "phases.h"
#include "segment_space.h"

namespace gpumem::analyzer {

class NvtxHeaps {
 public:
  NvtxHeaps(LiveAllocations& live, Devices& devices, Phases& phases)
      : live_(live), devices_(devices), phases_(phases) {}

  // `phase`: the current phase of the record's thread, for the device's peaks.
  void heap_register(uint64_t heap, uint64_t address, uint64_t bytes, uint64_t domain, int64_t t_ns,
                     uint64_t phase);
  void heap_unregister(uint64_t heap, int64_t t_ns, uint64_t phase);
  void heap_reset(uint64_t heap, int64_t t_ns, uint64_t phase);
  void region_register(uint64_t heap, uint64_t address, uint64_t bytes, uint32_t site, int64_t t_ns,
                       uint64_t phase);
  void region_resize(uint64_t address, uint64_t bytes, int64_t t_ns, uint64_t phase);
  void region_unregister(uint64_t address, int64_t t_ns, uint64_t phase);
  // The allocation `a` at `address`, a heap's segment (a.segment_id has kNvtxHeapSegment), is
  // freed: its heaps end (their regions freed) and its free is counted on its device. The caller
  // tells the phases that the device changed.
  void allocation_freed(uint64_t address, LiveAlloc& a, int64_t t_ns, uint64_t phase);
  // Adds the regions still live in heap segments to what leaks_by_device() found.
  void add_leaks(std::map<int, std::pair<SiteAggregates, ClassAggregates>>& leaks) const;
  // The heaps of one device, in the order they were registered (the first kMaxHeaps listed).
  std::vector<NvtxHeapRow> rows(int device, const Attribution& strings) const;

  static constexpr size_t kMaxHeaps = 1000;

 private:
  struct Heap {
    NvtxHeapRow row;  // names and numbers so far (domain filled at the end)
    uint64_t domain = 0;
    uint64_t end = 0;         // end of the heap's range, cut at the end of its allocation
    uint64_t allocation = 0;  // start of the live allocation holding it (when device >= 0)
    uint64_t id = 0;          // the NVTX handle it was registered with
    int device = -1;
    bool open = true;
    bool listed = false;   // one of the first kMaxHeaps: kept for rows() once closed
    bool segment = false;  // its allocation is a segment and its regions pooled allocations
    uint64_t live_bytes = 0;
    uint64_t live_count = 0;
    // Its free gaps with the largest at hand (its range as one segment, each region taken from
    // it), built once it holds kGapsFrom regions: below that the regions are scanned at each new
    // peak, which for an allocator filling a heap region by region was quadratic (20000 regions
    // 0.9 s). Null while smaller, once closed, and for good (gaps_scanned) once two of its regions
    // overlap or one has no bytes: the scan measures those as it always did.
    std::unique_ptr<SegmentSpace> gaps;
    uint64_t gaps_id = 0;
    bool gaps_scanned = false;
  };
  static constexpr uint64_t kGapsFrom = 32;
  struct Region {
    uint64_t heap;  // key into heaps_
    LiveAlloc a;    // a.segment_id != 0 when counted on the device (its heap is a segment)
  };
  bool heap_of(uint64_t heap, uint64_t address, uint64_t* key) const;
  void changed(Heap& h, uint64_t key, int64_t t_ns);
  // The largest gap between heap `key`'s regions now (regions of one heap never overlap).
  uint64_t largest_gap(Heap& h, uint64_t key);
  // Keeps h.gaps in step with a region of `bytes` at `address` coming (take) or going.
  void gaps_take(Heap& h, uint64_t address, uint64_t bytes);
  void gaps_give_back(Heap& h, uint64_t address, uint64_t bytes);
  // Calls f(address, region) for each region of heap `key`: they all lie in its range.
  template <class F>
  void for_each_region_of(const Heap& h, uint64_t key, F&& f);
  void drop_regions(uint64_t key, int64_t t_ns, uint64_t phase);
  // Ends the open heap `key` (its id already out of open_ids_). `freeing`: its allocation is
  // being freed, and the caller ends the segment.
  void close(uint64_t key, int64_t t_ns, uint64_t phase, bool freeing);

  LiveAllocations& live_;
  Devices& devices_;
  Phases& phases_;
  std::map<uint64_t, Heap> heaps_;         // by registration order (key), ids may be reused after
  std::map<uint64_t, uint64_t> open_ids_;  // heap id -> key of the open heap with that id
  // The open heaps by the start of their range, so that heap_of() for NVTX's process-wide heap
  // and allocation_freed() look at the heaps there, not at every heap (each walked them all:
  // 20000 heaps with a region each on heap 0 took 1.4 s). While no two open heaps have ever
  // overlapped (or shared a start), the one whose start is the last at or before an address is
  // the only one that may hold it.
  std::multimap<uint64_t, uint64_t> open_by_start_;  // start -> key
  bool open_heaps_overlapped_ = false;
  uint64_t next_key_ = 0;
  size_t listed_ = 0;
  std::map<uint64_t, Region> regions_;          // by address
  std::map<uint64_t, uint32_t> segment_heaps_;  // allocation start -> open heaps in its segment
};

}  // namespace gpumem::analyzer
