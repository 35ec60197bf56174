// A generated big trace analysed in bounded memory: ~2M events by default, 50M with
// GPUMEM_TEST_LONG=1. Peak RSS must stay far below what holding the events would take, and the
// timeline must stay within its points and still hold the true peak.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdlib>
#include <random>

#include "events.h"
#include "gpumem/analyzer/render_json.h"

namespace gpumem::analyzer {
namespace {

long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

TEST(Big, StreamsInBoundedMemory) {
  const bool long_run = std::getenv("GPUMEM_TEST_LONG") && std::string(std::getenv("GPUMEM_TEST_LONG")) == "1";
  const uint64_t n = long_run ? 50'000'000 : 2'000'000;
  const long rss_before = peak_rss_kib();
  Analysis a;
  a.begin_trace(testing::make_header(), "big.trace");
  std::mt19937_64 rng(42);
  // At most 4096 allocations live at once (a training step's working set); addresses reused.
  std::vector<uint64_t> live_bytes(4096, 0);
  uint64_t running = 0, peak = 0;
  bool huge_done = false;
  trace::Event ev;
  for (uint64_t i = 0; i < n; ++i) {
    size_t slot = rng() % live_bytes.size();
    uint64_t address = 0x7f0000000000ull + slot * 0x100000;
    int64_t t = static_cast<int64_t>(i) * 100;
    if (live_bytes[slot]) {
      ev.rec = testing::Events::rec(t, trace::Op::free, address, 0, 0, 0);
      running -= live_bytes[slot];
      live_bytes[slot] = 0;
    } else {
      uint64_t bytes = 1 + rng() % (1 << 20);
      // One huge allocation in the middle of the run: the peak the timeline must keep.
      if (!huge_done && i >= n / 2) {
        bytes = 64ull << 30;
        huge_done = true;
      }
      ev.rec = testing::Events::rec(t, trace::Op::alloc, address, bytes, 0, 0,
                                    static_cast<uint32_t>(rng() % 64));
      live_bytes[slot] = bytes;
      running += bytes;
      peak = std::max(peak, running);
    }
    a.feed(ev);
  }
  a.end_trace(trace::ReadStats{});
  Report r = a.finish();
  const DeviceReport& d = r.devices[0];
  EXPECT_EQ(d.peak.allocated_bytes, peak);
  EXPECT_GE(peak, 64ull << 30);
  EXPECT_EQ(r.traces[0].events, n);
  auto j = nlohmann::json::parse(render_json(r));
  const auto& tl = j["devices"][0]["timeline"];
  EXPECT_LE(tl["t_ns"].size(), 2000u);
  EXPECT_GE(tl["t_ns"].size(), 1000u);
  uint64_t max = 0;
  for (const auto& v : tl["allocated"]) max = std::max(max, v.get<uint64_t>());
  EXPECT_EQ(max, peak);
  // Holding the events alone would take n * 64 bytes (128 MiB at 2M, 3.2 GiB at 50M); the
  // analysis must stay within a generous 64 MiB of growth whatever n is.
  const long growth_kib = peak_rss_kib() - rss_before;
  EXPECT_LT(growth_kib, 64 * 1024) << "peak RSS grew by " << growth_kib << " KiB";
}

}  // namespace
}  // namespace gpumem::analyzer
