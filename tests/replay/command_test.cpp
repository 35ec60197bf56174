// `gpumem replay` end to end: text table, JSON, and the error cases.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include "shell.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "trace_file.h"
#include "units.h"

namespace gpumem::replay {
namespace {

using replay_test::TraceFile;

using gpumem::test::Output;
using gpumem::test::sh;

std::string sample_trace() {
  TraceFile t(64 * kMiB, "none");
  t.alloc(0x1000, 3 * kMiB);
  t.alloc(0x2000, 5 * kMiB);
  t.free(0x1000, 3 * kMiB);
  t.string(3, "forward");
  t.begin(3);
  t.alloc(0x1000, 4 * kMiB);
  t.end(3);
  t.free(0x2000, 5 * kMiB);
  t.free(0x1000, 4 * kMiB);
  const std::string path = replay_test::temp_path("cli");
  t.write(path);
  return path;
}

const std::string kCli = GPUMEM_CLI;

TEST(Command, TextSaysWhereItFails) {
  const std::string path = sample_trace();
  Output o = sh(kCli + " replay " + path + " --pool none --limit 8MiB");
  EXPECT_EQ(o.status, 0) << o.out;
  EXPECT_NE(o.out.find("DOES NOT FIT"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("phase 'forward'"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("cudaMalloc of 4.00 MiB refused by the limit"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("9437184"), std::string::npos) << o.out;   // none: 9 kMiB exactly
  EXPECT_NE(o.out.find("20971520"), std::string::npos) << o.out;  // growth: 20 kMiB
  EXPECT_NE(o.out.find("12582912"), std::string::npos) << o.out;  // fixed: 12 kMiB
  ::unlink(path.c_str());
}

TEST(Command, JsonDocument) {
  const std::string path = sample_trace();
  const std::string json_path = path + ".json";
  Output o = sh(kCli + " replay " + path + " --pool growth --limit 20MiB --json " + json_path);
  ASSERT_EQ(o.status, 0) << o.out;
  std::ifstream f(json_path);
  nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j["schema"], "gpumem.replay/1");
  EXPECT_EQ(j["policy"], "growth");
  EXPECT_EQ(j["fits"], true);
  const auto& d = j["devices"][0];
  EXPECT_EQ(d["limit_bytes"].get<uint64_t>(), 20 * kMiB);
  EXPECT_EQ(d["peak_reserved_bytes"].get<uint64_t>(), 20 * kMiB);
  EXPECT_EQ(d["peak_allocated_bytes"].get<uint64_t>(), 9 * kMiB);
  EXPECT_TRUE(d["failure"].is_null());
  EXPECT_EQ(d["smallest_limit"]["growth"]["bytes"].get<uint64_t>(), 20 * kMiB);
  EXPECT_EQ(d["smallest_limit"]["none"]["bytes"].get<uint64_t>(), 9 * kMiB);
  EXPECT_EQ(d["smallest_limit"]["fixed"]["granularity_bytes"].get<uint64_t>(), 512u);
  ::unlink(json_path.c_str());
  ::unlink(path.c_str());
}

TEST(Command, Errors) {
  const std::string path = sample_trace();
  Output bad_pool = sh(kCli + " replay " + path + " --pool lru");
  EXPECT_EQ(bad_pool.status, 2);
  EXPECT_NE(bad_pool.out.find("use none, growth, fixed or expandable"), std::string::npos)
      << bad_pool.out;
  Output bad_limit = sh(kCli + " replay " + path + " --limit 12parsecs");
  EXPECT_EQ(bad_limit.status, 2);
  EXPECT_NE(bad_limit.out.find("is not a size"), std::string::npos) << bad_limit.out;
  Output above = sh(kCli + " replay " + path + " --limit 100GiB");
  EXPECT_EQ(above.status, 2);
  EXPECT_NE(above.out.find("above device 0's capacity"), std::string::npos) << above.out;
  Output missing = sh(kCli + " replay /nonexistent/run.trace");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.out.find("/nonexistent/run.trace"), std::string::npos) << missing.out;
  ::unlink(path.c_str());
}

// --json naming the trace it replays (by another spelling too, or the snapshot converted into a
// temporary trace) is refused: the replay was written over the recorded run.
TEST(Command, JsonNeverWritesOverItsInput) {
  const std::string path = sample_trace();
  std::ifstream in(path, std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(in)), {});
  const std::string snap = path + ".pickle";
  ASSERT_EQ(sh(kCli + " export " + path + " --pytorch-snapshot " + snap).status, 0);
  std::ifstream snap_in(snap, std::ios::binary);
  const std::string snap_before((std::istreambuf_iterator<char>(snap_in)), {});
  const std::string slash =
      path.substr(0, path.rfind('/')) + "/./" + path.substr(path.rfind('/') + 1);
  for (const auto& [input, output] :
       {std::pair{path, path}, std::pair{path, slash}, std::pair{snap, snap}}) {
    Output o = sh(kCli + " replay " + input + " --json " + output);
    EXPECT_EQ(o.status, 1) << o.out;
    EXPECT_NE(o.out.find("gpumem replay: --json " + output +
                         " names the file this replay reads; writing there would destroy it"),
              std::string::npos)
        << o.out;
  }
  std::ifstream after(path, std::ios::binary), snap_after(snap, std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(after)), {}), before);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(snap_after)), {}), snap_before);
  ::unlink(path.c_str());
  ::unlink(snap.c_str());
}

// The trace's strings are bytes from the program: bytes that are not UTF-8 (its command, its
// device's name, a phase) come out as U+FFFD in the JSON, never as a crash.
TEST(Command, JsonOfATraceWhoseStringsAreNotUtf8) {
  TraceFile t(64 * kMiB, "none");
  std::snprintf(t.header().command, sizeof t.header().command, "train \xff\xfe");
  std::snprintf(t.header().devices[0].name, sizeof t.header().devices[0].name, "gpu \xc3");
  t.string(3, "phase \x80");
  t.begin(3);
  t.alloc(0x1000, 4 * kMiB);
  t.end(3);
  const std::string path = replay_test::temp_path("not-utf8");
  t.write(path);
  Output o = sh(kCli + " replay " + path + " --pool none --limit 2MiB --json -");
  ASSERT_EQ(o.status, 0) << o.out;
  nlohmann::json j = nlohmann::json::parse(o.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << o.out;
  EXPECT_EQ(j["command"], "train \ufffd\ufffd");
  EXPECT_EQ(j["devices"][0]["name"], "gpu \ufffd");
  EXPECT_EQ(j["devices"][0]["failure"]["phase"], "phase \ufffd");
  ::unlink(path.c_str());
}

// The promise end to end: a trace recorded through the preload's growth pool (real
// segment events from the library, not from the test) replays under the same policy to exactly
// the recorded peak reserved, which `gpumem report` measures from the segment records.
TEST(Command, PreloadGrowthTraceReplaysToItsRecordedPeak) {
  const std::string trace = replay_test::temp_path("preload-growth");
  Output run = sh(kCli + " run --device sim --pool growth --trace " + trace + " -- " +
                  GPUMEM_TRAIN + " --epochs 1 --samples 1024 --hidden 512 --layers 2 --batch 256");
  ASSERT_EQ(run.status, 0) << run.out;
  Output rep = sh(kCli + " report " + trace + " --json - 2>/dev/null");
  ASSERT_EQ(rep.status, 0) << rep.out;
  const auto report = nlohmann::json::parse(rep.out);
  const uint64_t recorded = report["devices"][0]["peak"]["reserved_bytes"].get<uint64_t>();
  const uint64_t allocated = report["devices"][0]["peak"]["allocated_bytes"].get<uint64_t>();
  ASSERT_GT(recorded, allocated) << "a growth pool reserves whole segments";
  Output rp = sh(kCli + " replay " + trace + " --pool growth --no-search --json - 2>/dev/null");
  ASSERT_EQ(rp.status, 0) << rp.out;
  const auto replayed = nlohmann::json::parse(rp.out)["devices"][0];
  EXPECT_EQ(replayed["peak_reserved_bytes"].get<uint64_t>(), recorded);
  EXPECT_EQ(replayed["peak_allocated_bytes"].get<uint64_t>(), allocated);
  ::unlink(trace.c_str());
}

}  // namespace
}  // namespace gpumem::replay
