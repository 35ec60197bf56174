// `mpirun -np 4` runs gpumem-train under `gpumem run --device sim --trace DIR/rank-%r.trace`, rank
// r with --batch 32*(r+1) (so the ranks' peaks differ), then one `gpumem report DIR --json F
// --text` merges the four traces. Checked: four traces with ranks 0..3 and the right commands, each
// rank's trace peak equal to what gpumem-train itself counted, and the `ranks` summary (max, min,
// mean, imbalance, whose) equal to what the per-process sections say. About a second.
#include <gtest/gtest.h>

#include "shell.h"
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using gpumem::test::Output;
using gpumem::test::sh;

const std::string kCli = GPUMEM_CLI;
const std::string kTrain = GPUMEM_TRAIN_EXE;
const std::string kMpirun = GPUMEM_MPIRUN;
constexpr int kRanks = 4;

int batch_of(int rank) {
  return 32 * (rank + 1);
}

// The last line of a gpumem-train stdout: its JSON result.
json trainer_result(const fs::path& stdout_file) {
  std::ifstream f(stdout_file);
  std::string line, last;
  while (std::getline(f, line))
    if (!line.empty() && line[0] == '{') last = line;
  return last.empty() ? json() : json::parse(last);
}

class Mpi : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kMpirun.empty() || ::access(kMpirun.c_str(), X_OK) != 0)
      GTEST_SKIP() << "mpirun not found (install Debian's openmpi-bin, as scripts/setup does)";
    char tmpl[] = "/tmp/gpumem-mpi-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // %r must come from Open MPI's OMPI_COMM_WORLD_RANK, not from a RANK left in the environment
    // (libgpumem reads RANK and LOCAL_RANK first).
    ::unsetenv("RANK");
    ::unsetenv("LOCAL_RANK");
    // Open MPI refuses to start as root (CI containers) unless both are set.
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(Mpi, FourRanksMergeIntoOneReport) {
  const fs::path traces = dir_ / "traces";
  fs::create_directory(traces);
  // Each rank: gpumem run wraps `sh -c 'exec gpumem-train ...'`; the preload follows the exec,
  // and the trainer's stdout goes to a file per rank (mpirun would interleave them).
  const std::string rank_cmd = "exec " + kTrain +
                               " --epochs 1 --samples 1024 --batch $((32*(OMPI_COMM_WORLD_RANK+1)))"
                               " > " +
                               dir_.string() + "/train-$OMPI_COMM_WORLD_RANK.out";
  Output run = sh(kMpirun + " -np " + std::to_string(kRanks) + " --oversubscribe --bind-to none " +
                  kCli + " run --device sim --trace " + traces.string() +
                  "/rank-%r.trace -- sh -c '" + rank_cmd + "'");
  ASSERT_EQ(run.status, 0) << run.out;
  for (int r = 0; r < kRanks; ++r)
    ASSERT_TRUE(fs::exists(traces / ("rank-" + std::to_string(r) + ".trace"))) << run.out;

  const fs::path json_path = dir_ / "report.json";
  Output report =
      sh(kCli + " report " + traces.string() + " --json " + json_path.string() + " --text");
  ASSERT_EQ(report.status, 0) << report.out;
  std::ifstream f(json_path);
  const json j = json::parse(f);
  ASSERT_EQ(j["schema"], "gpumem.report/1");

  // Four traces, ranks 0..3 (inputs are read sorted by name), distinct pids, the right commands.
  ASSERT_EQ(j["traces"].size(), size_t{kRanks});
  std::map<int64_t, int> rank_of_pid;
  for (int r = 0; r < kRanks; ++r) {
    const json& t = j["traces"][r];
    EXPECT_EQ(t["rank"], r);
    EXPECT_EQ(t["path"], (traces / ("rank-" + std::to_string(r) + ".trace")).string());
    EXPECT_FALSE(t["truncated"].get<bool>()) << t.dump();
    EXPECT_TRUE(t["simulated"].get<bool>());
    EXPECT_GT(t["events"].get<int64_t>(), 0);
    const std::string cmd = t["command"];
    EXPECT_NE(cmd.find("--batch " + std::to_string(batch_of(r))), std::string::npos) << cmd;
    EXPECT_TRUE(rank_of_pid.emplace(t["pid"].get<int64_t>(), r).second) << "pid seen twice";
  }

  // Process peaks from the per-process sections (max over each process's devices).
  std::map<int, uint64_t> peak_alloc, peak_reserved;
  for (const json& d : j["devices"]) {
    const int r = d["rank"];
    ASSERT_EQ(rank_of_pid.at(d["pid"].get<int64_t>()), r);
    peak_alloc[r] = std::max(peak_alloc[r], d["peak"]["allocated_bytes"].get<uint64_t>());
    peak_reserved[r] = std::max(peak_reserved[r], d["peak"]["reserved_bytes"].get<uint64_t>());
  }
  ASSERT_EQ(peak_alloc.size(), size_t{kRanks});

  // Each rank's peak is what gpumem-train counted itself, and grows with the batch.
  for (int r = 0; r < kRanks; ++r) {
    const json tr = trainer_result(dir_ / ("train-" + std::to_string(r) + ".out"));
    ASSERT_TRUE(tr.is_object()) << "no result from rank " << r;
    EXPECT_EQ(tr["settings"]["batch"], batch_of(r));
    EXPECT_EQ(peak_alloc[r], tr["trainer_peak_allocated_bytes"].get<uint64_t>()) << "rank " << r;
    if (r > 0) {
      EXPECT_GT(peak_alloc[r], peak_alloc[r - 1]);
    }
  }

  // The cross-rank summary equals what the sections say.
  const json& ranks = j["ranks"];
  ASSERT_TRUE(ranks.is_object()) << j["ranks"].dump();
  EXPECT_EQ(ranks["processes"], kRanks);
  auto check_summary = [&](const json& s, const std::map<int, uint64_t>& peaks) {
    uint64_t max = 0, min = UINT64_MAX, sum = 0;
    int max_rank = -1, min_rank = -1;
    for (const auto& [r, p] : peaks) {
      sum += p;
      if (p > max) max = p, max_rank = r;
      if (p < min) min = p, min_rank = r;
    }
    const double mean = static_cast<double>(sum) / kRanks;
    EXPECT_EQ(s["max_bytes"].get<uint64_t>(), max);
    EXPECT_EQ(s["min_bytes"].get<uint64_t>(), min);
    EXPECT_EQ(s["max_rank"], max_rank);
    EXPECT_EQ(s["min_rank"], min_rank);
    EXPECT_EQ(rank_of_pid.at(s["max_pid"].get<int64_t>()), max_rank);
    EXPECT_EQ(rank_of_pid.at(s["min_pid"].get<int64_t>()), min_rank);
    EXPECT_DOUBLE_EQ(s["mean_bytes"].get<double>(), mean);
    EXPECT_DOUBLE_EQ(s["imbalance"].get<double>(), static_cast<double>(max) / mean - 1.0);
  };
  check_summary(ranks["peak_allocated"], peak_alloc);
  check_summary(ranks["peak_reserved"], peak_reserved);
  EXPECT_GT(ranks["peak_allocated"]["imbalance"].get<double>(), 0.0);
  EXPECT_EQ(ranks["peak_allocated"]["max_rank"], kRanks - 1);
  EXPECT_EQ(ranks["peak_allocated"]["min_rank"], 0);

  // The terminal summary: one section per process and the cross-rank line.
  for (int r = 0; r < kRanks; ++r)
    EXPECT_NE(report.out.find(" rank " + std::to_string(r) + " device 0 "), std::string::npos)
        << report.out;
  std::ostringstream line;
  line << "across " << kRanks << " processes, peak allocated: max ";
  EXPECT_NE(report.out.find(line.str()), std::string::npos) << report.out;
}

}  // namespace
