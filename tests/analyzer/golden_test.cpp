// Golden tests: hand-built event streams where every number of the report is known.
#include <gtest/gtest.h>

#include "events.h"

namespace gpumem::analyzer {
namespace {

using testing::Events;
using testing::make_header;
using trace::Op;

TEST(Golden, PeakLiveAtPeakFinalAndLeaks) {
  Events e;
  e.alloc(10, 0xA000, 100)     // 100
      .alloc(20, 0xB000, 200)  // 300  <- peak
      .free(30, 0xA000)        // 200
      .alloc(40, 0xC000, 50);  // 250
  Report r = e.analyze();
  ASSERT_EQ(r.devices.size(), 1u);
  const DeviceReport& d = r.devices[0];
  EXPECT_EQ(d.device, 0);
  EXPECT_EQ(d.name, "Simulated GPU");
  EXPECT_EQ(d.capacity_bytes, 16ull << 30);
  EXPECT_EQ(d.peak.allocated_bytes, 300u);
  EXPECT_EQ(d.peak.time_ns, 20);
  EXPECT_FALSE(d.peak.phase.has_value());
  EXPECT_EQ(d.peak.reserved_bytes, 300u);  // no pool: reserved == allocated
  EXPECT_EQ(d.peak.reserved_at_peak_bytes, 300u);
  EXPECT_EQ(d.peak.grouped_by, "size_class");
  ASSERT_EQ(d.peak.live_at_peak.size(), 2u);
  EXPECT_EQ(d.peak.live_at_peak[0].min_bytes, 128u);
  EXPECT_EQ(d.peak.live_at_peak[0].max_bytes, 255u);
  EXPECT_EQ(d.peak.live_at_peak[0].bytes, 200u);
  EXPECT_EQ(d.peak.live_at_peak[0].count, 1u);
  EXPECT_EQ(d.peak.live_at_peak[1].min_bytes, 64u);
  EXPECT_EQ(d.peak.live_at_peak[1].bytes, 100u);
  EXPECT_EQ(d.final.allocated_bytes, 250u);
  EXPECT_EQ(d.final.reserved_bytes, 250u);
  EXPECT_EQ(d.final.leaked_allocations, 2u);
  EXPECT_EQ(d.final.leaked_bytes, 250u);
  ASSERT_EQ(d.leaks.size(), 2u);
  EXPECT_EQ(d.leaks[0].bytes, 200u);
  EXPECT_EQ(d.leaks[1].bytes, 50u);
  EXPECT_EQ(d.counts.alloc, 3u);
  EXPECT_EQ(d.counts.free, 1u);
  EXPECT_EQ(d.fragmentation.external_at_peak, 0.0);
  EXPECT_EQ(d.fragmentation.external_max, 0.0);
  EXPECT_EQ(d.fragmentation.reserved_unallocated_at_peak_bytes, 0u);
  ASSERT_TRUE(d.fragmentation.utilization.has_value());
  EXPECT_EQ(*d.fragmentation.utilization, 1.0);
  ASSERT_EQ(r.traces.size(), 1u);
  EXPECT_EQ(r.traces[0].events, 4u);
  EXPECT_EQ(r.traces[0].pid, 100u);
  EXPECT_EQ(r.traces[0].host, "testhost");
  EXPECT_EQ(r.traces[0].command, "train --steps 3");
  EXPECT_FALSE(r.traces[0].truncated);
  EXPECT_FALSE(r.ranks.has_value());
}

TEST(Golden, FirstTimeThePeakIsReachedWins) {
  Events e;
  e.alloc(1, 0x1, 64).free(2, 0x1).alloc(3, 0x2, 64);
  Report r = e.analyze();
  EXPECT_EQ(r.devices[0].peak.allocated_bytes, 64u);
  EXPECT_EQ(r.devices[0].peak.time_ns, 1);
}

TEST(Golden, FragmentationOfAKnownPoolLayout) {
  // One 1000-byte segment at 0x10000 carved into A[0,100) B[100,300) C[300,600) D[600,1000).
  const uint64_t s = 0x10000;
  Events e;
  e.segment(1, s, 1000)
      .pooled(2, s, 100)
      .pooled(3, s + 100, 200)
      .pooled(4, s + 300, 300)
      .pooled(5, s + 600, 400)  // full: allocated 1000 = reserved, peak
      .free(6, s + 100)         // free: B(200)            -> frag 0
      .free(7, s + 600)         // free: B(200) + D(400)   -> frag 1 - 400/600 = 1/3
      .free(8, s + 300);        // B+C+D merge into 900    -> frag 0
  Report r = e.analyze(make_header(100, -1, "growth"));
  const DeviceReport& d = r.devices[0];
  EXPECT_EQ(d.peak.allocated_bytes, 1000u);
  EXPECT_EQ(d.peak.time_ns, 5);
  EXPECT_EQ(d.peak.reserved_bytes, 1000u);
  EXPECT_EQ(d.fragmentation.external_at_peak, 0.0);
  EXPECT_DOUBLE_EQ(d.fragmentation.external_max, 1.0 - 400.0 / 600.0);
  EXPECT_EQ(d.fragmentation.external_max_time_ns, 7);
  EXPECT_EQ(d.final.allocated_bytes, 100u);
  EXPECT_EQ(d.final.reserved_bytes, 1000u);
  EXPECT_EQ(d.counts.segment_reserve, 1u);
  // The timeline's last point is the merged state: fragmentation back to 0.
  ASSERT_FALSE(d.timeline.fragmentation.empty());
}

TEST(Golden, ReservedCountsSegmentsAndUtilization) {
  const uint64_t s = 0x100000;
  Events e;
  e.segment(1, s, 4096)
      .pooled(2, s, 1024)
      .pooled(3, s + 2048, 1024)  // free extents: [1024,2048) and [3072,4096): frag 1 - 1024/2048
      .alloc(4, 0x900000, 512)    // not pooled: reserved by itself
      .free(5, s)
      .release(6, 0x999, 10)      // unknown segment: ignored
      .free(7, s + 2048)
      .release(8, s, 4096);
  Report r = e.analyze(make_header(100, -1, "growth"));
  const DeviceReport& d = r.devices[0];
  EXPECT_EQ(d.peak.allocated_bytes, 2560u);
  EXPECT_EQ(d.peak.time_ns, 4);
  EXPECT_EQ(d.peak.reserved_at_peak_bytes, 4096u + 512u);
  EXPECT_EQ(d.peak.reserved_bytes, 4608u);
  EXPECT_EQ(d.fragmentation.reserved_unallocated_at_peak_bytes, 4608u - 2560u);
  EXPECT_DOUBLE_EQ(d.fragmentation.external_at_peak, 0.5);
  EXPECT_EQ(d.fragmentation.free_in_segments_at_peak_bytes, 2048u);
  EXPECT_EQ(d.fragmentation.largest_free_block_at_peak_bytes, 1024u);
  EXPECT_DOUBLE_EQ(*d.fragmentation.utilization, 2560.0 / 4608.0);
  EXPECT_EQ(d.final.allocated_bytes, 512u);
  EXPECT_EQ(d.final.reserved_bytes, 512u);
  EXPECT_EQ(d.counts.segment_release, 2u);
}

TEST(Golden, AllocationOutlivingItsSegmentStaysReserved) {
  Events e;
  e.segment(1, 0x1000, 100).pooled(2, 0x1000, 60).release(3, 0x1000, 100);
  Report mid = e.analyze(make_header(100, -1, "growth"));
  EXPECT_EQ(mid.devices[0].final.reserved_bytes, 60u);
  EXPECT_EQ(mid.devices[0].final.allocated_bytes, 60u);
  e.free(4, 0x1000);
  Report r = e.analyze(make_header(100, -1, "growth"));
  EXPECT_EQ(r.devices[0].final.reserved_bytes, 0u);
  EXPECT_EQ(r.devices[0].final.allocated_bytes, 0u);
}

TEST(Golden, PhasesHaveTheirOwnPeaksAndNameThePeak) {
  Events e;
  e.string(1, "forward").string(2, "backward").string(3, "step");
  e.begin(0, 3)                 // step [0, 100]
      .begin(10, 1)             // forward [10, 40]
      .alloc(20, 0x1, 1000)
      .alloc(30, 0x2, 3000)     // 4000: peak, inside forward (most recent open phase)
      .end(40, 1)
      .begin(50, 2)             // backward [50, 80]
      .free(60, 0x2)            // 1000
      .alloc(70, 0x3, 500)      // 1500
      .end(80, 2)
      .end(100, 0)              // name unknown: closes the most recent open phase (step)
      .begin(110, 1);           // never ends
  Report r = e.analyze();
  const DeviceReport& d = r.devices[0];
  EXPECT_EQ(d.peak.allocated_bytes, 4000u);
  ASSERT_TRUE(d.peak.phase.has_value());
  EXPECT_EQ(*d.peak.phase, "forward");
  ASSERT_EQ(d.phases.size(), 4u);
  EXPECT_EQ(d.phases[0].name, "forward");
  EXPECT_EQ(d.phases[0].start_ns, 10);
  EXPECT_EQ(d.phases[0].end_ns, 40);
  EXPECT_EQ(d.phases[0].peak_allocated_bytes, 4000u);
  EXPECT_EQ(d.phases[0].peak_time_ns, 30);
  EXPECT_EQ(d.phases[1].name, "backward");
  EXPECT_EQ(d.phases[1].peak_allocated_bytes, 4000u);  // what was live when it began
  EXPECT_EQ(d.phases[2].name, "step");
  EXPECT_EQ(d.phases[2].start_ns, 0);
  EXPECT_EQ(d.phases[2].end_ns, 100);
  EXPECT_EQ(d.phases[2].peak_allocated_bytes, 4000u);
  EXPECT_TRUE(d.phases[2].closed);
  EXPECT_EQ(d.phases[3].name, "forward");
  EXPECT_FALSE(d.phases[3].closed);
  EXPECT_EQ(d.phases[3].end_ns, 110);
  EXPECT_EQ(d.phases[3].peak_allocated_bytes, 1500u);
}

TEST(Golden, BackwardPhasePeakStartsFromWhatIsLive) {
  Events e;
  e.string(2, "backward");
  e.alloc(1, 0x1, 1000).alloc(2, 0x2, 3000).begin(3, 2).free(4, 0x2).alloc(5, 0x3, 200).end(6, 2);
  Report r = e.analyze();
  ASSERT_EQ(r.devices[0].phases.size(), 1u);
  EXPECT_EQ(r.devices[0].phases[0].peak_allocated_bytes, 4000u);
  EXPECT_EQ(r.devices[0].phases[0].peak_time_ns, 3);
}

TEST(Golden, SizeHistogramUsesPowerOfTwoClasses) {
  Events e;
  e.alloc(1, 0x1, 0).alloc(2, 0x2, 1).alloc(3, 0x3, 2).alloc(4, 0x4, 3).alloc(5, 0x5, 4096)
      .alloc(6, 0x6, 4097).alloc(7, 0x7, 8191).alloc(8, 0x8, 8192);
  Report r = e.analyze();
  const auto& h = r.devices[0].size_histogram;
  ASSERT_EQ(h.size(), 5u);
  EXPECT_EQ(h[0].min_bytes, 0u);
  EXPECT_EQ(h[0].max_bytes, 0u);
  EXPECT_EQ(h[0].count, 1u);
  EXPECT_EQ(h[1].min_bytes, 1u);
  EXPECT_EQ(h[1].max_bytes, 1u);
  EXPECT_EQ(h[1].count, 1u);
  EXPECT_EQ(h[2].min_bytes, 2u);
  EXPECT_EQ(h[2].max_bytes, 3u);
  EXPECT_EQ(h[2].count, 2u);
  EXPECT_EQ(h[2].bytes, 5u);
  EXPECT_EQ(h[3].min_bytes, 4096u);
  EXPECT_EQ(h[3].max_bytes, 8191u);
  EXPECT_EQ(h[3].count, 3u);
  EXPECT_EQ(h[3].bytes, 4096u + 4097u + 8191u);
  EXPECT_EQ(h[4].min_bytes, 8192u);
  EXPECT_EQ(h[4].max_bytes, 16383u);
  EXPECT_EQ(h[4].count, 1u);
  // The zero-byte allocation is live at the peak too: the size-class rows count it.
  uint64_t count = 0;
  for (const auto& row : r.devices[0].peak.live_at_peak) count += row.count;
  EXPECT_EQ(count, 8u);
}

// The analyzer remembers freed addresses (to tell a double free from an unknown pointer) in its
// address map, up to 2^18 of them; past that it forgets them all at once. Live allocations must
// survive that, and the records here go through the batch path (Analysis::feed(Batch)).
TEST(Golden, FreedAddressesAreForgottenPastTheBoundLiveOnesStay) {
  constexpr uint64_t kBound = uint64_t{1} << 18;
  std::vector<trace::Record> recs;
  auto add = [&](int64_t t, Op op, uint64_t address, uint64_t bytes) {
    recs.push_back(Events::rec(t, op, address, bytes, 0, 0));
  };
  add(1, Op::alloc, 0xA000, 100);  // live throughout
  add(2, Op::alloc, 0xB000, 7);
  add(3, Op::free, 0xB000, 0);     // freed early: forgotten by the end
  for (uint64_t i = 0; i < kBound; ++i) {  // the bound-th free after 0xB000's forgets them all
    add(10 + 2 * static_cast<int64_t>(i), Op::alloc, 0x10000000 + i * 512, 512);
    add(11 + 2 * static_cast<int64_t>(i), Op::free, 0x10000000 + i * 512, 0);
  }
  const int64_t t = 10 + 2 * static_cast<int64_t>(kBound);
  add(t, Op::alloc, 0xC000, 9);
  add(t + 1, Op::free, 0xC000, 0);
  add(t + 2, Op::free, 0xC000, 0);  // freed after the purge: still a double free
  add(t + 3, Op::free, 0xB000, 0);  // forgotten: an unknown pointer now
  add(t + 4, Op::free, 0xA000, 0);  // the live one was kept: a plain free
  Analysis a;
  a.begin_trace(make_header(), "bound.trace");
  for (size_t at = 0; at < recs.size(); at += 1000) {
    trace::Batch b;
    b.records = recs.data() + at;
    b.count = std::min<size_t>(1000, recs.size() - at);
    a.feed(b);
  }
  a.end_trace(trace::ReadStats{});
  const Report r = a.finish();
  ASSERT_EQ(r.devices.size(), 1u);
  const DeviceReport& d = r.devices[0];
  EXPECT_EQ(d.counts.alloc, kBound + 3);
  EXPECT_EQ(d.counts.free, kBound + 3);
  EXPECT_EQ(d.counts.double_free, 1u);
  EXPECT_EQ(d.counts.free_unknown, 1u);
  EXPECT_EQ(d.final.allocated_bytes, 0u);
  EXPECT_EQ(d.final.leaked_allocations, 0u);
  EXPECT_EQ(d.peak.allocated_bytes, 100u + 512);
  ASSERT_EQ(r.anomalies.size(), 2u);
  EXPECT_EQ(kind_name(r.anomalies[0]), "double_free");
  EXPECT_EQ(r.anomalies[0].address, 0xC000u);
  EXPECT_EQ(kind_name(r.anomalies[1]), "free_unknown");
  EXPECT_EQ(r.anomalies[1].address, 0xB000u);
}

TEST(Golden, AnomaliesUnknownDoubleAndFailed) {
  Events e;
  e.alloc(1, 0x10, 100)
      .free(2, 0x10)
      .free(3, 0x10)                                              // double free
      .free(4, 0x77)                                              // never seen: unknown
      .anomaly(5, trace::AnomalyKind::free_unknown, 0x88)         // reported by the hook
      .free(5, 0x88)                                              // same event: not twice
      .failed(6, 1 << 20, 4096)
      .free(7, 0)                                                 // cudaFree(NULL): no-op
      .alloc(8, 0x10, 10)
      .free(9, 0x10);                                             // reused address: fine
  Report r = e.analyze();
  const DeviceReport& d = r.devices[0];
  EXPECT_EQ(d.counts.double_free, 1u);
  EXPECT_EQ(d.counts.free_unknown, 2u);
  EXPECT_EQ(d.counts.alloc_failed, 1u);
  EXPECT_EQ(d.counts.alloc, 2u);
  EXPECT_EQ(d.counts.free, 2u);
  ASSERT_EQ(r.anomalies.size(), 4u);
  EXPECT_EQ(kind_name(r.anomalies[0]), "double_free");
  EXPECT_EQ(r.anomalies[0].address, 0x10u);
  EXPECT_EQ(r.anomalies[0].t_ns, 3);
  EXPECT_EQ(kind_name(r.anomalies[1]), "free_unknown");
  EXPECT_EQ(r.anomalies[1].address, 0x77u);
  EXPECT_EQ(kind_name(r.anomalies[2]), "free_unknown");
  EXPECT_EQ(r.anomalies[2].address, 0x88u);
  EXPECT_EQ(kind_name(r.anomalies[3]), "alloc_failed");
  EXPECT_EQ(r.anomalies[3].bytes, 1u << 20);
  ASSERT_TRUE(r.anomalies[3].in_use_bytes.has_value());
  EXPECT_EQ(*r.anomalies[3].in_use_bytes, 4096u);
  EXPECT_EQ(r.anomalies[3].result, 2);
  EXPECT_FALSE(r.anomalies[0].in_use_bytes.has_value());
}

// A trace from a newer preload may carry anomaly codes this analyzer does not know: listed under
// their number, counted as neither free_unknown nor double_free; null_out_param by its name.
TEST(Golden, AnomalyCodesByName) {
  Events e;
  e.anomaly(1, trace::AnomalyKind::null_out_param, 0)
      .anomaly(2, static_cast<trace::AnomalyKind>(42), 0x99)
      .alloc(3, 0x10, 100);
  Report r = e.analyze();
  ASSERT_EQ(r.anomalies.size(), 2u);
  EXPECT_EQ(kind_name(r.anomalies[0]), "null_out_param");
  EXPECT_EQ(kind_name(r.anomalies[1]), "anomaly_42");
  EXPECT_EQ(r.anomalies[1].address, 0x99u);
  EXPECT_EQ(r.devices[0].counts.free_unknown, 0u);
  EXPECT_EQ(r.devices[0].counts.double_free, 0u);
}

TEST(Golden, PinnedHostIsKeptApartAndPhysicalCountsAsDevice) {
  Events e;
  e.alloc(1, 0x1, 1000, 0, 0, static_cast<uint16_t>(trace::MemKind::pinned_host))
      .alloc(2, 0x2, 2048, 0, 0, static_cast<uint16_t>(trace::MemKind::physical))
      .alloc(3, 0x3, 100, 0, 0, static_cast<uint16_t>(trace::MemKind::managed))
      .free(4, 0x1);
  Report r = e.analyze();
  ASSERT_EQ(r.devices.size(), 1u);
  EXPECT_EQ(r.devices[0].peak.allocated_bytes, 2148u);
  EXPECT_EQ(r.devices[0].peak.reserved_bytes, 2148u);
  EXPECT_EQ(r.devices[0].counts.alloc, 2u);
  EXPECT_EQ(r.traces[0].pinned_host.peak_bytes, 1000u);
  EXPECT_EQ(r.traces[0].pinned_host.final_bytes, 0u);
  EXPECT_EQ(r.traces[0].pinned_host.alloc, 1u);
  EXPECT_EQ(r.traces[0].pinned_host.free, 1u);
}

TEST(Golden, CallSitesWithStacksAndSymbols) {
  Events e;
  e.string(5, "train_step (libtrain.so+0x10)").string(6, "main (train+0x20)");
  e.stack(1, {0x1000, 0x2000}).stack(2, {0x3000});
  e.symbol(0x1000, 5).symbol(0x2000, 6);
  e.alloc(1, 0xA, 300, 1).alloc(2, 0xB, 200, 2).alloc(3, 0xC, 100, 1).alloc(4, 0xD, 50, 0);
  e.free(5, 0xC);
  Report r = e.analyze();
  const DeviceReport& d = r.devices[0];
  EXPECT_EQ(d.peak.grouped_by, "site");
  ASSERT_EQ(d.peak.live_at_peak.size(), 3u);
  EXPECT_EQ(d.peak.live_at_peak[0].site, 1u);
  EXPECT_EQ(d.peak.live_at_peak[0].count, 2u);
  EXPECT_EQ(d.peak.live_at_peak[0].bytes, 400u);
  ASSERT_EQ(d.peak.live_at_peak[0].frames.size(), 2u);
  EXPECT_EQ(d.peak.live_at_peak[0].frames[0], "train_step (libtrain.so+0x10)");
  EXPECT_EQ(d.peak.live_at_peak[0].frames[1], "main (train+0x20)");
  EXPECT_EQ(d.peak.live_at_peak[1].site, 2u);
  ASSERT_EQ(d.peak.live_at_peak[1].frames.size(), 1u);
  EXPECT_EQ(d.peak.live_at_peak[1].frames[0], "0x3000");  // no symbol: the raw address
  EXPECT_EQ(d.peak.live_at_peak[2].site, 0u);
  EXPECT_EQ(d.peak.live_at_peak[2].bytes, 50u);
  ASSERT_EQ(d.leaks.size(), 3u);
  EXPECT_EQ(d.leaks[0].site, 1u);
  EXPECT_EQ(d.leaks[0].bytes, 300u);
  EXPECT_EQ(d.leaks[1].site, 2u);
}

TEST(Golden, ChurnCountsShortLivedAllocations) {
  Events e;
  e.alloc(0, 0x1, 10).free(999'999, 0x1)                // short: < 1 ms
      .alloc(1'000'000, 0x2, 10).free(2'000'000, 0x2)   // exactly 1 ms: not short
      .alloc(2'000'000, 0x3, 10);                       // never freed
  Report r = e.analyze();
  const Churn& c = r.devices[0].churn;
  EXPECT_EQ(c.freed, 2u);
  EXPECT_EQ(c.short_lived, 1u);
  EXPECT_DOUBLE_EQ(c.short_lived_share, 0.5);
  EXPECT_DOUBLE_EQ(c.duration_s, 0.002);
  EXPECT_DOUBLE_EQ(c.allocs_per_second, 1500.0);
  EXPECT_EQ(c.allocated_bytes_total, 30u);
}

TEST(Golden, DevicesAreSeparate) {
  Events e;
  e.alloc(1, 0x1, 100, 0, 0).alloc(2, 0x2, 700, 0, 1).free(3, 0x2, 1);
  Report r = e.analyze();
  ASSERT_EQ(r.devices.size(), 2u);
  EXPECT_EQ(r.devices[0].device, 0);
  EXPECT_EQ(r.devices[0].peak.allocated_bytes, 100u);
  EXPECT_EQ(r.devices[1].device, 1);
  EXPECT_EQ(r.devices[1].peak.allocated_bytes, 700u);
  EXPECT_EQ(r.devices[1].final.allocated_bytes, 0u);
}

}  // namespace
}  // namespace gpumem::analyzer
