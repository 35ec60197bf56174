// The expandable pool and capacity spoofing: under a cap, cudaMemGetInfo reports total = the cap
// and free = the cap less what the stack took from the device, which for the expandable pool is
// its mapped granules. A 3 MiB block maps 2 granules (4 MiB): free is 60 MiB of 64, where the
// growth pool's 20 MiB segment for it leaves 44 MiB and no pool 61 MiB.
#include <gtest/gtest.h>

#include <string>

#include "shell.h"

namespace {

using gpumem::test::sh;

std::string meminfo_under(const std::string& pool) {
  const gpumem::test::Output o =
      sh("SIMCUDA_ALLOC_LATENCY_US=0 SIMCUDA_FREE_LATENCY_US=0 " GPUMEM_CLI
         " run --device sim --trace off --limit 64MiB --pool " +
         pool + " -- " MEMINFO_PROG);
  EXPECT_EQ(o.status, 0) << o.out;
  return o.out;
}

TEST(ExpandableCapacity, QueriesUnderACapCountTheMappedGranules) {
  EXPECT_EQ(meminfo_under("expandable"), "free 62914560 total 67108864\n");
  EXPECT_EQ(meminfo_under("growth"), "free 46137344 total 67108864\n");
  EXPECT_EQ(meminfo_under("none"), "free 63963136 total 67108864\n");
}

}  // namespace
