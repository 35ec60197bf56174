// NVTX memory-extension heaps in the growth pool's shape (analyzer/src/nvtx_heaps.h): a heap over
// a live allocation makes that allocation a segment (reserved, no longer allocated), its regions
// pooled allocations inside it with their sites; resizes change a region's size, unregisters and
// resets free regions, heap unregister turns the segment back into the allocation, and a free of
// the allocation ends its heaps. Every number here is chosen, so every number is exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>

#include "events.h"

namespace gpumem::analyzer {
namespace {

using testing::Events;
using trace::Op;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kA = 0x7f0000000000;  // the heap's allocation
constexpr uint64_t kB = 0x7f1000000000;  // a plain allocation beside it

trace::Record nvtx(int64_t t, Op op, uint64_t heap, uint64_t address, uint64_t bytes,
                   uint32_t site = 0) {
  trace::Record r = Events::rec(t, op, address, bytes, heap, -1, site);
  r.api = static_cast<uint16_t>(trace::Api::nvtx);
  return r;
}
Events& heap(Events& e, int64_t t, uint64_t id, uint64_t address, uint64_t bytes) {
  return e.add(nvtx(t, Op::heap_register, id, address, bytes));
}
Events& region(Events& e, int64_t t, uint64_t id, uint64_t address, uint64_t bytes,
               uint32_t site = 0) {
  return e.add(nvtx(t, Op::region_register, id, address, bytes, site));
}
Events& resize(Events& e, int64_t t, uint64_t address, uint64_t bytes) {
  return e.add(nvtx(t, Op::region_resize, 0, address, bytes));
}
Events& unregister(Events& e, int64_t t, uint64_t address) {
  return e.add(nvtx(t, Op::region_unregister, 0, address, 0));
}

// Bytes by site of a list of rows.
std::map<uint32_t, uint64_t> by_site(const std::vector<GroupRow>& rows) {
  std::map<uint32_t, uint64_t> m;
  for (const GroupRow& r : rows) m[r.site] += r.bytes;
  return m;
}
uint64_t sum(const std::vector<GroupRow>& rows) {
  uint64_t s = 0;
  for (const GroupRow& r : rows) s += r.bytes;
  return s;
}

// The heap of nvtx_program (tests/nvtx): 16 MiB, regions of 1, 2 and 3 MiB at +0, +2 and +6 MiB
// (sites 5, 6, 7), a 12 MiB allocation beside it, the second region grown to 4 MiB.
Events pool_with_regions() {
  Events e;
  e.stack(5, {0x401000}).stack(6, {0x402000}).stack(7, {0x403000}).stack(9, {0x404000});
  e.alloc(10, kA, 16 * kMiB, 9);
  heap(e, 20, 1, kA, 16 * kMiB);
  region(e, 30, 1, kA, 1 * kMiB, 5);
  region(e, 40, 1, kA + 2 * kMiB, 2 * kMiB, 6);
  region(e, 50, 1, kA + 6 * kMiB, 3 * kMiB, 7);
  e.alloc(60, kB, 12 * kMiB, 9);
  resize(e, 70, kA + 2 * kMiB, 4 * kMiB);
  e.free(80, kB);
  unregister(e, 90, kA);
  unregister(e, 100, kA + 6 * kMiB);
  return e;
}

TEST(NvtxHeaps, RegionsArePooledAllocationsInTheHeapsSegment) {
  const Report r = pool_with_regions().analyze();
  ASSERT_EQ(r.devices.size(), 1u);
  const DeviceReport& d = r.devices[0];
  // The peak: the three regions (the second grown to 4 MiB) and the 12 MiB allocation; the heap's
  // 16 MiB are reserved, not allocated.
  EXPECT_EQ(d.peak.allocated_bytes, 20 * kMiB);
  EXPECT_EQ(d.peak.time_ns, 70);
  EXPECT_EQ(d.peak.reserved_at_peak_bytes, 28 * kMiB);
  EXPECT_EQ(d.peak.reserved_bytes, 28 * kMiB);
  EXPECT_EQ(d.peak.grouped_by, "site");
  EXPECT_EQ(
      by_site(d.peak.live_at_peak),
      (std::map<uint32_t, uint64_t>{{5, 1 * kMiB}, {6, 4 * kMiB}, {7, 3 * kMiB}, {9, 12 * kMiB}}));
  EXPECT_EQ(sum(d.peak.live_at_peak_by_size_class), 20 * kMiB);
  // Resized: the region counts in its new size's class (4 MiB: [4, 8) MiB), not its first.
  for (const GroupRow& row : d.peak.live_at_peak_by_size_class) {
    if (row.min_bytes == 4 * kMiB) {
      EXPECT_EQ(row.count, 1u);
    }
    if (row.min_bytes == 2 * kMiB) {
      EXPECT_EQ(row.bytes, 3 * kMiB);  // the third region alone
    }
  }
  // Inside the heap at the peak: free [1, 2) and [9, 16) MiB.
  EXPECT_EQ(d.fragmentation.free_in_segments_at_peak_bytes, 8 * kMiB);
  EXPECT_EQ(d.fragmentation.largest_free_block_at_peak_bytes, 7 * kMiB);
  EXPECT_DOUBLE_EQ(d.fragmentation.external_at_peak, 1.0 - 7.0 / 8.0);
  // The end: the grown region is live (a leak of its site), the heap's memory reserved.
  EXPECT_EQ(d.final.allocated_bytes, 4 * kMiB);
  EXPECT_EQ(d.final.reserved_bytes, 16 * kMiB);
  EXPECT_EQ(by_site(d.leaks), (std::map<uint32_t, uint64_t>{{6, 4 * kMiB}}));
  EXPECT_EQ(d.final.leaked_bytes, 4 * kMiB);
  EXPECT_EQ(d.final.leaked_allocations, 1u);
  // The cudaMalloc of the heap, 3 regions and the allocation beside it; its free and 2 regions.
  EXPECT_EQ(d.counts.alloc, 5u);
  EXPECT_EQ(d.counts.free, 3u);
  EXPECT_EQ(d.counts.segment_reserve, 0u);  // pool records only
  ASSERT_TRUE(d.timeline_by_site.has_value());
  // The heap's row still says how full the allocator's pool got.
  ASSERT_EQ(d.nvtx_heaps.size(), 1u);
  EXPECT_EQ(d.nvtx_heaps[0].regions_peak_bytes, 8 * kMiB);
  EXPECT_EQ(d.nvtx_heaps[0].largest_free_at_peak_bytes, 7 * kMiB);
  EXPECT_EQ(d.nvtx_heaps[0].regions_final_bytes, 4 * kMiB);
  EXPECT_FALSE(d.nvtx_heaps[0].closed);
  EXPECT_TRUE(d.nvtx_heaps[0].counted);
}

TEST(NvtxHeaps, HeapUnregisterGivesTheAllocationBack) {
  Events e = pool_with_regions();
  e.add(nvtx(110, Op::heap_unregister, 1, 0, 0));
  // The allocation is plain again: allocated as its 16 MiB.
  e.alloc(120, kB, 1 * kMiB, 9);
  const DeviceReport during = e.analyze().devices[0];
  EXPECT_EQ(during.final.allocated_bytes, 17 * kMiB);
  EXPECT_EQ(during.final.reserved_bytes, 17 * kMiB);
  EXPECT_EQ(by_site(during.leaks), (std::map<uint32_t, uint64_t>{{9, 17 * kMiB}}));
  EXPECT_EQ(during.counts.free, 4u);  // the last region, freed with its heap
  e.free(130, kA).free(140, kB);
  const DeviceReport d = e.analyze().devices[0];
  EXPECT_EQ(d.peak.allocated_bytes, 20 * kMiB);
  EXPECT_EQ(d.final.allocated_bytes, 0u);
  EXPECT_EQ(d.final.reserved_bytes, 0u);
  EXPECT_TRUE(d.leaks.empty());
  EXPECT_EQ(d.counts.alloc, 6u);
  EXPECT_EQ(d.counts.free, 6u);
  EXPECT_EQ(d.fragmentation.free_in_segments_at_peak_bytes, 8 * kMiB);
  ASSERT_EQ(d.nvtx_heaps.size(), 1u);
  EXPECT_TRUE(d.nvtx_heaps[0].closed);
  EXPECT_EQ(d.nvtx_heaps[0].end_ns, 110);
  EXPECT_EQ(d.nvtx_heaps[0].regions_final_bytes, 0u);
}

// The program frees the heap's memory with its heap still registered: its regions go with it, in
// the same step (never the heap's 16 MiB allocated on top of what else is live).
TEST(NvtxHeaps, FreeingTheAllocationEndsItsHeaps) {
  Events e;
  e.alloc(10, kA, 16 * kMiB);
  heap(e, 20, 1, kA, 16 * kMiB);
  region(e, 30, 1, kA, 1 * kMiB);
  region(e, 40, 1, kA + 4 * kMiB, 2 * kMiB);
  e.alloc(50, kB, 10 * kMiB);  // 13 MiB allocated
  e.free(60, kA);
  const DeviceReport d = e.analyze().devices[0];
  EXPECT_EQ(d.peak.allocated_bytes, 16 * kMiB);  // the plain allocation, before the heap
  EXPECT_EQ(d.peak.time_ns, 10);
  EXPECT_EQ(d.peak.reserved_bytes, 26 * kMiB);
  EXPECT_EQ(*std::max_element(d.timeline.allocated.begin(), d.timeline.allocated.end()), 16 * kMiB);
  EXPECT_EQ(d.final.allocated_bytes, 10 * kMiB);
  EXPECT_EQ(d.final.reserved_bytes, 10 * kMiB);
  EXPECT_EQ(d.counts.free, 3u);
  EXPECT_EQ(d.final.leaked_bytes, 10 * kMiB);
  ASSERT_EQ(d.nvtx_heaps.size(), 1u);
  EXPECT_TRUE(d.nvtx_heaps[0].closed);
  EXPECT_EQ(d.nvtx_heaps[0].end_ns, 60);
  // A later heap_unregister of the same id names nothing: ignored.
  e.add(nvtx(70, Op::heap_unregister, 1, 0, 0));
  EXPECT_EQ(e.analyze().devices[0].final.allocated_bytes, 10 * kMiB);
}

TEST(NvtxHeaps, ResetFreesTheRegionsAndKeepsTheSegment) {
  Events e;
  e.alloc(10, kA, 8 * kMiB);
  heap(e, 20, 1, kA, 8 * kMiB);
  region(e, 30, 1, kA, 1 * kMiB);
  region(e, 40, 1, kA + 1 * kMiB, 1 * kMiB);
  e.add(nvtx(50, Op::heap_reset, 1, 0, 0));
  region(e, 60, 1, kA + 4 * kMiB, 2 * kMiB);  // the heap is still there
  const DeviceReport d = e.analyze().devices[0];
  EXPECT_EQ(d.final.allocated_bytes, 2 * kMiB);
  EXPECT_EQ(d.final.reserved_bytes, 8 * kMiB);
  EXPECT_EQ(d.counts.alloc, 4u);
  EXPECT_EQ(d.counts.free, 2u);
  EXPECT_EQ(d.nvtx_heaps[0].regions_registered, 3u);
}

// What the analyzer does with records that do not describe a consistent pool (docs/
// report-schema.md, nvtx_heaps[]): never a crash, never memory counted twice.
TEST(NvtxHeaps, InconsistentRecordsAreIgnoredOrResolved) {
  Events e;
  e.alloc(10, kA, 16 * kMiB);
  // A heap at an address no live allocation holds: no row on any device, its regions count
  // nothing.
  heap(e, 20, 7, 0x1000, 4 * kMiB);
  region(e, 21, 7, 0x1000, 1 * kMiB);
  // A heap inside the allocation (not at its start): the whole allocation becomes the segment,
  // the heap's range is its own.
  heap(e, 30, 1, kA + 8 * kMiB, 4 * kMiB);
  region(e, 31, 1, kA + 8 * kMiB, 1 * kMiB);       // counts: 1 MiB
  region(e, 32, 1, kA + 11 * kMiB, 2 * kMiB);      // past the heap's end: ignored
  region(e, 33, 1, kA, 1 * kMiB);                  // before the heap's start: ignored
  region(e, 34, 1, kA + 8 * kMiB + 4096, 4096);    // over the first region: ignored
  region(e, 35, 1, kA + 9 * kMiB, 0);              // no bytes: ignored
  region(e, 36, 1, kA + 10 * kMiB, 1 * kMiB);      // counts: 2 MiB
  region(e, 37, 1, kA + 10 * kMiB, 2 * kMiB);      // the same address again: the newer, 3 MiB
  resize(e, 38, kA + 8 * kMiB, 3 * kMiB);          // into the region after it: ignored
  resize(e, 39, kA + 10 * kMiB, 3 * kMiB);         // past the heap's end: ignored
  resize(e, 40, kA + 8 * kMiB, 0);                 // to 0 bytes: ignored
  unregister(e, 41, kA + 5 * kMiB);                // no region there: ignored
  e.add(nvtx(42, Op::heap_reset, 99, 0, 0));       // no such heap: ignored
  e.add(nvtx(43, Op::heap_unregister, 99, 0, 0));  // the same
  const DeviceReport d = e.analyze().devices[0];
  EXPECT_EQ(d.final.allocated_bytes, 3 * kMiB);
  EXPECT_EQ(d.final.reserved_bytes, 16 * kMiB);
  EXPECT_EQ(d.peak.allocated_bytes, 16 * kMiB);
  EXPECT_EQ(d.counts.alloc, 4u);  // the allocation and 3 regions (one replaced)
  EXPECT_EQ(d.counts.free, 1u);   // the replaced one
  ASSERT_EQ(d.nvtx_heaps.size(), 1u);
  EXPECT_EQ(d.nvtx_heaps[0].address, kA + 8 * kMiB);
  EXPECT_EQ(d.nvtx_heaps[0].regions_final_bytes, 3 * kMiB);
  EXPECT_EQ(d.nvtx_heaps[0].regions_registered, 3u);
}

// The held-by-nothing heap is on no device even when the trace has a device -1 (records that did
// not say which device): it was listed there, as if an allocation of device -1 held it.
TEST(NvtxHeaps, AHeapNoAllocationHoldsIsNotListedOnDeviceMinusOne) {
  Events e;
  e.alloc(5, kB, 1 * kMiB, 0, -1);
  e.alloc(10, kA, 16 * kMiB);
  heap(e, 20, 7, 0x1000, 4 * kMiB);
  region(e, 21, 7, 0x1000, 1 * kMiB);
  heap(e, 30, 1, kA, 4 * kMiB);
  heap(e, 40, 2, kB, 1 * kMiB);  // held by device -1's allocation: listed there
  const Report r = e.analyze();
  ASSERT_EQ(r.devices.size(), 2u);
  ASSERT_EQ(r.devices[0].device, -1);
  ASSERT_EQ(r.devices[0].nvtx_heaps.size(), 1u);
  EXPECT_EQ(r.devices[0].nvtx_heaps[0].address, kB);
  EXPECT_EQ(r.devices[0].final.allocated_bytes, 0u);
  EXPECT_EQ(r.devices[0].final.reserved_bytes, 1 * kMiB);
  ASSERT_EQ(r.devices[1].nvtx_heaps.size(), 1u);
  EXPECT_EQ(r.devices[1].nvtx_heaps[0].address, kA);
}

// Two heaps in one allocation share its segment; it is the allocation again once both are gone.
// A heap id registered again while open ends the older heap first.
TEST(NvtxHeaps, HeapsShareTheirAllocationsSegment) {
  Events e;
  e.alloc(10, kA, 16 * kMiB);
  heap(e, 20, 1, kA, 8 * kMiB);
  heap(e, 21, 2, kA + 8 * kMiB, 8 * kMiB);
  region(e, 30, 1, kA, 1 * kMiB);
  region(e, 31, 2, kA + 8 * kMiB, 2 * kMiB);
  e.add(nvtx(40, Op::heap_unregister, 1, 0, 0));
  const DeviceReport one = e.analyze().devices[0];
  EXPECT_EQ(one.final.allocated_bytes, 2 * kMiB);
  EXPECT_EQ(one.final.reserved_bytes, 16 * kMiB);
  // Id 2 again: the older heap 2 ends (its region freed, the allocation plain for an instant),
  // and the newer one makes the allocation a segment again.
  heap(e, 50, 2, kA + 8 * kMiB, 8 * kMiB);
  const DeviceReport two = e.analyze().devices[0];
  EXPECT_EQ(two.final.allocated_bytes, 0u);
  EXPECT_EQ(two.final.reserved_bytes, 16 * kMiB);
  EXPECT_EQ(two.counts.free, 2u);
  EXPECT_EQ(two.nvtx_heaps.size(), 3u);
  region(e, 60, 2, kA + 12 * kMiB, 4 * kMiB);
  const DeviceReport three = e.analyze().devices[0];
  EXPECT_EQ(three.final.allocated_bytes, 4 * kMiB);
  EXPECT_EQ(three.final.reserved_bytes, 16 * kMiB);
}

// A region named by NVTX's process-wide heap (id 0) belongs to the open heap whose range holds
// it: found through the open heaps ordered by start (a closed heap no longer holds anything, an
// address between heaps none), and while two open heaps overlap, the oldest that holds it.
TEST(NvtxHeaps, ProcessWideRegionsFindTheHeapThatHoldsThem) {
  Events e;
  e.alloc(10, kA, 16 * kMiB);
  heap(e, 20, 1, kA, 4 * kMiB);
  heap(e, 21, 2, kA + 8 * kMiB, 4 * kMiB);
  region(e, 30, 0, kA + 1 * kMiB, 1 * kMiB);   // heap 1
  region(e, 31, 0, kA + 9 * kMiB, 2 * kMiB);   // heap 2
  region(e, 32, 0, kA + 5 * kMiB, 1 * kMiB);   // between the two: no heap, ignored
  region(e, 33, 0, kA + 12 * kMiB, 1 * kMiB);  // at heap 2's end: ignored
  e.add(nvtx(40, Op::heap_unregister, 2, 0, 0));
  region(e, 41, 0, kA + 10 * kMiB, 1 * kMiB);  // heap 2 is closed: ignored
  {
    const DeviceReport d = e.analyze().devices[0];
    ASSERT_EQ(d.nvtx_heaps.size(), 2u);
    EXPECT_EQ(d.nvtx_heaps[0].regions_registered, 1u);
    EXPECT_EQ(d.nvtx_heaps[0].regions_final_bytes, 1 * kMiB);
    EXPECT_EQ(d.nvtx_heaps[1].regions_registered, 1u);
    EXPECT_EQ(d.final.allocated_bytes, 1 * kMiB);  // heap 2's region went with it
  }
  // A third heap overlapping heap 1 (its second half and on): an address both hold goes to the
  // older, heap 1; one only heap 3 holds, to heap 3.
  heap(e, 50, 3, kA + 2 * kMiB, 6 * kMiB);
  region(e, 51, 0, kA + 3 * kMiB, 512 * 1024);  // heaps 1 and 3 hold it: heap 1
  region(e, 52, 0, kA + 6 * kMiB, 1 * kMiB);    // heap 3 only
  const DeviceReport d = e.analyze().devices[0];
  ASSERT_EQ(d.nvtx_heaps.size(), 3u);
  EXPECT_EQ(d.nvtx_heaps[0].regions_registered, 2u);
  EXPECT_EQ(d.nvtx_heaps[0].regions_final_bytes, 1 * kMiB + 512 * 1024);
  EXPECT_EQ(d.nvtx_heaps[2].regions_registered, 1u);
  EXPECT_EQ(d.nvtx_heaps[2].regions_final_bytes, 1 * kMiB);
}

// A heap over a block of gpumem's own pool (a segment in a segment) or over pinned host memory:
// the row is kept, the numbers are the pool's.
TEST(NvtxHeaps, HeapsOverPooledOrHostMemoryCountNothing) {
  Events e;
  e.segment(10, kA, 32 * kMiB);
  e.pooled(20, kA, 16 * kMiB);
  heap(e, 30, 1, kA, 16 * kMiB);
  region(e, 40, 1, kA, 4 * kMiB);
  e.alloc(50, kB, 4 * kMiB, 0, 0, static_cast<uint16_t>(trace::MemKind::pinned_host));
  heap(e, 60, 2, kB, 4 * kMiB);
  region(e, 70, 2, kB, 1 * kMiB);
  const DeviceReport d = e.analyze().devices[0];
  EXPECT_EQ(d.final.allocated_bytes, 16 * kMiB);
  EXPECT_EQ(d.final.reserved_bytes, 32 * kMiB);
  ASSERT_EQ(d.nvtx_heaps.size(), 2u);
  EXPECT_EQ(d.nvtx_heaps[0].regions_final_bytes, 4 * kMiB);
  EXPECT_FALSE(d.nvtx_heaps[0].counted);
  EXPECT_FALSE(d.nvtx_heaps[1].counted);
  e.free(80, kA);
  EXPECT_EQ(e.analyze().devices[0].final.allocated_bytes, 0u);
}

// An allocator filling its heap region by region, freeing some and filling on: each region is a
// new peak, and the heap's largest gap at its peak is kept from a structure of its gaps once the
// heap holds 32 regions (a scan of every region at each peak made this quadratic). The numbers
// are checked against a brute-force model of the same stream.
TEST(NvtxHeaps, LargestGapAtThePeakOfAHeapFilledRegionByRegion) {
  Events e;
  e.alloc(10, kA, 128 * kMiB);
  heap(e, 20, 1, kA, 128 * kMiB);
  std::map<uint64_t, uint64_t> live;  // the model: address -> bytes
  uint64_t live_bytes = 0, peak = 0, peak_count = 0, gap_at_peak = 0;
  auto largest_gap = [&] {
    uint64_t at = kA, largest = 0;
    for (const auto& [address, bytes] : live) {
      largest = std::max(largest, address - at);
      at = address + bytes;
    }
    return std::max(largest, kA + 128 * kMiB - at);
  };
  auto changed = [&] {
    if (live_bytes <= peak) return;
    peak = live_bytes;
    peak_count = live.size();
    gap_at_peak = largest_gap();
  };
  int64_t t = 30;
  uint64_t next = kA;
  std::vector<uint64_t> placed;
  auto add = [&](uint64_t i) {
    next += 512 * (i % 5);
    const uint64_t bytes = 4096 * (1 + i % 7);
    region(e, t++, 1, next, bytes);
    live[next] = bytes;
    live_bytes += bytes;
    placed.push_back(next);
    next += bytes;
    changed();
  };
  for (uint64_t i = 0; i < 2000; ++i) add(i);
  for (size_t i = 100; i < 400; ++i) {  // the heap shrinks: no new peak
    unregister(e, t++, placed[i]);
    live_bytes -= live[placed[i]];
    live.erase(placed[i]);
  }
  resize(e, t++, placed[50], 4096 * (1 + 50 % 7) - 2048);
  live_bytes -= 2048;
  live[placed[50]] -= 2048;
  for (uint64_t i = 2000; i < 4000; ++i) add(i);
  ASSERT_LT(next, kA + 128 * kMiB);

  const Report r = e.analyze();
  ASSERT_EQ(r.devices.size(), 1u);
  ASSERT_EQ(r.devices[0].nvtx_heaps.size(), 1u);
  const NvtxHeapRow& h = r.devices[0].nvtx_heaps[0];
  EXPECT_EQ(h.regions_registered, 4000u);
  EXPECT_EQ(h.regions_peak_bytes, peak);
  EXPECT_EQ(h.regions_peak_count, peak_count);
  EXPECT_EQ(h.largest_free_at_peak_bytes, gap_at_peak);
  EXPECT_EQ(h.regions_final_bytes, live_bytes);
  // The gap after the last region is the largest: what remains of the 128 MiB.
  EXPECT_EQ(gap_at_peak, kA + 128 * kMiB - next);
}

}  // namespace
}  // namespace gpumem::analyzer
