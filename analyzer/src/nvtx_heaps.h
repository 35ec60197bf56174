// NVTX memory-extension heaps (heap_* / region_* records, docs/interception.md "NVTX"): an
// allocator's own pool inside memory the trace already counts, and the sub-allocations it made in
// it. Kept beside the device numbers, not in them: the heap's memory is already allocated once
// (by its cudaMalloc), so its regions show how full the allocator's pool is, not new memory.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "attribution.h"
#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

class NvtxHeaps {
 public:
  // `device` from the live allocation at `address` (-1 when the trace has none there).
  void heap_register(uint64_t heap, uint64_t address, uint64_t bytes, uint64_t domain, int device,
                     int64_t t_ns);
  void heap_unregister(uint64_t heap, int64_t t_ns);
  void heap_reset(uint64_t heap, int64_t t_ns);
  void region_register(uint64_t heap, uint64_t address, uint64_t bytes, int64_t t_ns);
  void region_resize(uint64_t address, uint64_t bytes, int64_t t_ns);
  void region_unregister(uint64_t address, int64_t t_ns);
  // The heaps of one device, in the order they were registered (at most kMaxHeaps kept).
  std::vector<NvtxHeapRow> rows(int device, const Attribution& strings) const;

  static constexpr size_t kMaxHeaps = 1000;

 private:
  struct Heap {
    NvtxHeapRow row;  // names and numbers so far (domain filled at the end)
    uint64_t domain = 0;
    int device = -1;
    bool open = true;
    uint64_t live_bytes = 0;
    uint64_t live_count = 0;
  };
  struct Region {
    uint64_t heap;  // key into heaps_
    uint64_t bytes;
  };
  bool heap_of(uint64_t heap, uint64_t address, uint64_t* key) const;
  void changed(Heap& h, uint64_t key, int64_t t_ns);
  void drop_regions(uint64_t key, int64_t t_ns);

  std::map<uint64_t, Heap> heaps_;         // by registration order (key), ids may be reused after
  std::map<uint64_t, uint64_t> open_ids_;  // heap id -> key of the open heap with that id
  uint64_t next_key_ = 0;
  std::map<uint64_t, Region> regions_;  // by address
};

}  // namespace gpumem::analyzer
