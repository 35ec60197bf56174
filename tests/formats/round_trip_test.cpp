// trace -> snapshot -> trace and trace -> RMM CSV -> trace give the report the trace gives:
// the same peaks, live-at-peak (by size class) and leaks, on demo-like and random traces.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "support.h"
#include "trace_file.h"

namespace gpumem::formats {
namespace {

using formats_test::analyze;
using formats_test::expect_same;
using formats_test::temp_file;
using replay_test::TraceFile;

constexpr uint64_t MiB = 1 << 20;

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
  t.add(trace::Op::segment_reserve, s1, 2 * MiB, 0, trace::Api::pool).aux = 1;
  t.alloc(s1, 25600, 0, pooled);
  t.alloc(s1 + 25600, 256, 0, pooled);
  t.add(trace::Op::segment_reserve, s2, 20 * MiB, 0, trace::Api::pool).aux = 1;
  for (int step = 0; step < 3; ++step) {
    t.alloc(s2, 8 * MiB, 0, pooled);
    t.alloc(s2 + 8 * MiB, 4 * MiB + step, 0, pooled);
    t.free(s2 + 8 * MiB, 4 * MiB + step, 0, pooled);
    t.free(s2, 8 * MiB, 0, pooled);
  }
  t.failed(64 * MiB, 22 * MiB);
  t.add(trace::Op::segment_release, s2, 20 * MiB, 0, trace::Api::pool).aux = 1;
  t.free(s1 + 25600, 256, 0, pooled);
  return t;  // s1 + 25600 B stays live: a leak
}

TEST(RoundTrip, DemoLikePooledTraceThroughSnapshot) {
  TraceFile t = demo_pooled();
  const analyzer::Report want = direct(t, "demo");
  ASSERT_EQ(want.devices[0].peak.allocated_bytes, 25600 + 256 + 12 * MiB + 2);
  ASSERT_EQ(want.devices[0].peak.reserved_bytes, 22 * MiB);
  ASSERT_EQ(want.devices[0].final.leaked_bytes, 25600u);
  expect_same(want, through(t, "demo-snap", false), true);
}

TEST(RoundTrip, DemoLikePooledTraceThroughCsvKeepsAllocationsNotSegments) {
  TraceFile t = demo_pooled();
  const analyzer::Report want = direct(t, "demo-c");
  const analyzer::Report got = through(t, "demo-csv", true);
  expect_same(want, got, false);
  // RMM's log has no segments: reserved is what the allocations hold.
  EXPECT_EQ(got.devices[0].peak.reserved_bytes, 25600 + 256 + 12 * MiB + 2);
}

// Random unpooled traces over a small address pool (addresses reused), with streams.
TraceFile random_trace(uint32_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  TraceFile t(80ull << 30);
  std::map<uint64_t, uint64_t> live;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t address = 0x7f0000000000 + (rng() % 512) * 0x100000;
    auto it = live.find(address);
    if (it != live.end()) {
      t.free(address, it->second);
      live.erase(it);
    } else {
      const uint64_t bytes = 1 + ((rng() % 4 == 0) ? rng() % (64 * MiB) : rng() % 4096);
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
        t.add(trace::Op::segment_reserve, base, 64 * MiB, 0, trace::Api::pool).aux = 1;
        reserved[seg] = true;
      }
      const uint64_t address = base + (rng() % 64) * MiB;
      auto it = live.find(address);
      if (it != live.end()) {
        t.free(address, it->second, 0, pooled);
        live.erase(it);
        if (--in_segment[seg] == 0 && rng() % 2 == 0) {
          t.add(trace::Op::segment_release, base, 64 * MiB, 0, trace::Api::pool).aux = 1;
          reserved[seg] = false;
        }
      } else {
        const uint64_t bytes = 1 + rng() % MiB;
        t.alloc(address, bytes, 0, pooled);
        live[address] = bytes;
        ++in_segment[seg];
      }
    }
    const analyzer::Report want = direct(t, "prand");
    expect_same(want, through(t, "prand-snap", false), true);
  }
}

}  // namespace
}  // namespace gpumem::formats
