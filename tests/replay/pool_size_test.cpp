// Replay sizes the fixed pool as the preload does: GPUMEM_POOL_SIZE from the trace header's
// configuration lines, `--pool-size` over it, else the limit (docs/replay-fit.md).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "gpumem/replay/replay_command.h"
#include "shell.h"
#include "trace_file.h"
#include "units.h"

namespace gpumem::replay {
namespace {

using nlohmann::json;
using replay_test::TraceFile;

// Recorded with GPUMEM_POOL=fixed GPUMEM_LIMIT=32MiB GPUMEM_POOL_SIZE=8MiB: 6 MiB, then 3 MiB
// more. The 8 MiB pool cannot hold both (9 MiB); a pool of the limit's 32 MiB could.
std::unique_ptr<Program> fixed_pool_trace() {
  TraceFile t(64 * kMiB, "fixed", 32 * kMiB);
  std::snprintf(t.header().config, sizeof t.header().config, "%s",
                "GPUMEM_TRACE=x.trace\nGPUMEM_POOL=fixed\nGPUMEM_LIMIT=32MiB\n"
                "GPUMEM_POOL_SIZE=8MiB\n");
  t.alloc(0x1000, 6 * kMiB);
  t.alloc(0x2000, 3 * kMiB);
  t.free(0x2000, 3 * kMiB);
  t.free(0x1000, 6 * kMiB);
  return replay_test::load(t, "pool-size");
}

json replay_fixed(const Program& p, const std::string& pool_size, const std::string& limit = "") {
  json doc;
  std::string error;
  EXPECT_TRUE(replay_to_json(p, Policy::fixed, limit, "", pool_size, false, &doc, &error)) << error;
  return doc;
}

TEST(PoolSize, ReadFromTheTraceHeader) {
  auto p = fixed_pool_trace();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->recorded_pool_size, 8 * kMiB);
  const json doc = replay_fixed(*p, "");
  const json& d = doc["devices"][0];
  EXPECT_EQ(d["limit_bytes"], 32 * kMiB);
  EXPECT_EQ(d["pool_size_bytes"], 8 * kMiB);
  ASSERT_FALSE(d["fits"].get<bool>());
  EXPECT_EQ(d["failure"]["record"], 1u);
  EXPECT_EQ(d["failure"]["bytes"], 3 * kMiB);
  EXPECT_EQ(d["failure"]["refused_by"], "pool");
  EXPECT_EQ(d["peak_reserved_bytes"], 8 * kMiB);  // the whole pool, taken through the limit
  const std::string text = render_replay_text(doc);
  EXPECT_NE(text.find("limit 32.00 MiB, fixed pool 8.00 MiB: DOES NOT FIT\n"), std::string::npos)
      << text;
}

TEST(PoolSize, OptionOverridesTheRecordedSize) {
  auto p = fixed_pool_trace();
  ASSERT_NE(p, nullptr);
  const json doc = replay_fixed(*p, "9MiB");
  const json& d = doc["devices"][0];
  EXPECT_EQ(d["pool_size_bytes"], 9 * kMiB);
  EXPECT_TRUE(d["fits"].get<bool>());
  EXPECT_EQ(d["peak_reserved_bytes"], 9 * kMiB);
}

TEST(PoolSize, WithoutASizeTheLimitSizesThePool) {
  TraceFile t(64 * kMiB, "fixed", 32 * kMiB);
  t.alloc(0x1000, 9 * kMiB);
  auto p = replay_test::load(t, "pool-size-limit");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->recorded_pool_size, 0u);
  const json doc = replay_fixed(*p, "");
  const json& d = doc["devices"][0];
  EXPECT_EQ(d["pool_size_bytes"], 32 * kMiB);
  EXPECT_TRUE(d["fits"].get<bool>());
}

TEST(PoolSize, AboveTheLimitOrNotASizeIsAnError) {
  auto p = fixed_pool_trace();
  ASSERT_NE(p, nullptr);
  json doc;
  std::string error;
  EXPECT_FALSE(replay_to_json(*p, Policy::fixed, "4MiB", "", "", false, &doc, &error));
  EXPECT_EQ(error,
            "the fixed pool's size 8.00 MiB is above device 0's limit 4.00 MiB; give a smaller "
            "--pool-size or a larger --limit");
  EXPECT_FALSE(replay_to_json(*p, Policy::fixed, "", "", "100", false, &doc, &error));
  EXPECT_EQ(error,
            "--pool-size '100' is not valid: it is below 512 B, the fixed pool's smallest block, "
            "so every allocation would fail; give a size of at least 512 B such as 512MiB");
}

// A trace the preload recorded with GPUMEM_POOL=fixed GPUMEM_POOL_SIZE=24MiB under a 64 MiB limit
// replays with a 24 MiB pool: its one segment, the recorded peak reserved, not the limit's 64 MiB.
TEST(PoolSize, PreloadFixedTraceReplaysWithItsPoolSize) {
  using gpumem::test::Output;
  using gpumem::test::sh;
  const std::string cli = GPUMEM_CLI;
  const std::string trace = replay_test::temp_path("preload-fixed");
  Output run = sh("GPUMEM_POOL_SIZE=24MiB " + cli + " run --device sim --pool fixed --limit 64MiB" +
                  " --trace " + trace + " -- " + GPUMEM_TRAIN +
                  " --epochs 1 --samples 1024 --hidden 512 --layers 2 --batch 256");
  ASSERT_EQ(run.status, 0) << run.out;
  Output rep = sh(cli + " report " + trace + " --json - 2>/dev/null");
  ASSERT_EQ(rep.status, 0) << rep.out;
  const uint64_t recorded =
      json::parse(rep.out)["devices"][0]["peak"]["reserved_bytes"].get<uint64_t>();
  EXPECT_EQ(recorded, 24 * kMiB);
  Output rp = sh(cli + " replay " + trace + " --pool fixed --no-search --json - 2>/dev/null");
  ASSERT_EQ(rp.status, 0) << rp.out;
  const json replayed = json::parse(rp.out)["devices"][0];
  EXPECT_EQ(replayed["limit_bytes"], 64 * kMiB);
  EXPECT_EQ(replayed["pool_size_bytes"], 24 * kMiB);
  EXPECT_TRUE(replayed["fits"].get<bool>());
  EXPECT_EQ(replayed["peak_reserved_bytes"].get<uint64_t>(), recorded);
  ::unlink(trace.c_str());
}

}  // namespace
}  // namespace gpumem::replay
