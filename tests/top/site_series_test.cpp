// gpumem top's analyses keep no series by site (AnalysisOptions::site_series off): the device
// state then logs no live bytes by site for timeline_by_site at all, while feeding. Everything
// else in the report, top's numbers among it, must be what the report with the series gives, to
// the byte: at the end and at every snapshot on the way, fed in runs (the fast path) or one
// record at a time.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "events.h"
#include "gpumem/analyzer/render_json.h"

namespace gpumem::analyzer {
namespace {

using testing::Events;
using testing::make_header;

constexpr size_t kTopPoints = 240;  // top's timeline (top_watch.cpp kTimelinePoints)

// Allocations with call sites (most records change site), frees, lost frees, pooled allocations
// in segments, phases, failed allocations and out-of-order times, long enough for the 240-point
// timeline to coarsen many times and for the live set to reach new peaks now and then.
Events sited_trace(uint32_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  Events e;
  e.string(1, "forward").string(2, "backward").stack(3, {0x401000, 0x402000});
  auto pick = [&](uint64_t below) { return rng() % below; };
  int64_t t = 0;
  bool phase_open = false;
  for (size_t i = 0; i < n; ++i) {
    t += static_cast<int64_t>(pick(3000));
    const int64_t when = pick(80) == 0 ? t - static_cast<int64_t>(pick(5000)) : t;
    const uint64_t address = 0x100000 + pick(256) * 0x1000;
    const uint64_t roll = pick(1000);
    if (roll < 480) {
      e.alloc(when, address, 1 + pick(1 << 20), static_cast<uint32_t>(1 + pick(40)));
    } else if (roll < 950) {
      e.free(when, address);
    } else if (roll < 965) {
      const uint64_t segment = 0x40000000 + pick(4) * 0x1000000;
      if (pick(3) == 0)
        e.release(when, segment, 0x1000000);
      else
        e.segment(when, segment, 0x1000000);
    } else if (roll < 985) {
      e.pooled(when, 0x40000000 + pick(4) * 0x1000000 + pick(16) * 0x10000, 1 + pick(0x10000));
    } else if (roll < 995) {
      if (phase_open)
        e.end(when, 1 + pick(2));
      else
        e.begin(when, 1 + pick(2));
      phase_open = !phase_open;
    } else {
      e.failed(when, 1 + pick(1 << 30), pick(1 << 30));
    }
  }
  return e;
}

// The report's JSON with each device's timeline_by_site taken out; *had_series: some device had
// one.
std::string without_series(const Report& r, bool* had_series) {
  nlohmann::ordered_json j = report_to_json(r);
  *had_series = false;
  for (auto& d : j["devices"]) {
    if (!d.contains("timeline_by_site")) continue;
    *had_series = true;
    d.erase("timeline_by_site");
  }
  return j.dump(1);
}

// Feeds `e` to an analysis with or without the series, in runs of random length (blobs one at
// a time, as the reader hands them over) or one record at a time; a snapshot every `every`
// records. Returns the snapshots' JSON, then the final report's.
std::vector<std::string> analyze(const Events& e, bool series, bool in_runs, size_t every,
                                 bool* had_series) {
  AnalysisOptions options;
  options.max_points = kTopPoints;
  options.site_series = series;
  Analysis a(options);
  a.begin_trace(make_header(), "test.trace");
  std::mt19937_64 rng(7);
  std::vector<std::string> out;
  const std::vector<trace::Record>& recs = e.records();
  size_t i = 0, next_snapshot = every;
  *had_series = false;
  bool had = false;
  while (i < recs.size()) {
    const bool blob = recs[i].op == static_cast<uint16_t>(trace::Op::string) ||
                      recs[i].op == static_cast<uint16_t>(trace::Op::stack);
    if (!in_runs || blob) {
      e.feed_one(a, i++);
    } else {
      size_t end = i;
      const size_t n = 1 + rng() % 300;
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
    if (i >= next_snapshot) {
      out.push_back(without_series(a.snapshot(trace::ReadStats{}), &had));
      *had_series |= had;
      next_snapshot += every;
    }
  }
  a.end_trace(trace::ReadStats{});
  out.push_back(without_series(a.finish(), &had));
  *had_series |= had;
  return out;
}

TEST(TopSiteSeries, ReportsWithoutTheSeriesEqualThoseWithIt) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    const Events e = sited_trace(seed, 20000);
    for (bool in_runs : {true, false}) {
      bool with_series = false, without = false;
      const auto expected = analyze(e, /*series=*/true, in_runs, 1500, &with_series);
      const auto got = analyze(e, /*series=*/false, in_runs, 1500, &without);
      // The comparison is not empty: the report with the series has them, top's has none.
      ASSERT_TRUE(with_series) << "seed " << seed;
      ASSERT_FALSE(without) << "seed " << seed;
      ASSERT_EQ(got.size(), expected.size());
      ASSERT_GE(got.size(), 13u);
      for (size_t k = 0; k < got.size(); ++k)
        ASSERT_EQ(got[k], expected[k]) << "seed " << seed << (in_runs ? ", in runs" : ", one by one")
                                       << ", snapshot " << k << " of " << got.size();
    }
  }
}

// The timeline coarsened (more records than points) and the peak's live set is grouped by site:
// the parts of the report the series' bookkeeping sits beside are exercised.
TEST(TopSiteSeries, TheTraceCoarsensTheTimelineAndGroupsBySite) {
  AnalysisOptions options;
  options.max_points = kTopPoints;
  options.site_series = false;
  const Report r = sited_trace(1, 20000).analyze(make_header(), options);
  ASSERT_EQ(r.devices.size(), 1u);
  const DeviceReport& d = r.devices[0];
  EXPECT_LE(d.timeline.t_ns.size(), kTopPoints);
  EXPECT_GT(d.timeline.t_ns.size(), kTopPoints / 2);
  EXPECT_EQ(d.peak.grouped_by, "site");
  EXPECT_GT(d.peak.live_at_peak.size(), 10u);
  EXPECT_GT(d.leaks.size(), 10u);
  EXPECT_FALSE(d.timeline_by_site.has_value());
}

}  // namespace
}  // namespace gpumem::analyzer
