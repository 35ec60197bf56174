// The expandable pool through the preload under threads on streams (stress_prog.cpp): 4 threads,
// each on a stream of its own, allocating 512 B to 3 MiB, checking their tags and freeing by
// cudaFree and cudaFreeAsync. Afterwards gpumem_empty_cache(0) gives every granule back: the
// driver's free memory is what it was before the first allocation, and the trace's granules
// (one 2 MiB segment each) are all released, the last of them by that call.
#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "scratch.h"
#include "shell.h"

namespace {

using gpumem::test::ScratchDir;
using gpumem::test::sh;
using nlohmann::json;

constexpr uint64_t kGranule = 2ull << 20;

TEST(ExpandableStress, ThreadsOnStreamsThenEmptyCacheGiveEveryPageBack) {
  ScratchDir dir("gpumem-expandable-stress");
  const std::string trace = dir / "s.trace";
  const gpumem::test::Output run =
      sh("SIMCUDA_ALLOC_LATENCY_US=0 SIMCUDA_FREE_LATENCY_US=0 " GPUMEM_CLI
         " run --device sim --pool expandable --trace " +
         trace + " -- " STRESS_PROG " 4 3000");
  ASSERT_EQ(run.status, 0) << run.out;
  uint64_t pairs = 0, released = 0;
  int free_equal = -1;
  std::string stats;
  {
    std::istringstream in(run.out);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("pairs ", 0) == 0) pairs = std::stoull(line.substr(6));
      if (line.rfind("device_free_equal ", 0) == 0) free_equal = std::stoi(line.substr(18));
      if (line.rfind("released ", 0) == 0) released = std::stoull(line.substr(9));
      if (line.rfind("stats ", 0) == 0) stats = line;
    }
  }
  ASSERT_GT(pairs, 1000u) << run.out;
  EXPECT_EQ(free_equal, 1) << run.out;  // the driver holds nothing of the pool's any more
  EXPECT_EQ(stats, "stats allocs " + std::to_string(pairs) + " frees " + std::to_string(pairs) +
                       " failed 0 allocated 0 reserved 0")
      << run.out;

  // The trace: every granule mapped is released; what was mapped when gpumem_empty_cache ran is
  // what it says it released; nothing else is recorded as odd.
  const gpumem::test::Output dump = sh(GPUMEM_CLI " dump " + trace + " 2>/dev/null");
  ASSERT_EQ(dump.status, 0) << dump.out.substr(0, 500);
  uint64_t reserves = 0, releases = 0, allocs = 0, frees = 0, anomalies = 0, trims = 0;
  uint64_t mapped = 0, mapped_at_trim = 0, odd_sizes = 0;
  std::istringstream in(dump.out);
  for (std::string line; std::getline(in, line);) {
    const json r = json::parse(line, nullptr, false);
    if (!r.is_object() || !r.contains("op")) continue;
    const std::string op = r["op"];
    if (op == "segment_reserve" || op == "segment_release") {
      const uint64_t bytes = r["bytes"];
      odd_sizes += bytes != kGranule;
      if (op == "segment_reserve") {
        ++reserves;
        mapped += bytes;
      } else {
        ++releases;
        mapped -= bytes;
      }
    } else if (op == "alloc") {
      ++allocs;
    } else if (op == "free") {
      ++frees;
    } else if (op == "anomaly") {
      ++anomalies;
    } else if (op == "trim" && r["api"] == "gpumem") {
      ++trims;
      mapped_at_trim = r["bytes"];
      EXPECT_EQ(mapped, 0u);  // written after the granules it released
    }
  }
  EXPECT_GT(reserves, 0u);
  EXPECT_EQ(reserves, releases);
  EXPECT_EQ(mapped, 0u);
  EXPECT_EQ(odd_sizes, 0u);
  EXPECT_EQ(allocs, pairs);
  EXPECT_EQ(frees, pairs);
  EXPECT_EQ(anomalies, 0u);
  EXPECT_EQ(trims, 1u);
  EXPECT_EQ(mapped_at_trim, released);
  EXPECT_GT(released, 0u);
  EXPECT_EQ(released % kGranule, 0u);
}

}  // namespace
