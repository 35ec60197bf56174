// The peak against a brute-force replay on random traces, and the live-at-peak rows against the
// peak: both must match exactly.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "events.h"

namespace gpumem::analyzer {
namespace {

using testing::Events;

struct Expected {
  uint64_t peak = 0;
  int64_t peak_t = 0;
  uint64_t final = 0;
  uint64_t live_count = 0;
};

// Random alloc/free sequence over a small address pool (so addresses are reused); returns the
// events and the brute-force answer (max of the running sum, first time reached).
Events random_trace(uint32_t seed, size_t n, Expected* expected, int devices = 1) {
  std::mt19937_64 rng(seed);
  Events e;
  std::map<uint64_t, std::pair<uint64_t, int>> live;  // address -> bytes, device
  std::vector<uint64_t> running(devices, 0);
  for (size_t i = 0; i < n; ++i) {
    int64_t t = static_cast<int64_t>(i) * 10;
    uint64_t address = 0x1000 + (rng() % 512) * 0x100;
    auto it = live.find(address);
    if (it != live.end()) {
      running[it->second.second] -= it->second.first;
      e.free(t, address, it->second.second);
      live.erase(it);
    } else {
      uint64_t bytes = (rng() % 4 == 0) ? rng() % (64 << 20) : rng() % 4096;
      int dev = static_cast<int>(rng() % devices);
      live[address] = {bytes, dev};
      running[dev] += bytes;
      e.alloc(t, address, bytes, static_cast<uint32_t>(rng() % 8), dev);
      if (dev == 0 && running[0] > expected->peak) {
        expected->peak = running[0];
        expected->peak_t = t;
      }
    }
  }
  expected->final = running[0];
  for (const auto& [a, v] : live) expected->live_count += v.second == 0;
  return e;
}

TEST(Random, PeakMatchesBruteForceReplay) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    Expected want;
    Events e = random_trace(seed, 5000, &want);
    Report r = e.analyze();
    ASSERT_EQ(r.devices.size(), 1u) << "seed " << seed;
    const DeviceReport& d = r.devices[0];
    EXPECT_EQ(d.peak.allocated_bytes, want.peak) << "seed " << seed;
    EXPECT_EQ(d.peak.time_ns, want.peak_t) << "seed " << seed;
    EXPECT_EQ(d.peak.reserved_bytes, want.peak) << "seed " << seed;
    EXPECT_EQ(d.final.allocated_bytes, want.final) << "seed " << seed;
    EXPECT_EQ(d.final.leaked_allocations, want.live_count) << "seed " << seed;
    // Rows add up to the peak exactly, both groupings.
    uint64_t by_class = 0, by_site = 0;
    for (const auto& row : d.peak.live_at_peak_by_size_class) by_class += row.bytes;
    for (const auto& row : d.peak.live_at_peak) by_site += row.bytes;
    EXPECT_EQ(by_class, want.peak) << "seed " << seed;
    EXPECT_EQ(by_site, want.peak) << "seed " << seed;
    EXPECT_EQ(d.peak.grouped_by, "site");
    // The timeline keeps the true peak value.
    uint64_t timeline_max = 0;
    for (uint64_t v : d.timeline.allocated) timeline_max = std::max(timeline_max, v);
    EXPECT_EQ(timeline_max, want.peak) << "seed " << seed;
    EXPECT_LE(d.timeline.t_ns.size(), 2000u);
  }
}

TEST(Random, MultiDevicePeakMatchesBruteForceOnDeviceZero) {
  for (uint32_t seed = 100; seed < 110; ++seed) {
    Expected want;
    Events e = random_trace(seed, 4000, &want, 3);
    Report r = e.analyze();
    ASSERT_GE(r.devices.size(), 1u);
    ASSERT_EQ(r.devices[0].device, 0);
    EXPECT_EQ(r.devices[0].peak.allocated_bytes, want.peak) << "seed " << seed;
    EXPECT_EQ(r.devices[0].final.allocated_bytes, want.final) << "seed " << seed;
  }
}

TEST(Random, SmallTimelineStillHoldsThePeak) {
  Expected want;
  Events e = random_trace(7, 20000, &want);
  AnalysisOptions options;
  options.max_points = 17;
  Report r = e.analyze(testing::make_header(), options);
  const Timeline& tl = r.devices[0].timeline;
  EXPECT_LE(tl.t_ns.size(), 17u);
  EXPECT_GE(tl.t_ns.size(), 8u);  // the boxes double: at least half of them are used
  uint64_t timeline_max = 0;
  int64_t at = 0;
  for (size_t i = 0; i < tl.allocated.size(); ++i)
    if (tl.allocated[i] > timeline_max) timeline_max = tl.allocated[i], at = tl.t_ns[i];
  EXPECT_EQ(timeline_max, want.peak);
  EXPECT_EQ(at, want.peak_t);
  for (size_t i = 1; i < tl.t_ns.size(); ++i) EXPECT_LT(tl.t_ns[i - 1], tl.t_ns[i]);
}

}  // namespace
}  // namespace gpumem::analyzer
