// The reader hands records to the analysis in runs (Analysis::feed(Batch)), and runs of plain
// allocations and frees take the device's fast path (DeviceState::plain_run). Whatever the mix of
// records and wherever the runs are cut, the report must be the one that feeding the same records
// one at a time gives, to the byte.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "events.h"
#include "gpumem/analyzer/render_json.h"

namespace gpumem::analyzer {
namespace {

using testing::Events;
using testing::make_header;

// Random records of every kind the fast path must step aside for: pooled allocations inside
// segments, pinned and managed memory, zero-byte allocations, a second device, phases, lost
// frees (an address allocated again while live), double and unknown frees, free(NULL), failed
// allocations, out-of-order times and call sites.
Events mixed_trace(uint32_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  Events e;
  e.string(1, "forward").string(2, "backward").stack(3, {0x401000, 0x402000});
  auto pick = [&](uint64_t below) { return rng() % below; };
  int64_t t = 0;
  bool phase_open = false;
  for (size_t i = 0; i < n; ++i) {
    t += static_cast<int64_t>(pick(2000));
    const int64_t when = pick(50) == 0 ? t - static_cast<int64_t>(pick(5000)) : t;  // out of order
    const uint64_t address = 0x100000 + pick(64) * 0x1000;
    const int dev = pick(10) == 0 ? 1 : 0;
    const uint32_t site = pick(4) == 0 ? static_cast<uint32_t>(pick(4)) : 0;
    const uint64_t roll = pick(1000);
    if (roll < 430) {
      uint16_t flags = 0;
      if (pick(20) == 0) flags = static_cast<uint16_t>(trace::MemKind::pinned_host);
      if (pick(20) == 0) flags = static_cast<uint16_t>(trace::MemKind::managed);
      const uint64_t bytes = pick(30) == 0 ? 0 : 1 + pick(1 << 20);
      e.alloc(when, address, bytes, site, dev, flags);
    } else if (roll < 900) {
      const uint64_t pooled = 0x40000000 + pick(4) * 0x1000000 + pick(16) * 0x10000;
      e.free(when, pick(40) == 0 ? 0 : (pick(4) == 0 ? pooled : address), dev);
    } else if (roll < 930) {
      const uint64_t segment = 0x40000000 + pick(4) * 0x1000000;
      if (pick(3) == 0)
        e.release(when, segment, 0x1000000, dev);
      else
        e.segment(when, segment, 0x1000000, dev);
    } else if (roll < 970) {
      e.pooled(when, 0x40000000 + pick(4) * 0x1000000 + pick(16) * 0x10000, 1 + pick(0x10000), dev);
    } else if (roll < 985) {
      if (phase_open)
        e.end(when, 1 + pick(2));
      else
        e.begin(when, 1 + pick(2));
      phase_open = !phase_open;
    } else {
      e.failed(when, 1 + pick(1 << 30), pick(1 << 30), dev);
    }
  }
  return e;
}

// Feeds plain records in runs of random length (blobs one at a time, as the reader does).
Report analyze_in_batches(const Events& e, uint32_t seed) {
  std::mt19937_64 rng(seed);
  Analysis a;
  a.begin_trace(make_header(), "test.trace");
  const std::vector<trace::Record>& recs = e.records();
  size_t i = 0;
  while (i < recs.size()) {
    const uint16_t op = recs[i].op;
    if (op == static_cast<uint16_t>(trace::Op::string) ||
        op == static_cast<uint16_t>(trace::Op::stack)) {
      e.feed_one(a, i++);
      continue;
    }
    size_t n = 1 + rng() % 300;
    size_t end = i;
    while (end < recs.size() && end - i < n &&
           recs[end].op != static_cast<uint16_t>(trace::Op::string) &&
           recs[end].op != static_cast<uint16_t>(trace::Op::stack))
      ++end;
    trace::Batch b;
    b.records = recs.data() + i;
    b.count = end - i;
    a.feed(b);
    i = end;
  }
  a.end_trace(trace::ReadStats{});
  return a.finish();
}

TEST(Batch, RunsGiveTheReportOfOneRecordAtATime) {
  for (uint32_t seed = 1; seed <= 30; ++seed) {
    Events e = mixed_trace(seed, 6000);
    const Report one_by_one = e.analyze();
    // The mix reaches both devices and holds every kind of anomaly the fast path steps aside for.
    ASSERT_EQ(one_by_one.devices.size(), 2u) << "seed " << seed;
    ASSERT_GT(one_by_one.devices[0].counts.double_free + one_by_one.devices[0].counts.free_unknown,
              0u);
    ASSERT_GT(one_by_one.devices[0].counts.alloc_failed, 0u);
    ASSERT_EQ(render_json(analyze_in_batches(e, seed)), render_json(one_by_one)) << "seed " << seed;
  }
}

// A trace of nothing but plain pairs goes through the fast path whole: the numbers must still be
// the exact ones.
TEST(Batch, PlainPairsInOneRunAreCountedExactly) {
  Events e;
  for (int i = 0; i < 1000; ++i) {
    e.alloc(10 * i, 0x1000 + (i % 8) * 0x100, 64 + static_cast<uint64_t>(i % 4), 0);
    e.free(10 * i + 5, 0x1000 + (i % 8) * 0x100);
  }
  const Report r = analyze_in_batches(e, 1);
  ASSERT_EQ(render_json(r), render_json(e.analyze()));
  const DeviceReport& d = r.devices[0];
  EXPECT_EQ(d.counts.alloc, 1000u);
  EXPECT_EQ(d.counts.free, 1000u);
  EXPECT_EQ(d.peak.allocated_bytes, 67u);  // one allocation live at a time, the largest 67 B
  EXPECT_EQ(d.final.allocated_bytes, 0u);
  EXPECT_EQ(d.churn.short_lived, 1000u);
  EXPECT_EQ(d.churn.allocated_bytes_total, 1000u * 64 + 250 * (0 + 1 + 2 + 3));
}

// Sites below the device's site index (kSiteIndexLimit, 65536) and above it, interleaved record by
// record: each site's live bytes are its own, in runs and one record at a time.
TEST(Batch, SitesAboveAndBelowTheSiteIndexKeepTheirOwnBytes) {
  const uint32_t sites[] = {1, 70000, 2, 65535, 65536, 3, 1u << 31};
  Events e;
  std::map<uint32_t, uint64_t> leaked;
  for (int i = 0; i < 700; ++i) {
    const uint32_t site = sites[i % 7];
    const uint64_t bytes = 100 + static_cast<uint64_t>(i % 7);
    e.alloc(10 * i, 0x100000 + static_cast<uint64_t>(i) * 0x1000, bytes, site);
    if (i % 2 == 0) {
      e.free(10 * i + 5, 0x100000 + static_cast<uint64_t>(i) * 0x1000);
    } else {
      leaked[site] += bytes;
    }
  }
  for (const Report& r : {e.analyze(), analyze_in_batches(e, 3)}) {
    ASSERT_EQ(r.devices.size(), 1u);
    std::map<uint32_t, uint64_t> got;
    for (const GroupRow& row : r.devices[0].leaks) got[row.site] += row.bytes;
    EXPECT_EQ(got, leaked);
    std::map<uint32_t, uint64_t> at_end;
    for (const GroupRow& row : r.devices[0].peak.live_at_peak) at_end[row.site] += row.bytes;
    EXPECT_EQ(at_end, leaked);  // the last allocation is the peak: all that leaks is live then
  }
}

// NVTX heaps (analyzer/src/nvtx_heaps.h) over plain allocations: a heap's allocation leaves the
// fast path while it is a segment, and its free ends the heap. Heap and region records among
// plain allocations and frees, with records that name nothing, overlap or repeat.
Events heap_trace(uint32_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  Events e;
  e.stack(3, {0x401000, 0x402000});
  auto pick = [&](uint64_t below) { return rng() % below; };
  auto nvtx = [&](int64_t t, trace::Op op, uint64_t heap, uint64_t address, uint64_t bytes,
                  uint32_t site) {
    trace::Record r = Events::rec(t, op, address, bytes, heap, -1, site);
    r.api = static_cast<uint16_t>(trace::Api::nvtx);
    e.add(r);
  };
  int64_t t = 0;
  for (size_t i = 0; i < n; ++i) {
    t += static_cast<int64_t>(pick(2000));
    const uint64_t address = 0x10000000 + pick(16) * 0x100000;  // 1 MiB apart
    const uint64_t inside = address + pick(16) * 0x8000;
    const uint32_t site = pick(3) == 0 ? 3 : 0;
    const uint64_t roll = pick(100);
    if (roll < 35)
      e.alloc(t, address, 0x40000 + pick(0xC0000), site);
    else if (roll < 60)
      e.free(t, address);
    else if (roll < 67)
      nvtx(t, trace::Op::heap_register, 1 + pick(4), pick(4) == 0 ? inside : address,
           0x20000 + pick(0x100000), 0);
    else if (roll < 71)
      nvtx(t, trace::Op::heap_unregister, 1 + pick(5), 0, 0, 0);
    else if (roll < 73)
      nvtx(t, trace::Op::heap_reset, 1 + pick(5), 0, 0, 0);
    else if (roll < 88)
      nvtx(t, trace::Op::region_register, pick(5), inside, pick(50) == 0 ? 0 : 1 + pick(0x10000),
           site);
    else if (roll < 94)
      nvtx(t, trace::Op::region_resize, 0, inside, pick(0x20000), 0);
    else
      nvtx(t, trace::Op::region_unregister, 0, inside, 0, 0);
  }
  return e;
}

TEST(Batch, NvtxHeapsGiveTheReportOfOneRecordAtATime) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    Events e = heap_trace(seed, 4000);
    const Report one_by_one = e.analyze();
    ASSERT_EQ(one_by_one.devices.size(), 1u);
    uint64_t regions = 0;
    for (const NvtxHeapRow& h : one_by_one.devices[0].nvtx_heaps) regions += h.regions_registered;
    ASSERT_GT(regions, 0u) << "seed " << seed;
    // Regions counted as allocations of the device: heaps became segments.
    uint64_t plain = 0;
    for (const trace::Record& r : e.records())
      plain += r.op == static_cast<uint16_t>(trace::Op::alloc) ? 1 : 0;
    ASSERT_GT(one_by_one.devices[0].counts.alloc, plain) << "seed " << seed;
    // What is live adds up, in both groupings, at the peak and at the end.
    const DeviceReport& d = one_by_one.devices[0];
    uint64_t at_peak = 0, by_class = 0, leaked = 0;
    for (const GroupRow& row : d.peak.live_at_peak) at_peak += row.bytes;
    for (const GroupRow& row : d.peak.live_at_peak_by_size_class) by_class += row.bytes;
    for (const GroupRow& row : d.leaks) leaked += row.bytes;
    EXPECT_EQ(at_peak, d.peak.allocated_bytes) << "seed " << seed;
    EXPECT_EQ(by_class, d.peak.allocated_bytes) << "seed " << seed;
    EXPECT_EQ(leaked, d.final.allocated_bytes) << "seed " << seed;
    EXPECT_LE(d.final.allocated_bytes, d.final.reserved_bytes) << "seed " << seed;
    ASSERT_EQ(render_json(analyze_in_batches(e, seed)), render_json(one_by_one)) << "seed " << seed;
  }
}

}  // namespace
}  // namespace gpumem::analyzer
