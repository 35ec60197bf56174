// OOM forensics end to end: gpumem-oom's scenarios (sample_workloads/scenarios/oom.cpp) under
// `gpumem run` on the simulated device. The numbers are what each scenario does, in bytes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include "gpumem/trace/format.h"
#include "gpumem/trace/reader.h"
#include "scratch.h"
#include "shell.h"
#include "units.h"
#include "programs.h"

namespace {

using gpumem::test::Output;
using gpumem::test::ScratchDir;
using gpumem::test::sh;
namespace tr = gpumem::trace;

// Runs `gpumem run --device sim OPTIONS -- gpumem-oom SCENARIO` with its trace in `dir`.
Output run(const ScratchDir& dir, const std::string& options, const std::string& scenario,
           const std::string& env = "") {
  return sh(env + " " + kCli + " run --device sim --trace " + (dir / "run.trace") + " " + options +
            " -- " + kOom + " " + scenario);
}

std::vector<tr::Record> records(const std::string& path) {
  std::vector<tr::Record> out;
  std::string error;
  auto reader = tr::Reader::open(path, &error);
  EXPECT_TRUE(reader) << error;
  if (!reader) return out;
  tr::Event ev;
  while (reader->next(&ev)) out.push_back(ev.rec);
  return out;
}

std::vector<tr::Record> of_op(const std::vector<tr::Record>& all, tr::Op op) {
  std::vector<tr::Record> out;
  for (const tr::Record& r : all)
    if (r.op == static_cast<uint16_t>(op)) out.push_back(r);
  return out;
}

// The oom record follows its alloc_failed record on the same thread, with its request and site.
void expect_pair(const std::vector<tr::Record>& all, const tr::Record& oom) {
  const tr::Record* failed = nullptr;
  for (const tr::Record& r : all) {
    if (&r == &oom || r.t_ns > oom.t_ns) break;
    if (r.op == static_cast<uint16_t>(tr::Op::alloc_failed) && r.tid == oom.tid) failed = &r;
  }
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(failed->bytes, oom.bytes);
  EXPECT_EQ(failed->site, oom.site);
  EXPECT_EQ(failed->result, oom.result);
  EXPECT_EQ(failed->device, oom.device);
}

TEST(Record, DeviceRefusesTooBig) {
  ScratchDir dir("gpumem-oom");
  Output o = run(dir, "", "too-big", "SIMCUDA_MEMORY=256MiB");
  ASSERT_EQ(o.status, 3) << o.out;
  const auto all = records(dir / "run.trace");
  const auto ooms = of_op(all, tr::Op::oom);
  ASSERT_EQ(ooms.size(), 1u);
  const tr::Record& r = ooms[0];
  EXPECT_EQ(r.bytes, 512 * kMiB);
  EXPECT_EQ(r.address, 64 * kMiB);  // allocated
  EXPECT_EQ(r.stream, 64 * kMiB);   // reserved: no pool
  EXPECT_EQ(r.aux, 0u);             // no pool, no free block
  EXPECT_EQ(r.result, 2);           // cudaErrorMemoryAllocation
  EXPECT_EQ(r.flags & tr::kFlagOomByGpumem, 0);
  expect_pair(all, r);
}

TEST(Record, GrowthPoolFragmentation) {
  ScratchDir dir("gpumem-oom");
  Output o = run(dir, "--pool growth --limit 40MiB", "fragmentation");
  ASSERT_EQ(o.status, 3) << o.out;
  const auto all = records(dir / "run.trace");
  const auto ooms = of_op(all, tr::Op::oom);
  ASSERT_EQ(ooms.size(), 1u);
  const tr::Record& r = ooms[0];
  EXPECT_EQ(r.bytes, 8 * kMiB);
  EXPECT_EQ(r.address, 20 * kMiB);  // five 4 MiB blocks live
  EXPECT_EQ(r.stream, 40 * kMiB);   // two 20 MiB segments
  EXPECT_EQ(r.aux, 4 * kMiB);       // the holes are 4 MiB each
  EXPECT_NE(r.flags & tr::kFlagOomByGpumem, 0);
  EXPECT_NE(r.flags & tr::kFlagPooled, 0);
  expect_pair(all, r);
}

// `gpumem dump` decodes the record's fields by name (docs/trace-format.md).
TEST(Record, DumpNamesTheState) {
  ScratchDir dir("gpumem-oom");
  ASSERT_EQ(run(dir, "--pool growth --limit 40MiB", "fragmentation").status, 3);
  Output d = sh(kCli + " dump " + (dir / "run.trace") + " 2>/dev/null");
  ASSERT_EQ(d.status, 0) << d.out;
  const size_t at = d.out.find("{\"op\":\"oom\"");
  ASSERT_NE(at, std::string::npos) << d.out;
  const auto j = nlohmann::json::parse(d.out.substr(at, d.out.find('\n', at) - at));
  EXPECT_EQ(j["api"], "cudaMalloc");
  EXPECT_EQ(j["pooled"], true);
  EXPECT_EQ(j["requested"], 8 * kMiB);
  EXPECT_EQ(j["allocated"], 20 * kMiB);
  EXPECT_EQ(j["reserved"], 40 * kMiB);
  EXPECT_EQ(j["largest_free_block"], 4 * kMiB);
  EXPECT_EQ(j["by_gpumem"], true);
}

TEST(Record, RetryAfterEmptyingTheCache) {
  ScratchDir dir("gpumem-oom");
  Output o = run(dir, "--limit 48MiB", "retry");
  ASSERT_EQ(o.status, 0) << o.out;
  const auto all = records(dir / "run.trace");
  const auto ooms = of_op(all, tr::Op::oom);
  ASSERT_EQ(ooms.size(), 1u);
  EXPECT_EQ(ooms[0].bytes, 16 * kMiB);
  EXPECT_EQ(ooms[0].address, 40 * kMiB);
  EXPECT_EQ(ooms[0].stream, 40 * kMiB);
  EXPECT_NE(ooms[0].flags & tr::kFlagOomByGpumem, 0);
  expect_pair(all, ooms[0]);
}

TEST(Record, NoneWithoutAFailure) {
  ScratchDir dir("gpumem-oom");
  Output o = run(dir, "--limit 64MiB", "retry");
  ASSERT_EQ(o.status, 0) << o.out;
  EXPECT_TRUE(of_op(records(dir / "run.trace"), tr::Op::oom).empty());
}

// How the explanation names a request of `bytes`: "cudaMalloc of 3.12 MiB (3276800 B)".
std::string fmt_bytes_line(uint64_t bytes) {
  return "(" + std::to_string(bytes) + " B) on device 0";
}

// `gpumem report --json -` of the scenario's trace.
nlohmann::json report(const ScratchDir& dir) {
  Output o = sh(kCli + " report " + (dir / "run.trace") + " --json - 2>/dev/null");
  EXPECT_EQ(o.status, 0) << o.out;
  return nlohmann::json::parse(o.out, nullptr, false);
}

TEST(Report, TooBigIsFinalAndRefusedByTheDevice) {
  ScratchDir dir("gpumem-oom");
  ASSERT_EQ(run(dir, "", "too-big", "SIMCUDA_MEMORY=256MiB").status, 3);
  const auto j = report(dir);
  ASSERT_EQ(j["ooms"].size(), 1u) << j.dump();
  const auto& o = j["ooms"][0];
  EXPECT_EQ(o["outcome"], "final");
  EXPECT_EQ(o["refused_by"], "device");
  EXPECT_EQ(o["api"], "cudaMalloc");
  EXPECT_EQ(o["result"], 2);
  EXPECT_EQ(o["requested_bytes"], 512 * kMiB);
  EXPECT_EQ(o["capacity_bytes"], 256 * kMiB);
  EXPECT_EQ(o["limit_bytes"], 0);
  EXPECT_EQ(o["allocated_bytes"], 64 * kMiB);
  EXPECT_EQ(o["reserved_bytes"], 64 * kMiB);
  EXPECT_EQ(o["reserved_unallocated_bytes"], 0);
  EXPECT_EQ(o["largest_free_block_bytes"], 0);
  EXPECT_EQ(o["grouped_by"], "size_class");
  EXPECT_EQ(o["live_bytes"], 64 * kMiB);
  ASSERT_EQ(o["live"].size(), 1u);
  EXPECT_EQ(o["live"][0]["bytes"], 64 * kMiB);
  EXPECT_EQ(j["oom_counts"]["final"], 1);
  EXPECT_EQ(j["oom_counts"]["retried"], 0);
}

TEST(Report, FragmentationUnderTheGrowthPool) {
  ScratchDir dir("gpumem-oom");
  ASSERT_EQ(run(dir, "--pool growth --limit 40MiB", "fragmentation").status, 3);
  const auto j = report(dir);
  ASSERT_EQ(j["ooms"].size(), 1u) << j.dump();
  const auto& o = j["ooms"][0];
  EXPECT_EQ(o["outcome"], "final");
  EXPECT_EQ(o["refused_by"], "gpumem");
  EXPECT_EQ(o["pooled"], true);
  EXPECT_EQ(o["requested_bytes"], 8 * kMiB);
  EXPECT_EQ(o["limit_bytes"], 40 * kMiB);
  EXPECT_EQ(o["allocated_bytes"], 20 * kMiB);
  EXPECT_EQ(o["reserved_bytes"], 40 * kMiB);
  EXPECT_EQ(o["reserved_unallocated_bytes"], 20 * kMiB);
  EXPECT_EQ(o["largest_free_block_bytes"], 4 * kMiB);
  EXPECT_EQ(o["free_in_segments_bytes"], 20 * kMiB);
  EXPECT_DOUBLE_EQ(o["external_fragmentation"].get<double>(), 0.8);  // 1 - 4/20
  EXPECT_EQ(o["live_bytes"], 20 * kMiB);
}

TEST(Report, AnotherLibrarysWorkspaceByModule) {
  ScratchDir dir("gpumem-oom");
  ASSERT_EQ(run(dir, "--stacks --limit 48MiB", "workspace").status, 3);
  const auto j = report(dir);
  ASSERT_EQ(j["ooms"].size(), 1u) << j.dump();
  const auto& o = j["ooms"][0];
  EXPECT_EQ(o["requested_bytes"], 16 * kMiB);
  EXPECT_EQ(o["allocated_bytes"], 40 * kMiB);
  EXPECT_EQ(o["grouped_by"], "site");
  EXPECT_EQ(o["live"].size(), 3u);  // activations, weights, workspace: one site each
  ASSERT_EQ(o["by_module"].size(), 2u) << o["by_module"].dump();
  EXPECT_EQ(o["by_module"][0]["module"], "gpumem-oom");
  EXPECT_EQ(o["by_module"][0]["bytes"], 24 * kMiB);
  EXPECT_EQ(o["by_module"][0]["count"], 2);
  EXPECT_EQ(o["by_module"][1]["module"], "libgpumem_oom_workspace.so");
  EXPECT_EQ(o["by_module"][1]["bytes"], 16 * kMiB);
  EXPECT_EQ(o["by_module"][1]["count"], 1);
  ASSERT_FALSE(o["frames"].empty());
  EXPECT_NE(o["frames"][0].get<std::string>().find("try_alloc"), std::string::npos);
}

TEST(Report, RetryAfterEmptyingTheCacheIsCountedApart) {
  ScratchDir dir("gpumem-oom");
  ASSERT_EQ(run(dir, "--limit 48MiB", "retry").status, 0);
  const auto j = report(dir);
  ASSERT_EQ(j["ooms"].size(), 1u) << j.dump();
  const auto& o = j["ooms"][0];
  EXPECT_EQ(o["outcome"], "retried");
  EXPECT_EQ(o["freed_before_retry_bytes"], 24 * kMiB);  // the three cached 8 MiB buffers
  EXPECT_GE(o["retry_t_ns"].get<int64_t>(), o["t_ns"].get<int64_t>());
  EXPECT_EQ(o["allocated_bytes"], 40 * kMiB);
  EXPECT_EQ(j["oom_counts"]["final"], 0);
  EXPECT_EQ(j["oom_counts"]["retried"], 1);
}

TEST(Report, TextPrintsTheOomFirst) {
  ScratchDir dir("gpumem-oom");
  ASSERT_EQ(run(dir, "--pool growth --limit 40MiB", "fragmentation").status, 3);
  Output o = sh(kCli + " report " + (dir / "run.trace") + " --text");
  ASSERT_EQ(o.status, 0) << o.out;
  EXPECT_EQ(o.out.rfind("1 allocation(s) ran out of memory: 1 final, 0 retried and succeeded\n"
                        "OUT OF MEMORY (final): cudaMalloc of 8.00 MiB (8388608 B) on device 0",
                        0),
            0u)
      << o.out;
  EXPECT_NE(o.out.find("  allocated 20.00 MiB, reserved 40.00 MiB: 20.00 MiB reserved but "
                       "unallocated (cached, unused)\n  pool: 20.00 MiB free inside its "
                       "segments, largest free block 4.00 MiB (external fragmentation 80.0%)\n"),
            std::string::npos)
      << o.out;
}

// A trace cut at the failure (the framework aborts right after it): the same section.
TEST(Report, TraceCutAtTheOomGivesTheSameSection) {
  ScratchDir dir("gpumem-oom");
  ASSERT_EQ(run(dir, "--pool growth --limit 40MiB", "fragmentation").status, 3);
  const auto whole = report(dir);
  // Keep the records up to and including Op::oom; zero the rest and mark the file not closed.
  const std::string path = dir / "run.trace";
  const auto all = records(path);
  size_t keep = 0;
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i].op == static_cast<uint16_t>(tr::Op::oom)) keep = i + 1;
  ASSERT_GT(keep, 0u);
  // Records (blobs included) are read in file order: find the oom record's slot in the file.
  FILE* f = std::fopen(path.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  tr::Header h{};
  ASSERT_EQ(std::fread(&h, sizeof h, 1, f), 1u);
  tr::Record rec{};
  long slot = 0, cut = -1;
  std::fseek(f, tr::kHeaderSize, SEEK_SET);
  while (std::fread(&rec, sizeof rec, 1, f) == 1) {
    if (rec.commit == tr::kCommitted && rec.op == static_cast<uint16_t>(tr::Op::oom))
      cut = slot + 1;
    ++slot;
  }
  ASSERT_GT(cut, 0);
  h.flags &= ~tr::kHeaderClosed;
  h.end_offset = 0;
  std::fseek(f, 0, SEEK_SET);
  ASSERT_EQ(std::fwrite(&h, sizeof h, 1, f), 1u);
  const tr::Record zero{};
  std::fseek(f, tr::kHeaderSize + cut * static_cast<long>(tr::kRecordSize), SEEK_SET);
  for (long i = cut; i < slot; ++i) ASSERT_EQ(std::fwrite(&zero, sizeof zero, 1, f), 1u);
  std::fclose(f);
  const auto cut_report = report(dir);
  ASSERT_EQ(cut_report["ooms"].size(), 1u);
  auto a = whole["ooms"][0], b = cut_report["ooms"][0];
  EXPECT_EQ(a, b) << a.dump() << "\n" << b.dump();
}

// What would fit, per policy, for the trace up to the failed request; the advised setting then
// fits in a second run, and one byte (or one granule) less does not.
TEST(Fit, FragmentationAdvisesNoPoolAndTheSecondRunFits) {
  ScratchDir dir("gpumem-oom");
  ASSERT_EQ(run(dir, "--pool growth --limit 40MiB", "fragmentation").status, 3);
  const auto j = report(dir);
  ASSERT_EQ(j["ooms"].size(), 1u) << j.dump();
  const auto& o = j["ooms"][0];
  ASSERT_EQ(o["would_fit"].size(), 4u);  // none, growth, fixed, expandable
  EXPECT_EQ(o["would_fit"][0]["policy"], "none");
  EXPECT_EQ(o["would_fit"][0]["smallest_limit_bytes"], 40 * kMiB);  // ten 4 MiB blocks at once
  EXPECT_EQ(o["would_fit"][0]["fits_at_capacity"], true);
  EXPECT_EQ(o["would_fit"][1]["policy"], "growth");
  EXPECT_EQ(o["would_fit"][1]["smallest_limit_bytes"], 60 * kMiB);  // a third 20 MiB segment
  EXPECT_EQ(o["would_fit"][2]["policy"], "fixed");
  EXPECT_EQ(o["would_fit"][2]["smallest_limit_bytes"], 48 * kMiB);
  EXPECT_EQ(o["would_fit"][3]["policy"], "expandable");
  EXPECT_EQ(o["would_fit"][3]["smallest_limit_bytes"], 40 * kMiB);  // mapped = allocated here
  ASSERT_EQ(o["advice"].size(), 1u);
  EXPECT_EQ(o["advice"][0]["scope"], "gpumem");
  EXPECT_EQ(o["advice"][0]["setting"], "GPUMEM_POOL=none GPUMEM_LIMIT=40MiB");
  ScratchDir again("gpumem-oom");
  Output o2 = run(again, "--pool none --limit 40MiB", "fragmentation");
  EXPECT_EQ(o2.status, 0) << o2.out;
  EXPECT_NE(o2.out.find("\"succeeded\":true"), std::string::npos) << o2.out;
  ScratchDir less("gpumem-oom");
  EXPECT_EQ(run(less, "--pool growth --limit 58MiB", "fragmentation").status, 3);
  ScratchDir growth("gpumem-oom");
  EXPECT_EQ(run(growth, "--pool growth --limit 60MiB", "fragmentation").status, 0);
}

TEST(Fit, WorkspaceAdvisesTheCapThatFitsAndItDoes) {
  ScratchDir dir("gpumem-oom");
  ASSERT_EQ(run(dir, "--stacks --limit 48MiB", "workspace").status, 3);
  const auto j = report(dir);
  ASSERT_EQ(j["ooms"].size(), 1u) << j.dump();
  const auto& o = j["ooms"][0];
  ASSERT_EQ(o["would_fit"].size(), 4u);  // none, growth, fixed, expandable
  EXPECT_EQ(o["would_fit"][0]["smallest_limit_bytes"], 56 * kMiB);  // 40 MiB held + 16 MiB
  ASSERT_EQ(o["advice"].size(), 1u);
  EXPECT_EQ(o["advice"][0]["setting"], "GPUMEM_POOL=none GPUMEM_LIMIT=56MiB");
  ScratchDir again("gpumem-oom");
  EXPECT_EQ(run(again, "--pool none --limit 56MiB", "workspace").status, 0);
  ScratchDir less("gpumem-oom");
  EXPECT_EQ(run(less, "--pool none --limit 58720255", "workspace").status, 3);
}

TEST(Fit, TooBigForTheDeviceUnderEveryPolicy) {
  ScratchDir dir("gpumem-oom");
  ASSERT_EQ(run(dir, "", "too-big", "SIMCUDA_MEMORY=256MiB").status, 3);
  const auto j = report(dir);
  ASSERT_EQ(j["ooms"].size(), 1u) << j.dump();
  const auto& o = j["ooms"][0];
  ASSERT_EQ(o["would_fit"].size(), 4u);  // none, growth, fixed, expandable
  for (const auto& f : o["would_fit"]) EXPECT_EQ(f["fits_at_capacity"], false) << f.dump();
  EXPECT_EQ(o["would_fit"][0]["smallest_limit_bytes"], 576 * kMiB);
  // Pool none's peak is past the capacity, so no pool can fit: the pools are not searched (a
  // search maps each 2 MiB granule of the request a dozen times: 11 s for 1 TiB).
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_TRUE(o["would_fit"][i]["smallest_limit_bytes"].is_null()) << o["would_fit"][i].dump();
    EXPECT_TRUE(o["would_fit"][i]["safe_limit_bytes"].is_null()) << o["would_fit"][i].dump();
  }
  ASSERT_EQ(o["advice"].size(), 1u);
  EXPECT_EQ(o["advice"][0]["reason"],
            "replayed up to this request, even pool none (the least of every policy) needs "
            "576.00 MiB (603979776 B), more than the device's 256.00 MiB: no cap or pool makes it "
            "fit");
}

// `gpumem run` explains on stderr only an allocation that failed for good.
TEST(Run, ExplainsFinalFailuresOnly) {
  ScratchDir dir("gpumem-oom");
  Output failed = run(dir, "--pool growth --limit 40MiB", "fragmentation");
  ASSERT_EQ(failed.status, 3) << failed.out;
  EXPECT_NE(failed.out.find("gpumem: 1 allocation(s) failed for good (0 retried and succeeded); "
                            "full report: gpumem report " +
                            (dir / "run.trace") +
                            "\nOUT OF MEMORY (final): cudaMalloc of 8.00 MiB (8388608 B)"),
            std::string::npos)
      << failed.out;
  EXPECT_NE(failed.out.find("  advice (gpumem): GPUMEM_POOL=none GPUMEM_LIMIT=40MiB\n"),
            std::string::npos)
      << failed.out;
  ScratchDir retried("gpumem-oom");
  Output ok = run(retried, "--limit 48MiB", "retry");
  ASSERT_EQ(ok.status, 0) << ok.out;
  EXPECT_EQ(ok.out.find("OUT OF MEMORY"), std::string::npos) << ok.out;
  EXPECT_EQ(ok.out.find("failed for good"), std::string::npos) << ok.out;
}

// The bundled trainer under a cap: gpumem's explanation and the trainer's own out-of-memory
// message name the same request, the same bytes held and the same capacity (the cap, which is
// what cudaMemGetInfo reports under it).
TEST(Trainer, ExplanationAgreesWithTheTrainersOwnMessage) {
  ScratchDir dir("gpumem-oom");
  Output o = sh(kCli + " run --device sim --limit 2MiB --trace " + (dir / "run.trace") + " -- " +
                GPUMEM_TRAIN + " --epochs 1 --samples 8192");
  ASSERT_EQ(o.status, 3) << o.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(o.out, m,
                                std::regex("\\(([0-9]+) bytes\\) requested while the trainer "
                                           "held [^(]*\\(([0-9]+) bytes\\); device capacity "
                                           "[^(]*\\(([0-9]+) bytes\\)")))
      << o.out;
  const uint64_t requested = std::stoull(m[1]), held = std::stoull(m[2]),
                 capacity = std::stoull(m[3]);
  EXPECT_EQ(requested, 3276800u);  // dataset.inputs: 8192 x 100 floats
  const auto j = report(dir);
  ASSERT_EQ(j["ooms"].size(), 1u) << j.dump();
  const auto& x = j["ooms"][0];
  EXPECT_EQ(x["requested_bytes"], requested);
  EXPECT_EQ(x["allocated_bytes"], held);
  EXPECT_EQ(x["limit_bytes"], capacity);
  EXPECT_EQ(x["refused_by"], "gpumem");
  EXPECT_EQ(x["outcome"], "final");
  EXPECT_NE(o.out.find(fmt_bytes_line(requested)), std::string::npos) << o.out;
}

}  // namespace
