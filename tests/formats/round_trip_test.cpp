// trace -> snapshot -> trace and trace -> RMM CSV -> trace give the report the trace gives:
// the same peaks, live-at-peak (by size class) and leaks, on demo-like and random traces.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "gpumem/formats/pickle.h"
#include "support.h"
#include "trace_file.h"
#include "units.h"

namespace gpumem::formats {
namespace {

using formats_test::analyze;
using formats_test::expect_same;
using formats_test::temp_file;
using replay_test::TraceFile;

analyzer::Report through(TraceFile& t, const std::string& name, bool csv) {
  const std::string path = temp_file(name + ".trace");
  t.write(path);
  std::string bytes, error;
  EXPECT_TRUE(csv ? trace_to_rmm_csv(path, -1, &bytes, &error)
                  : trace_to_snapshot(path, &bytes, &error))
      << error;
  ::unlink(path.c_str());
  EXPECT_EQ(detect_format(bytes.substr(0, 64)),
            csv ? InputFormat::rmm_csv : InputFormat::pytorch_snapshot);
  TraceImage image;
  EXPECT_TRUE(csv ? rmm_csv_to_trace(bytes, name, &image, &error)
                  : snapshot_to_trace(bytes, name, &image, &error))
      << error;
  return analyze(image, name + "-back");
}

analyzer::Report direct(TraceFile& t, const std::string& name) {
  const std::string path = temp_file(name + ".trace");
  t.write(path);
  analyzer::Report r = analyze(path);
  ::unlink(path.c_str());
  return r;
}

// Like the demo's trainer under GPUMEM_POOL=growth: weights kept, activations freed each step,
// inside 2 MiB and 20 MiB segments; one segment given back; one leak; an out-of-memory.
TraceFile demo_pooled() {
  TraceFile t(80ull << 30, "growth");
  const uint64_t s1 = 0x7f0000000000, s2 = 0x7f0100000000;
  const uint16_t pooled = trace::kFlagPooled;
  t.add(trace::Op::segment_reserve, s1, 2 * kMiB, 0, trace::Api::pool).aux = 1;
  t.alloc(s1, 25600, 0, pooled);
  t.alloc(s1 + 25600, 256, 0, pooled);
  t.add(trace::Op::segment_reserve, s2, 20 * kMiB, 0, trace::Api::pool).aux = 1;
  for (int step = 0; step < 3; ++step) {
    t.alloc(s2, 8 * kMiB, 0, pooled);
    t.alloc(s2 + 8 * kMiB, 4 * kMiB + step, 0, pooled);
    t.free(s2 + 8 * kMiB, 4 * kMiB + step, 0, pooled);
    t.free(s2, 8 * kMiB, 0, pooled);
  }
  t.failed(64 * kMiB, 22 * kMiB);
  t.add(trace::Op::segment_release, s2, 20 * kMiB, 0, trace::Api::pool).aux = 1;
  t.free(s1 + 25600, 256, 0, pooled);
  return t;  // s1 + 25600 B stays live: a leak
}

TEST(RoundTrip, DemoLikePooledTraceThroughSnapshot) {
  TraceFile t = demo_pooled();
  const analyzer::Report want = direct(t, "demo");
  ASSERT_EQ(want.devices[0].peak.allocated_bytes, 25600 + 256 + 12 * kMiB + 2);
  ASSERT_EQ(want.devices[0].peak.reserved_bytes, 22 * kMiB);
  ASSERT_EQ(want.devices[0].final.leaked_bytes, 25600u);
  expect_same(want, through(t, "demo-snap", false), true);
}

TEST(RoundTrip, DemoLikePooledTraceThroughCsvKeepsAllocationsNotSegments) {
  TraceFile t = demo_pooled();
  const analyzer::Report want = direct(t, "demo-c");
  const analyzer::Report got = through(t, "demo-csv", true);
  expect_same(want, got, false);
  // RMM's log has no segments: reserved is what the allocations hold.
  EXPECT_EQ(got.devices[0].peak.reserved_bytes, 25600 + 256 + 12 * kMiB + 2);
}

// Random unpooled traces over a small address pool (addresses reused), with streams.
TraceFile random_trace(uint32_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  TraceFile t(80ull << 30);
  std::map<uint64_t, uint64_t> live;
  for (size_t i = 0; i < n; ++i) {
    // 64 MiB apart: allocations that overlap are a damaged trace's, which an export leaves out.
    const uint64_t address = 0x7f0000000000 + (rng() % 512) * (64 * kMiB);
    auto it = live.find(address);
    if (it != live.end()) {
      t.free(address, it->second);
      live.erase(it);
    } else {
      const uint64_t bytes = 1 + ((rng() % 4 == 0) ? rng() % (64 * kMiB) : rng() % 4096);
      t.alloc(address, bytes);
      live[address] = bytes;
    }
  }
  return t;
}

TEST(RoundTrip, RandomTracesThroughSnapshotAndCsv) {
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE(seed);
    TraceFile t = random_trace(seed, 3000);
    const analyzer::Report want = direct(t, "rand");
    ASSERT_GT(want.devices[0].peak.allocated_bytes, 0u);
    expect_same(want, through(t, "rand-snap", false), true);
    expect_same(want, through(t, "rand-csv", true), true);
  }
}

// Random pooled traces: blocks in 1 MiB slots of four 64 MiB segments; an empty segment is
// sometimes given back and taken again.
TEST(RoundTrip, RandomPooledTracesThroughSnapshot) {
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    TraceFile t(80ull << 30, "growth");
    const uint16_t pooled = trace::kFlagPooled;
    std::map<uint64_t, uint64_t> live;
    std::vector<int> in_segment(4, 0);
    std::vector<bool> reserved(4, false);
    for (size_t i = 0; i < 3000; ++i) {
      const int seg = static_cast<int>(rng() % 4);
      const uint64_t base = 0x7f0000000000 + static_cast<uint64_t>(seg) * 0x10000000;
      if (!reserved[seg]) {
        t.add(trace::Op::segment_reserve, base, 64 * kMiB, 0, trace::Api::pool).aux = 1;
        reserved[seg] = true;
      }
      const uint64_t address = base + (rng() % 64) * kMiB;
      auto it = live.find(address);
      if (it != live.end()) {
        t.free(address, it->second, 0, pooled);
        live.erase(it);
        if (--in_segment[seg] == 0 && rng() % 2 == 0) {
          t.add(trace::Op::segment_release, base, 64 * kMiB, 0, trace::Api::pool).aux = 1;
          reserved[seg] = false;
        }
      } else {
        const uint64_t bytes = 1 + rng() % kMiB;
        t.alloc(address, bytes, 0, pooled);
        live[address] = bytes;
        ++in_segment[seg];
      }
    }
    const analyzer::Report want = direct(t, "prand");
    expect_same(want, through(t, "prand-snap", false), true);
  }
}

// gpumem's expandable pool (GPUMEM_POOL=expandable) as it traces the fragmenter (tests/expandable):
// 2 MiB granules (segments of kind physical) mapped into one range, eight 3 MiB blocks, every other
// one freed, the four granules wholly inside those holes unmapped, six more mapped for 12 MiB.
// A damaged trace's memory that no snapshot can hold: a segment overlapping one held, an unpooled
// allocation inside a pool segment, a pooled block reaching past its segment's end, one over a
// live block, one of no bytes, the segment given back with live blocks in it, and an allocation
// at a live address whose free was lost. The first six are left out, and the note says how many;
// the lost free ends the old owner, as the analyzer ends it. The export then round-trips unchanged:
// before, each import and export of such a snapshot added or moved blocks (found by
// fuzz_roundtrip).
TEST(RoundTrip, ADamagedTracesOverlapsAreLeftOutAndTheExportIsStable) {
  TraceFile t(80ull << 30, "growth");
  const uint64_t s1 = 0x7f0000000000;
  const uint16_t pooled = trace::kFlagPooled;
  t.add(trace::Op::segment_reserve, s1, 2 * kMiB, 0, trace::Api::pool).aux = 1;
  t.add(trace::Op::segment_reserve, s1 + kMiB, 2 * kMiB, 0, trace::Api::pool).aux = 1;  // out
  t.alloc(s1 + 4096, 12 * kMiB);              // unpooled, inside s1: out
  t.alloc(s1 + kMiB, 8ull << 40, 0, pooled);  // 8 TiB from inside s1: out
  t.alloc(s1, 8192, 0, pooled);
  t.alloc(s1 + 4096, 512, 0, pooled);  // over the live block: out
  t.alloc(s1, 4096, 0, pooled);        // the 8192's free was lost
  t.alloc(s1 + 8192, 1024, 0, pooled);
  t.alloc(s1 + 16384, 0, 0, pooled);                                             // no bytes: out
  t.add(trace::Op::segment_release, s1, 2 * kMiB, 0, trace::Api::pool).aux = 1;  // live: out
  const std::string path = temp_file("damaged.trace");
  t.write(path);
  std::string first, error, note;
  ASSERT_TRUE(trace_to_snapshot(path, &first, &error, &note)) << error;
  ::unlink(path.c_str());
  EXPECT_EQ(note, "6 record(s) of '" + path +
                      "' left out: memory no snapshot can hold (no bytes, overlapping memory "
                      "already held, a pooled block in no segment held, or a segment given back "
                      "with live blocks in it: a damaged trace)");
  TraceImage image;
  ASSERT_TRUE(snapshot_to_trace(first, "damaged", &image, &error)) << error;
  const analyzer::Report back = analyze(image, "damaged-back");
  ASSERT_EQ(back.devices.size(), 1u);
  EXPECT_EQ(back.devices[0].final.allocated_bytes, 4096u + 1024u);
  EXPECT_EQ(back.devices[0].final.reserved_bytes, 2 * kMiB);
  EXPECT_EQ(back.devices[0].peak.allocated_bytes, 8192u);
  EXPECT_EQ(back.devices[0].counts.alloc, 3u);
  EXPECT_EQ(back.devices[0].counts.free, 1u);
  // Exported again and imported again, twice: the same snapshot each time.
  std::string second, third;
  for (std::string* out : {&second, &third}) {
    const std::string again = temp_file("damaged-again.trace");
    ASSERT_TRUE(image.write(again, &error)) << error;
    ASSERT_TRUE(trace_to_snapshot(again, out, &error)) << error;
    ::unlink(again.c_str());
    image = TraceImage();
    ASSERT_TRUE(snapshot_to_trace(*out, "damaged", &image, &error)) << error;
  }
  EXPECT_EQ(second, third);
}

// An allocation reusing a freed address, its record after the free's but stamped earlier (a
// damaged trace's times, or another tool's: gpumem's writer stamps a free before the real free
// can hand its address on). The snapshot's times never go back (the allocation gets the free's
// time), so its import pairs the records as the trace does: before, it put the allocation first,
// at an address still live.
TEST(RoundTrip, ARecordStampedBeforeTheOneAheadOfItKeepsItsPlace) {
  TraceFile t(80ull << 30);
  const uint64_t x = 0x7f0000000000;
  t.alloc(x, kMiB);  // at 1 µs (TraceFile's times)
  t.free(x, kMiB);   // at 2 µs
  trace::Record& reuse = t.add(trace::Op::alloc, x, 2 * kMiB);
  reuse.t_ns -= 1500;                                         // 1.5 µs: before the free
  t.add(trace::Op::alloc, x + 64 * kMiB, kMiB).t_ns -= 2800;  // 1.2 µs
  const analyzer::Report want = direct(t, "order");
  ASSERT_EQ(want.devices[0].final.allocated_bytes, 3 * kMiB);
  const analyzer::Report got = through(t, "order-snap", false);
  ASSERT_EQ(got.devices.size(), 1u);
  EXPECT_EQ(got.devices[0].final.allocated_bytes, 3 * kMiB);
  EXPECT_EQ(got.devices[0].peak.allocated_bytes, 3 * kMiB);
  EXPECT_EQ(got.devices[0].counts.alloc, 3u);
  EXPECT_EQ(got.devices[0].counts.free, 1u);
}

TraceFile expandable_fragmenter() {
  TraceFile t(16ull << 30, "expandable");
  const uint64_t base = 0x7f0000000000, G = 2 * kMiB;
  const uint16_t pooled = trace::kFlagPooled;
  const uint16_t granule = static_cast<uint16_t>(trace::MemKind::physical) | pooled;
  auto map = [&](uint64_t g) {
    t.add(trace::Op::segment_reserve, base + g * G, G, 0, trace::Api::pool, granule).aux = 0;
  };
  for (uint64_t g = 0; g < 12; ++g) map(g);
  for (uint64_t k = 0; k < 8; ++k) t.alloc(base + k * 3 * kMiB, 3 * kMiB, 0, pooled);
  for (uint64_t k = 0; k < 8; k += 2) t.free(base + k * 3 * kMiB, 3 * kMiB, 0, pooled);
  for (uint64_t g : {0, 3, 6, 9})
    t.add(trace::Op::segment_release, base + g * G, G, 0, trace::Api::pool, granule).aux = 0;
  for (uint64_t g = 12; g < 18; ++g) map(g);
  t.alloc(base + 24 * kMiB, 12 * kMiB, 0, pooled);
  return t;  // the 12 kMiB block and blocks 1, 3, 5, 7 stay live
}

// The snapshot shows them as PyTorch shows expandable segments: "segment_map" / "segment_unmap"
// trace entries, and one end-state segment per contiguous mapped range, is_expandable True. Read
// back, the ranges are physical segments again: the same peaks and, joined, the same free space.
TEST(RoundTrip, ExpandablePoolSegmentsAreMappedRangesOfExpandableSegments) {
  TraceFile t = expandable_fragmenter();
  const analyzer::Report want = direct(t, "exp");
  ASSERT_EQ(want.devices[0].peak.reserved_bytes, 28 * kMiB);
  const std::string path = temp_file("exp-snap.trace");
  t.write(path);
  std::string bytes, error;
  ASSERT_TRUE(trace_to_snapshot(path, &bytes, &error)) << error;
  ::unlink(path.c_str());
  PickleDocument doc;
  ASSERT_TRUE(read_pickle(bytes, &doc, &error)) << error;
  std::map<std::string, int> actions;
  const PickleNode* traces = doc.find(doc.root(), "device_traces");
  ASSERT_NE(traces, nullptr);
  for (uint32_t e : doc.at(traces->items.at(0)).items)
    ++actions[doc.find(doc.at(e), "action")->string];
  EXPECT_EQ(actions["segment_map"], 18);
  EXPECT_EQ(actions["segment_unmap"], 4);
  EXPECT_EQ(actions.count("segment_alloc"), 0u);
  EXPECT_EQ(actions["alloc"], 9);
  // Mapped at the end: granules 1-2, 4-5, 7-8 and 10-17: four ranges of 4, 4, 4 and 16 MiB.
  const PickleNode* segments = doc.find(doc.root(), "segments");
  ASSERT_NE(segments, nullptr);
  ASSERT_EQ(segments->items.size(), 4u);
  const uint64_t want_at[] = {2 * kMiB, 8 * kMiB, 14 * kMiB, 20 * kMiB};
  const uint64_t want_size[] = {4 * kMiB, 4 * kMiB, 4 * kMiB, 16 * kMiB};
  const uint64_t want_allocated[] = {3 * kMiB, 3 * kMiB, 3 * kMiB, 3 * kMiB + 12 * kMiB};
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    const PickleNode& seg = doc.at(segments->items[i]);
    EXPECT_EQ(static_cast<uint64_t>(doc.find(seg, "address")->integer),
              0x7f0000000000 + want_at[i]);
    EXPECT_EQ(static_cast<uint64_t>(doc.find(seg, "total_size")->integer), want_size[i]);
    EXPECT_EQ(static_cast<uint64_t>(doc.find(seg, "allocated_size")->integer), want_allocated[i]);
    const PickleNode* expandable = doc.find(seg, "is_expandable");
    ASSERT_NE(expandable, nullptr);
    EXPECT_EQ(expandable->kind, PickleKind::boolean);
    EXPECT_TRUE(expandable->boolean);
  }
  TraceImage image;
  ASSERT_TRUE(snapshot_to_trace(bytes, "exp", &image, &error)) << error;
  EXPECT_STREQ(image.header().pool, "expandable");
  const analyzer::Report got = analyze(image, "exp-back");
  expect_same(want, got, true);
  const auto& a = want.devices[0].fragmentation;
  const auto& b = got.devices[0].fragmentation;
  EXPECT_EQ(b.free_in_segments_at_peak_bytes, a.free_in_segments_at_peak_bytes);
  EXPECT_EQ(b.largest_free_block_at_peak_bytes, a.largest_free_block_at_peak_bytes);
  EXPECT_DOUBLE_EQ(b.external_max, a.external_max);
  EXPECT_DOUBLE_EQ(a.external_max, 0.75);  // four 3 kMiB holes, joined over mapped granules
}

// A PyTorch snapshot with expandable segments whose history starts late: an unmap of part of a
// range mapped before the history, and an end-state range the history never mapped.
TEST(RoundTrip, ExpandableSnapshotWithoutItsBeginningMapsWhatWasMappedBefore) {
  const std::string bytes = formats_test::python_pickle("exp-late", R"(
import pickle, sys
M = 1 << 20
B = 0x7f0000000000
snap = {
  'device_traces': [[
    {'action': 'segment_unmap', 'addr': B + 20 * M, 'size': 20 * M, 'stream': 0, 'time_us': 10},
    {'action': 'alloc', 'addr': B, 'size': 8 * M, 'stream': 0, 'time_us': 11},
  ]],
  'segments': [
    {'device': 0, 'address': B, 'total_size': 20 * M, 'allocated_size': 8 * M, 'stream': 0,
     'is_expandable': True, 'blocks': [
       {'address': B, 'size': 8 * M, 'state': 'active_allocated'},
       {'address': B + 8 * M, 'size': 12 * M, 'state': 'inactive'}]},
  ],
}
with open(sys.argv[1], 'wb') as f:
  pickle.dump(snap, f, protocol=4)
)");
  TraceImage image;
  std::string error;
  ASSERT_TRUE(snapshot_to_trace(bytes, "exp-late", &image, &error)) << error;
  EXPECT_STREQ(image.header().pool, "expandable");
  const analyzer::Report r = analyze(image, "exp-late-back");
  ASSERT_EQ(r.devices.size(), 1u);
  // Before the history: [0, 20) MiB (the end state) and [20, 40) MiB (the unmapped part).
  EXPECT_EQ(r.devices[0].peak.reserved_bytes, 40 * kMiB);
  EXPECT_EQ(r.devices[0].final.reserved_bytes, 20 * kMiB);
  EXPECT_EQ(r.devices[0].final.allocated_bytes, 8 * kMiB);
  EXPECT_EQ(r.devices[0].counts.segment_reserve, 2u);
  EXPECT_EQ(r.devices[0].counts.segment_release, 1u);
}

}  // namespace
}  // namespace gpumem::formats
