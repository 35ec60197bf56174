// Several processes (ranks) in one report, and the JSON and text renderers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "events.h"
#include "gpumem/analyzer/render_json.h"
#include "gpumem/analyzer/render_text.h"

namespace gpumem::analyzer {
namespace {

using testing::Events;
using testing::make_header;

Report four_ranks() {
  Analysis a;
  const uint64_t peaks[4] = {1000, 3000, 2000, 2000};
  for (int rank = 0; rank < 4; ++rank) {
    Events e;
    e.alloc(1, 0x10, peaks[rank]).alloc(2, 0x20, 0).free(3, 0x10);
    if (rank == 2) e.alloc(4, 0x30, 500, 0, 1);  // a second device, smaller
    a.begin_trace(make_header(200 + rank, rank), "rank" + std::to_string(rank) + ".trace");
    e.feed(a);
    a.end_trace(trace::ReadStats{});
  }
  return a.finish();
}

TEST(Ranks, SummaryIsExact) {
  Report r = four_ranks();
  ASSERT_EQ(r.traces.size(), 4u);
  ASSERT_EQ(r.devices.size(), 5u);
  ASSERT_TRUE(r.ranks.has_value());
  const RankStat& s = r.ranks->peak_allocated;
  EXPECT_EQ(r.ranks->processes, 4u);
  EXPECT_EQ(s.max_bytes, 3000u);
  EXPECT_EQ(s.max_rank, 1);
  EXPECT_EQ(s.max_pid, 201u);
  EXPECT_EQ(s.min_bytes, 1000u);
  EXPECT_EQ(s.min_rank, 0);
  EXPECT_DOUBLE_EQ(s.mean_bytes, 2000.0);
  EXPECT_DOUBLE_EQ(s.imbalance, 0.5);
  EXPECT_EQ(r.devices[3].pid, 202u);
  EXPECT_EQ(r.devices[3].device, 1);
  EXPECT_EQ(r.devices[3].trace_index, 2u);
}

TEST(Ranks, OneTraceHasNoSummary) {
  Events e;
  e.alloc(1, 0x10, 10);
  EXPECT_FALSE(e.analyze().ranks.has_value());
}

TEST(Json, SchemaAndKeys) {
  Report r = four_ranks();
  r.traces[1].truncated = true;
  r.traces[1].truncated_reason = "not closed";
  auto j = nlohmann::json::parse(render_json(r));
  EXPECT_EQ(j["schema"], "gpumem.report/1");
  ASSERT_EQ(j["traces"].size(), 4u);
  EXPECT_EQ(j["traces"][1]["truncated"], true);
  EXPECT_EQ(j["traces"][1]["truncated_reason"], "not closed");
  EXPECT_TRUE(j["traces"][0]["truncated_reason"].is_null());
  EXPECT_EQ(j["traces"][0]["rank"], 0);
  const auto& d = j["devices"][1];
  EXPECT_EQ(d["pid"], 201);
  EXPECT_EQ(d["peak"]["allocated_bytes"], 3000);
  EXPECT_EQ(d["peak"]["time_ns"], 1);
  EXPECT_TRUE(d["peak"]["phase"].is_null());
  EXPECT_EQ(d["peak"]["live_at_peak"][0]["bytes"], 3000);
  EXPECT_EQ(d["peak"]["live_at_peak"][0]["size_class"]["min_bytes"], 2048);
  EXPECT_EQ(d["final"]["allocated_bytes"], 0);
  EXPECT_EQ(d["final"]["leaked_allocations"], 1);  // the zero-byte one
  EXPECT_EQ(d["counts"]["alloc"], 2);
  EXPECT_EQ(d["counts"]["free"], 1);
  EXPECT_EQ(d["fragmentation"]["utilization"], 1.0);
  EXPECT_EQ(d["timeline"]["t_ns"].size(), d["timeline"]["allocated"].size());
  EXPECT_EQ(j["ranks"]["processes"], 4);
  EXPECT_EQ(j["ranks"]["peak_allocated"]["max_bytes"], 3000);
  EXPECT_DOUBLE_EQ(j["ranks"]["peak_allocated"]["imbalance"].get<double>(), 0.5);
  EXPECT_TRUE(j["anomalies"].is_array());
}

TEST(Json, FailedAllocationCarriesBytesInUse) {
  Events e;
  e.alloc(1, 0x10, 64).failed(2, 1 << 30, 64);
  auto j = nlohmann::json::parse(render_json(e.analyze()));
  ASSERT_EQ(j["anomalies"].size(), 1u);
  EXPECT_EQ(j["anomalies"][0]["kind"], "alloc_failed");
  EXPECT_EQ(j["anomalies"][0]["in_use_bytes"], 64);
  EXPECT_EQ(j["anomalies"][0]["bytes"], 1 << 30);
  EXPECT_TRUE(j["ranks"].is_null());
}

TEST(Text, SummaryNamesPeakPhaseLeaksAndAnomalies) {
  Events e;
  e.string(1, "forward");
  e.begin(0, 1).alloc(1'000'000, 0x10, 3 << 20).end(2'000'000, 1).failed(3'000'000, 1 << 30, 3 << 20);
  std::string text = render_text(e.analyze());
  EXPECT_NE(text.find("peak allocated: 3.00 MiB at 1.000 ms in phase \"forward\""), std::string::npos)
      << text;
  EXPECT_NE(text.find("leaked at exit: 3.00 MiB in 1 allocations"), std::string::npos) << text;
  EXPECT_NE(text.find("alloc_failed"), std::string::npos) << text;
  EXPECT_NE(text.find("(3.00 MiB in use)"), std::string::npos) << text;
}

TEST(Text, RepeatedPhasesAreOneRowPerName) {
  Events e;
  e.string(1, "step").string(2, "forward");
  // Three steps, each with a forward pass; the second forward holds the most memory.
  e.begin(0, 1).begin(10, 2).alloc(20, 0x10, 1 << 20).end(30, 2).free(40, 0x10).end(50, 1);
  e.begin(100, 1).begin(110, 2).alloc(120, 0x20, 4 << 20).end(130, 2).free(140, 0x20).end(150, 1);
  e.begin(200, 1).begin(210, 2).alloc(220, 0x30, 2 << 20).end(230, 2).free(240, 0x30).end(250, 1);
  std::string text = render_text(e.analyze());
  EXPECT_NE(text.find("phases (6 ranges, 2 names), largest peak first:"), std::string::npos) << text;
  // Both names peak at the second step's 4 MiB; step ran 3 times for 150 ns in all.
  EXPECT_NE(text.find("4.00 MiB  step                  3x"), std::string::npos) << text;
  EXPECT_NE(text.find("4.00 MiB  forward               3x"), std::string::npos) << text;
  EXPECT_NE(text.find("3x    0.150 us in all, largest at 0.120 us"), std::string::npos) << text;
}

TEST(Text, RanksLine) {
  std::string text = render_text(four_ranks());
  EXPECT_NE(text.find("across 4 processes, peak allocated: max 2.93 KiB (pid 201, rank 1)"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace gpumem::analyzer
