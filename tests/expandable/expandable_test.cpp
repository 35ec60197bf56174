// GPUMEM_POOL=expandable end to end on simcuda: gpumem-fragmenter 8 3MiB (8 blocks of 3 MiB, every
// other one freed, then one request of 12 MiB) through `gpumem run`, and `gpumem report` on its
// trace. The pool maps 2 MiB granules into one virtual range and records each as a segment; the
// report measures the range as one segment of mapped granules (analyzer/src/segment_space.h), so
// every number below follows from the blocks' addresses (3 MiB blocks packed from the range's
// start) and the granules the pool holds.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "scratch.h"
#include "shell.h"

namespace {

using gpumem::test::ScratchDir;
using gpumem::test::sh;
using nlohmann::json;

constexpr uint64_t kMiB = 1ull << 20;

struct Outcome {
  gpumem::test::Output output;
  json report;
};

// The first line of `gpumem dump` (the trace's header) as JSON.
json header_of(const std::string& trace) {
  const gpumem::test::Output d = sh(GPUMEM_CLI " dump " + trace + " | head -n 1");
  return json::parse(d.out, nullptr, false);
}

// Runs the fragmenter under `gpumem run` with `options` (and `env` before it), then reports.
Outcome fragmenter(const ScratchDir& dir, const std::string& options, const std::string& env = "") {
  Outcome r;
  const std::string trace = dir / "f.trace";
  r.output = sh(env + " " GPUMEM_CLI " run --device sim --trace " + trace + " " + options +
                " -- " FRAGMENTER " 8 3MiB");
  const gpumem::test::Output rep = sh(GPUMEM_CLI " report --json " + (dir / "r.json") + " " + trace);
  EXPECT_EQ(rep.status, 0) << rep.out;
  std::ifstream in(dir / "r.json");
  r.report = json::parse(in, nullptr, false);
  return r;
}

// j without its times (keys ending in time_ns): two runs' numbers, compared to the byte.
json without_times(json j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end();) {
      if (it.key().ends_with("time_ns")) {
        it = j.erase(it);
      } else {
        *it = without_times(*it);
        ++it;
      }
    }
  }
  return j;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Without a cap: the 12 MiB request maps 6 granules past the blocks, after unmapping the 4
// granules wholly inside the holes (0-2, 6-8, 12-14, 18-20 MiB): 24 - 8 + 12 = 28 MiB at the peak.
// After the frees, 12 MiB are free in four 3 MiB holes: 75 % fragmentation, the maximum.
TEST(Expandable, ReportMeasuresTheRangeAsOneSegmentOfMappedGranules) {
  ScratchDir dir("gpumem-expandable");
  Outcome r = fragmenter(dir, "--pool expandable");
  ASSERT_EQ(r.output.status, 0) << r.output.out;
  ASSERT_NE(r.output.out.find("\"large_request_succeeded\":true"), std::string::npos);
  ASSERT_TRUE(r.report.is_object());
  const json& d = r.report["devices"][0];
  EXPECT_EQ(d["peak"]["allocated_bytes"], 24 * kMiB);
  EXPECT_EQ(d["peak"]["reserved_bytes"], 28 * kMiB);
  EXPECT_EQ(d["peak"]["reserved_at_peak_bytes"], 24 * kMiB);  // 12 granules, all allocated
  EXPECT_EQ(d["counts"]["segment_reserve"], 18);              // 12 + 6
  EXPECT_EQ(d["counts"]["segment_release"], 4);
  const json& f = d["fragmentation"];
  EXPECT_DOUBLE_EQ(f["utilization"].get<double>(), 24.0 / 28.0);
  EXPECT_DOUBLE_EQ(f["external_max"].get<double>(), 0.75);
  EXPECT_EQ(f["external_at_peak"], 0.0);
  EXPECT_EQ(f["free_in_segments_at_peak_bytes"], 0);
  EXPECT_EQ(f["largest_free_block_at_peak_bytes"], 0);
  EXPECT_EQ(d["final"]["allocated_bytes"], 0);
}

// Under a 24 MiB cap the 12 MiB request is refused: the pool unmapped the holes' 4 idle granules
// (16 MiB left), mapped 4 more up to the cap and gave them back. At the refusal the 4 live blocks
// hold 12 MiB of the 16 mapped; what is free is a 1 MiB end of each hole, in the granule it shares
// with a live block: 4 MiB free, the largest free block 1 MiB, 75 % fragmentation. (The pool's
// own figure, the 64 GiB of its unmapped address range, is not what a block could use.)
TEST(Expandable, OomUnderACapIsMeasuredOverMappedMemory) {
  ScratchDir dir("gpumem-expandable");
  Outcome r = fragmenter(dir, "--pool expandable --limit 24MiB");
  ASSERT_EQ(r.output.status, 0) << r.output.out;
  ASSERT_NE(r.output.out.find("\"large_request_succeeded\":false"), std::string::npos);
  ASSERT_TRUE(r.report.is_object());
  const json& d = r.report["devices"][0];
  EXPECT_EQ(d["peak"]["allocated_bytes"], 24 * kMiB);
  EXPECT_EQ(d["peak"]["reserved_bytes"], 24 * kMiB);
  EXPECT_EQ(d["fragmentation"]["utilization"], 1.0);
  EXPECT_EQ(d["counts"]["segment_reserve"], 16);  // 12 + 4 mapped for the refused request
  EXPECT_EQ(d["counts"]["segment_release"], 8);   // the 4 idle granules and those 4
  ASSERT_EQ(r.report["ooms"].size(), 1u);
  const json& o = r.report["ooms"][0];
  EXPECT_EQ(o["requested_bytes"], 12 * kMiB);
  EXPECT_EQ(o["refused_by"], "gpumem");
  EXPECT_EQ(o["allocated_bytes"], 12 * kMiB);
  EXPECT_EQ(o["reserved_bytes"], 16 * kMiB);
  EXPECT_EQ(o["free_in_segments_bytes"], 4 * kMiB);
  EXPECT_EQ(o["largest_free_block_bytes"], 1 * kMiB);
  EXPECT_DOUBLE_EQ(o["external_fragmentation"].get<double>(), 0.75);
  // The preload's own figure at the refusal (the oom record's aux) agrees: 1 MiB, not the free
  // address space of its unmapped 64 GiB range.
  const gpumem::test::Output oom = sh(GPUMEM_CLI " dump " + (dir / "f.trace") +
                                      " | grep '\"op\":\"oom\"'");
  const json rec = json::parse(oom.out, nullptr, false);
  ASSERT_TRUE(rec.is_object()) << oom.out;
  EXPECT_EQ(rec["aux"], 1 * kMiB);
}

// The simulated driver without VMM (SIMCUDA_VMM=0) says so and refuses every VMM call with
// CUDA_ERROR_NOT_SUPPORTED (801); with it (the default) the calls work.
TEST(Expandable, SimcudaVmmKnobTurnsTheVirtualMemoryCallsOff) {
  const std::string ld = "LD_LIBRARY_PATH=" GPUMEM_SIMCUDA_DIR " ";
  auto on = sh(ld + VMM_PROBE);
  EXPECT_EQ(on.status, 0);
  EXPECT_EQ(on.out, "attribute 1 (0) granularity 0 reserve 0 create 0\n");
  auto off = sh(ld + "SIMCUDA_VMM=0 " VMM_PROBE);
  EXPECT_EQ(off.status, 0);
  EXPECT_EQ(off.out, "attribute 0 (0) granularity 801 reserve 801 create 801\n");
  auto bad = sh(ld + "SIMCUDA_VMM=off " VMM_PROBE);
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.out.find("SIMCUDA_VMM='off' is not valid; use 1"), std::string::npos) << bad.out;
}

// GPUMEM_POOL=expandable on a device without VMM: one warning line says so and that the growth
// pool serves instead, and the run is the growth pool's to the byte (its 20 MiB segments: 40 MiB
// reserved for the 24 MiB of blocks, the 12 MiB request served from the second segment).
TEST(Expandable, WithoutVmmTheGrowthPoolServesAfterOneWarning) {
  ScratchDir dir("gpumem-expandable");
  Outcome r = fragmenter(dir, "--pool expandable", "SIMCUDA_VMM=0");
  ASSERT_EQ(r.output.status, 0) << r.output.out;
  EXPECT_NE(r.output.out.find("\"large_request_succeeded\":true"), std::string::npos);
  EXPECT_EQ(count(r.output.out, "GPUMEM_POOL=expandable"), 1u) << r.output.out;
  EXPECT_NE(r.output.out.find("gpumem: GPUMEM_POOL=expandable: device 0 has no virtual memory "
                              "management"),
            std::string::npos)
      << r.output.out;
  EXPECT_NE(r.output.out.find("using the growth pool instead"), std::string::npos);
  // The exit summary (GPUMEM_LOG=info) names the pool that served, as the trace's header does.
  ScratchDir log_dir("gpumem-expandable");
  const Outcome logged = fragmenter(log_dir, "--pool expandable", "SIMCUDA_VMM=0 GPUMEM_LOG=info");
  EXPECT_NE(logged.output.out.find("device 0: allocated"), std::string::npos) << logged.output.out;
  EXPECT_NE(logged.output.out.find(", pool growth"), std::string::npos) << logged.output.out;
  EXPECT_EQ(logged.output.out.find(", pool expandable"), std::string::npos) << logged.output.out;
  ASSERT_TRUE(r.report.is_object());
  ScratchDir growth_dir("gpumem-expandable");  // a trace of its own (f.trace is taken)
  Outcome growth = fragmenter(growth_dir, "--pool growth", "SIMCUDA_VMM=0");
  ASSERT_EQ(growth.output.status, 0) << growth.output.out;
  EXPECT_EQ(count(growth.output.out, "GPUMEM_POOL"), 0u) << growth.output.out;
  const json& d = r.report["devices"][0];
  const json& g = growth.report["devices"][0];
  EXPECT_EQ(d["peak"]["reserved_bytes"], 40 * kMiB);
  EXPECT_EQ(without_times(d["peak"]), without_times(g["peak"]));
  EXPECT_EQ(d["counts"], g["counts"]);
  EXPECT_EQ(d["fragmentation"]["utilization"], 0.6);
  EXPECT_EQ(without_times(d["fragmentation"]), without_times(g["fragmentation"]));
  // What ran is what the trace says: the growth pool, in place of the expandable one asked for
  // (its configuration line keeps the setting).
  const json h = header_of(dir / "f.trace");
  ASSERT_TRUE(h.is_object());
  EXPECT_EQ(h["header"]["pool"], "growth");
  EXPECT_NE(h["header"]["config"].get<std::string>().find("GPUMEM_POOL=expandable\n"),
            std::string::npos);
  EXPECT_EQ(r.report["traces"][0]["pool"], "growth");
  EXPECT_EQ(r.report["traces"][0]["pool_fallback_from"], "expandable");
  EXPECT_EQ(growth.report["traces"][0]["pool"], "growth");
  EXPECT_TRUE(growth.report["traces"][0]["pool_fallback_from"].is_null());
  const gpumem::test::Output text = sh(GPUMEM_CLI " report " + (dir / "f.trace"));
  EXPECT_NE(text.out.find("\n  pool: growth, in place of GPUMEM_POOL=expandable (the device has "
                          "no virtual memory management)\n"),
            std::string::npos)
      << text.out;
}

// With VMM the header names the expandable pool and the report has no fall-back line.
TEST(Expandable, WithVmmTheTraceNamesTheExpandablePool) {
  ScratchDir dir("gpumem-expandable");
  Outcome r = fragmenter(dir, "--pool expandable");
  ASSERT_EQ(r.output.status, 0) << r.output.out;
  EXPECT_EQ(header_of(dir / "f.trace")["header"]["pool"], "expandable");
  EXPECT_EQ(r.report["traces"][0]["pool"], "expandable");
  EXPECT_TRUE(r.report["traces"][0]["pool_fallback_from"].is_null());
  EXPECT_EQ(sh(GPUMEM_CLI " report " + (dir / "f.trace")).out.find("in place of"),
            std::string::npos);
}

}  // namespace
