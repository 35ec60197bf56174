// `gpumem fit` on gpumem-train on the simulated device: the recommended settings run under the
// limit and the next larger micro-batch does not (it fails with the trainer's OOM error); the
// error cases. About 10 s: one epoch of 2048 samples per run.
#include <gtest/gtest.h>

#include "shell.h"
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace {

using gpumem::test::Output;
using gpumem::test::sh;

const std::string kCli = GPUMEM_CLI;
const std::string kTrain =
    std::string(GPUMEM_TRAIN_EXE) + " --epochs 1 --samples 2048 --hidden 2048";
constexpr uint64_t MiB = uint64_t{1} << 20;

TEST(Fit, RecommendationRunsAndNextLargerDoesNot) {
  const std::string json_path = "/tmp/gpumem-fit-test-" + std::to_string(::getpid()) + ".json";
  Output o = sh(kCli +
                " fit --limit 10MiB --effective-batch 512 --batches 32,64,128 --device sim"
                " --json " +
                json_path + " -- " + kTrain + " --batch {batch} --accum {accum}");
  ASSERT_EQ(o.status, 0) << o.out;
  EXPECT_NE(o.out.find("recommendation: --batch 256 --accum 2"), std::string::npos) << o.out;
  std::ifstream f(json_path);
  nlohmann::json j = nlohmann::json::parse(f);
  ::unlink(json_path.c_str());
  EXPECT_EQ(j["schema"], "gpumem.fit/1");
  ASSERT_EQ(j["measured"].size(), 3u);
  // The trainer's memory is linear in the micro-batch: the line goes through every point.
  EXPECT_GT(j["fit"]["r2"].get<double>(), 0.9999);
  EXPECT_LT(j["fit"]["max_abs_residual_bytes"].get<double>(), 4096.0);
  const auto& rec = j["recommendation"];
  const uint64_t batch = rec["batch"].get<uint64_t>(), accum = rec["accum"].get<uint64_t>();
  EXPECT_EQ(batch * accum, 512u);
  EXPECT_LE(rec["predicted_with_margin_bytes"].get<double>(), 10.0 * MiB);
  EXPECT_TRUE(j["verification"]["ran"].get<bool>());
  EXPECT_LE(j["verification"]["measured_peak_bytes"].get<uint64_t>(), 10 * MiB);
  // The measured peak of the verified run is what the line predicted (within the residual).
  EXPECT_NEAR(j["verification"]["measured_peak_bytes"].get<double>(),
              rec["predicted_bytes"].get<double>(), 4096.0);
  // The next larger micro-batch under the same cap fails with the trainer's out-of-memory error.
  ASSERT_FALSE(rec["next_batch"].is_null());
  const uint64_t next = rec["next_batch"].get<uint64_t>();
  Output bigger =
      sh("SIMCUDA_MEMORY=10MiB " + kCli +
         " run --device sim --trace off --limit 10MiB"
         " -- " +
         kTrain + " --batch " + std::to_string(next) + " --accum " + std::to_string(512 / next));
  EXPECT_EQ(bigger.status, 3) << bigger.out;
  EXPECT_NE(bigger.out.find("out of device memory"), std::string::npos) << bigger.out;
  // And the recommended one, run the same way, succeeds.
  Output same =
      sh("SIMCUDA_MEMORY=10MiB " + kCli +
         " run --device sim --trace off --limit 10MiB"
         " -- " +
         kTrain + " --batch " + std::to_string(batch) + " --accum " + std::to_string(accum));
  EXPECT_EQ(same.status, 0) << same.out;
}

TEST(Fit, CommandWithoutPlaceholders) {
  Output o = sh(kCli + " fit --limit 8MiB --effective-batch 512 --device sim -- " + kTrain);
  EXPECT_EQ(o.status, 2);
  EXPECT_NE(o.out.find("the command has no {batch} placeholder"), std::string::npos) << o.out;
}

TEST(Fit, LimitBelowTheFixedPart) {
  Output o = sh(kCli + " fit --limit 4MiB --effective-batch 512 --batches 32,64 --device sim -- " +
                kTrain + " --batch {batch} --accum {accum}");
  EXPECT_EQ(o.status, 3) << o.out;
  EXPECT_NE(o.out.find("the fixed part alone (5.13 MiB: parameters, optimizer state, data) exceeds "
                       "the limit 4.00 MiB"),
            std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("try --data stream / --dtype fp16 / a larger limit"), std::string::npos);
}

TEST(Fit, BadOptions) {
  Output margin = sh(kCli + " fit --limit 8MiB --effective-batch 8 --margin lots -- x {batch}");
  EXPECT_EQ(margin.status, 2);
  EXPECT_NE(margin.out.find("--margin 'lots' is not a margin"), std::string::npos) << margin.out;
  Output limit = sh(kCli + " fit --limit big --effective-batch 8 -- x {batch}");
  EXPECT_EQ(limit.status, 2);
  EXPECT_NE(limit.out.find("--limit 'big' is not a size"), std::string::npos) << limit.out;
  Output one = sh(kCli + " fit --limit 8MiB --effective-batch 8 --batches 4 -- x {batch}");
  EXPECT_EQ(one.status, 2);
  EXPECT_NE(one.out.find("two or more different"), std::string::npos) << one.out;
}

}  // namespace
