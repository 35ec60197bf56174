// devices[].timeline_by_site: live bytes over time split by allocation site. On every point of the
// device timeline the series are each site's live bytes at that point's instant, exactly, and
// with `other` they add up to the timeline's allocated bytes. Checked against a brute-force replay
// that keeps the whole state after every event.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "events.h"
#include "gpumem/analyzer/render_json.h"

namespace gpumem::analyzer {
namespace {

using testing::Events;
using testing::make_header;

// Feeds the records in runs of random length (fast path), blobs one at a time as the reader does.
Report analyze_in_runs(const Events& e, uint32_t seed, AnalysisOptions options) {
  std::mt19937_64 rng(seed);
  Analysis a(options);
  a.begin_trace(make_header(), "test.trace");
  const std::vector<trace::Record>& recs = e.records();
  auto blob = [&](size_t i) {
    return recs[i].op == static_cast<uint16_t>(trace::Op::string) ||
           recs[i].op == static_cast<uint16_t>(trace::Op::stack);
  };
  size_t i = 0;
  while (i < recs.size()) {
    if (blob(i)) {
      e.feed_one(a, i++);
      continue;
    }
    size_t end = i;
    const size_t n = 1 + rng() % 200;
    while (end < recs.size() && end - i < n && !blob(end)) ++end;
    trace::Batch b;
    b.records = recs.data() + i;
    b.count = end - i;
    a.feed(b);
    i = end;
  }
  a.end_trace(trace::ReadStats{});
  return a.finish();
}

// A random plain trace on device 0 (unique, increasing times) over `sites` call sites, with the
// live bytes of every site after every event, by time.
struct Replayed {
  Events events;
  std::map<int64_t, std::map<uint32_t, uint64_t>> by_site_after;
};

Replayed random_trace(uint32_t seed, size_t n, uint32_t sites, bool with_pool) {
  std::mt19937_64 rng(seed);
  Replayed out;
  std::map<uint64_t, std::pair<uint32_t, uint64_t>> live;  // address -> (site, bytes)
  std::map<uint32_t, uint64_t> state;
  int64_t t = 0;
  if (with_pool) out.events.segment(t, 0x40000000, 1 << 30);
  out.by_site_after[t] = state;
  for (size_t i = 0; i < n; ++i) {
    t += 1 + static_cast<int64_t>(rng() % 3000);
    const uint64_t slot = rng() % 96;
    const bool pooled = with_pool && slot % 3 == 0;
    const uint64_t address = (pooled ? 0x40000000 : 0x100000) + slot * 0x100000;
    if (auto it = live.find(address); it != live.end()) {
      state[it->second.first] -= it->second.second;
      live.erase(it);
      out.events.free(t, address);
    } else {
      // A site's sizes and the mix shift over time, so the largest site changes.
      const uint32_t site = static_cast<uint32_t>(rng() % sites + (i * 4 > n * 3 ? 1 : 0));
      const uint64_t bytes = 1 + rng() % (1 << 16) + (site % 5) * (i % 7000);
      live[address] = {site, bytes};
      state[site] += bytes;
      if (pooled)
        out.events.add(
            Events::rec(t, trace::Op::alloc, address, bytes, 0, 0, site, trace::kFlagPooled));
      else
        out.events.alloc(t, address, bytes, site);
    }
    out.by_site_after[t] = state;
  }
  return out;
}

// Every point: series + other == allocated, and each series is its site's exact live bytes.
void expect_exact(const Report& r, const Replayed& replay, const char* how) {
  ASSERT_EQ(r.devices.size(), 1u) << how;
  const DeviceReport& d = r.devices[0];
  ASSERT_TRUE(d.timeline_by_site.has_value()) << how;
  const SiteTimeline& st = *d.timeline_by_site;
  const size_t n = d.timeline.t_ns.size();
  ASSERT_GT(n, 10u) << how;
  ASSERT_EQ(st.other.size(), n) << how;
  ASSERT_EQ(st.bytes.size(), st.sites.size()) << how;
  for (size_t i = 0; i < n; ++i) {
    uint64_t sum = st.other[i];
    for (const auto& series : st.bytes) sum += series[i];
    ASSERT_EQ(sum, d.timeline.allocated[i]) << how << " point " << i;
    auto state = replay.by_site_after.find(d.timeline.t_ns[i]);
    ASSERT_NE(state, replay.by_site_after.end()) << how << " point " << i;
    for (size_t k = 0; k < st.sites.size(); ++k) {
      auto site = state->second.find(st.sites[k].site);
      const uint64_t expected = site == state->second.end() ? 0 : site->second;
      ASSERT_EQ(st.bytes[k][i], expected) << how << " point " << i << " site " << st.sites[k].site;
    }
  }
}

TEST(SiteTimeline, SeriesAreEachSitesLiveBytesAndAddUpToAllocated) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    const Replayed replay = random_trace(seed, 20000, 14, seed % 2 == 0);
    AnalysisOptions options;
    options.max_points = 64;  // boxes coarsen many times over the run
    const Report one = replay.events.analyze(make_header(), options);
    expect_exact(one, replay, "one by one");
    const Report runs = analyze_in_runs(replay.events, seed, options);
    expect_exact(runs, replay, "in runs");
    EXPECT_EQ(render_json(runs), render_json(one)) << "seed " << seed;
    // The ten largest sites at the peak are the series, in the order of live_at_peak.
    const DeviceReport& d = one.devices[0];
    ASSERT_EQ(d.timeline_by_site->sites.size(), 10u);
    EXPECT_EQ(d.timeline_by_site->grouped_by, "site");
    for (size_t k = 0; k < 10; ++k)
      EXPECT_EQ(d.timeline_by_site->sites[k].site, d.peak.live_at_peak[k].site);
  }
}

// Records out of time order (several threads), a second device, zero-byte and freed-twice
// allocations: whatever the mix, every point still adds up.
TEST(SiteTimeline, OutOfOrderRecordsStillAddUp) {
  for (uint32_t seed = 1; seed <= 10; ++seed) {
    std::mt19937_64 rng(seed);
    Events e;
    int64_t t = 0;
    for (int i = 0; i < 20000; ++i) {
      t += static_cast<int64_t>(rng() % 2000);
      const int64_t when = rng() % 20 == 0 ? t - static_cast<int64_t>(rng() % 50000) : t;
      const uint64_t address = 0x100000 + (rng() % 80) * 0x1000;
      const int dev = rng() % 8 == 0 ? 1 : 0;
      if (rng() % 2 == 0)
        e.alloc(when, address, rng() % 30 == 0 ? 0 : 1 + rng() % 100000,
                static_cast<uint32_t>(rng() % 90), dev);
      else
        e.free(when, address, dev);
    }
    AnalysisOptions options;
    options.max_points = 50;
    for (const Report& r : {e.analyze(make_header(), options), analyze_in_runs(e, seed, options)}) {
      ASSERT_EQ(r.devices.size(), 2u);
      for (const DeviceReport& d : r.devices) {
        ASSERT_TRUE(d.timeline_by_site);
        const SiteTimeline& st = *d.timeline_by_site;
        for (size_t i = 0; i < d.timeline.t_ns.size(); ++i) {
          uint64_t sum = st.other[i];
          for (const auto& series : st.bytes) sum += series[i];
          ASSERT_EQ(sum, d.timeline.allocated[i]) << "seed " << seed << " point " << i;
        }
      }
    }
  }
}

TEST(SiteTimeline, PeakPointIsTheLiveAtPeakBreakdown) {
  Events e;
  e.alloc(10, 0xA, 300, 1).alloc(20, 0xB, 200, 2).alloc(30, 0xC, 100, 1);
  e.free(40, 0xA).alloc(50, 0xD, 50, 3).free(60, 0xB);
  const Report r = e.analyze();
  const DeviceReport& d = r.devices[0];
  ASSERT_TRUE(d.timeline_by_site);
  const SiteTimeline& st = *d.timeline_by_site;
  ASSERT_EQ(st.sites.size(), 2u);  // at the peak (600 B at t=30) only sites 1 and 2 are live
  EXPECT_EQ(st.sites[0].site, 1u);
  EXPECT_EQ(st.sites[0].bytes, 400u);
  EXPECT_EQ(st.sites[1].site, 2u);
  // One box (all events within 1024 ns): the point is the peak, with the breakdown of the peak.
  ASSERT_EQ(d.timeline.t_ns, std::vector<int64_t>{30});
  EXPECT_EQ(st.bytes[0], std::vector<uint64_t>{400});
  EXPECT_EQ(st.bytes[1], std::vector<uint64_t>{200});
  EXPECT_EQ(st.other, std::vector<uint64_t>{0});
}

TEST(SiteTimeline, SitesBeyondTheSeriesAreOther) {
  Events e;
  // Twelve sites, site k holding k * 1000 bytes: the ten largest are series, sites 1 and 2 other.
  for (uint32_t k = 1; k <= 12; ++k) e.alloc(2000 * k, 0x1000 * k, 1000 * k, k);
  const Report r = e.analyze();
  const SiteTimeline& st = *r.devices[0].timeline_by_site;
  ASSERT_EQ(st.sites.size(), 10u);
  EXPECT_EQ(st.sites[0].site, 12u);
  EXPECT_EQ(st.sites[9].site, 3u);
  EXPECT_EQ(st.other.back(), 3000u);
  EXPECT_EQ(st.bytes[0].back(), 12000u);
}

TEST(SiteTimeline, MoreLiveSitesThanAPointKeepsStillAddUp) {
  // 200 sites live at once (more than SiteCapture::kSitesPerPoint): the sum stays exact, the
  // sites a point left out are in other.
  Events e;
  for (uint32_t k = 1; k <= 200; ++k) e.alloc(2000 * k, 0x1000 * k, 100 + k, k);
  for (uint32_t k = 1; k <= 200; k += 2) e.free(500'000 + 2000 * k, 0x1000 * k);
  AnalysisOptions options;
  options.max_points = 16;
  const Report r = e.analyze(make_header(), options);
  const DeviceReport& d = r.devices[0];
  const SiteTimeline& st = *d.timeline_by_site;
  for (size_t i = 0; i < d.timeline.t_ns.size(); ++i) {
    uint64_t sum = st.other[i];
    for (const auto& s : st.bytes) sum += s[i];
    EXPECT_EQ(sum, d.timeline.allocated[i]) << "point " << i;
  }
  // The peak point: all 200 live; the ten largest (sites 191..200) are the series, exact, and
  // sites 1..190 are other: sum of 100 + k.
  ASSERT_EQ(st.sites.size(), 10u);
  EXPECT_EQ(st.sites[0].site, 200u);
  size_t at_peak = 0;
  while (at_peak < d.timeline.t_ns.size() && d.timeline.t_ns[at_peak] != d.peak.time_ns) ++at_peak;
  ASSERT_LT(at_peak, d.timeline.t_ns.size());
  EXPECT_EQ(st.bytes[0][at_peak], 300u);
  EXPECT_EQ(st.bytes[9][at_peak], 291u);
  EXPECT_EQ(st.other[at_peak], 190u * 100 + 190u * 191 / 2);
}

TEST(SiteTimeline, SitesThatAppearLateFindEverythingBeforeInSiteZero) {
  Events e;
  e.alloc(0, 0xA, 500).free(5000, 0xA);                  // no site: before any stack
  e.alloc(10'000, 0xB, 300, 4).alloc(20'000, 0xC, 100);  // then a site
  AnalysisOptions options;
  options.max_points = 1000;
  const Report r = e.analyze(make_header(), options);
  const DeviceReport& d = r.devices[0];
  const SiteTimeline& st = *d.timeline_by_site;
  ASSERT_EQ(st.sites.size(), 1u);  // only site 0 was live at the peak (500 B at t=0)
  EXPECT_EQ(st.sites[0].site, 0u);
  ASSERT_EQ(d.timeline.t_ns, (std::vector<int64_t>{0, 5000, 10'000, 20'000}));
  EXPECT_EQ(st.bytes[0], (std::vector<uint64_t>{500, 0, 0, 100}));
  EXPECT_EQ(st.other, (std::vector<uint64_t>{0, 0, 300, 300}));  // site 4
}

TEST(SiteTimeline, GroupedByPythonLine) {
  constexpr uint64_t kPy = trace::kPythonFrameTag;
  Events e;
  e.string(1, "forward (model.py:12)").string(2, "train (train.py:40)");
  e.string(3, "backward (model.py:30)");
  // Sites 1 and 2 are the same line through two callers; site 3 another line; site 4 native.
  e.stack(1, {0x1000, kPy | 1, kPy | 2}).stack(2, {0x1000, kPy | 1, kPy | 5});
  e.stack(3, {kPy | 3, kPy | 2}).stack(4, {0x2000});
  e.symbol(kPy | 1, 1).symbol(kPy | 2, 2).symbol(kPy | 3, 3);
  e.alloc(2000, 0xA, 100, 1).alloc(4000, 0xB, 200, 2).alloc(6000, 0xC, 250, 3);
  e.alloc(8000, 0xD, 50, 4).free(10'000, 0xA).free(12'000, 0xC);
  AnalysisOptions options;
  options.max_points = 1000;
  const Report r = e.analyze(make_header(), options);
  const DeviceReport& d = r.devices[0];
  ASSERT_EQ(d.peak.grouped_by, "python_line");
  const SiteTimeline& st = *d.timeline_by_site;
  EXPECT_EQ(st.grouped_by, "python_line");
  ASSERT_EQ(st.sites.size(), 3u);
  EXPECT_EQ(st.sites[0].python_line, "forward (model.py:12)");
  EXPECT_EQ(st.sites[0].bytes, 300u);
  EXPECT_EQ(st.sites[1].python_line, "backward (model.py:30)");
  EXPECT_EQ(st.sites[2].site, 4u);
  EXPECT_EQ(st.sites[2].python_line, "");
  ASSERT_EQ(d.timeline.t_ns.size(), 6u);
  EXPECT_EQ(st.bytes[0], (std::vector<uint64_t>{100, 300, 300, 300, 200, 200}));
  EXPECT_EQ(st.bytes[1], (std::vector<uint64_t>{0, 0, 250, 250, 250, 0}));
  EXPECT_EQ(st.bytes[2], (std::vector<uint64_t>{0, 0, 0, 50, 50, 50}));
  EXPECT_EQ(st.other, (std::vector<uint64_t>(6, 0)));
}

TEST(SiteTimeline, TracesWithoutSitesHaveNone) {
  Events e;
  e.alloc(1, 0xA, 100).alloc(2, 0xB, 200).free(3, 0xA);
  const Report r = e.analyze();
  EXPECT_FALSE(r.devices[0].timeline_by_site.has_value());
  EXPECT_EQ(render_json(r).find("timeline_by_site"), std::string::npos);
}

}  // namespace
}  // namespace gpumem::analyzer
