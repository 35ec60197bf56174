// Peer access under the expandable pool (peer_prog.cpp on two simulated devices): memory the pool
// maps is reachable from device 1 exactly when cudaMalloc memory is, before peer access (no),
// after cudaDeviceEnablePeerAccess or cuCtxEnablePeerAccess (yes: granules mapped before the
// call and after it) and after disabling (no), with CUDA's codes. The same program without
// gpumem and under the growth pool prints the same lines.
#include <gtest/gtest.h>

#include <string>

#include "shell.h"

namespace {

using gpumem::test::sh;

constexpr const char* kEnv =
    "SIMCUDA_DEVICES=2 SIMCUDA_ALLOC_LATENCY_US=0 SIMCUDA_FREE_LATENCY_US=0 ";

// The codes: 700 CUDA_ERROR_ILLEGAL_ADDRESS, 704 cudaErrorPeerAccessAlreadyEnabled, 705
// cudaErrorPeerAccessNotEnabled.
constexpr const char* kExpected =
    "before-enable 700\n"
    "own-device 0\n"
    "enable 0\n"
    "enable-again 704\n"
    "mapped-before 0\n"
    "other-way 700\n"
    "mapped-after 0\n"
    "disable 0\n"
    "disable-again 705\n"
    "after-disable 700\n"
    "after-disable-later-block 700\n"
    "driver-enable 0\n"
    "driver-mapped-before 0\n"
    "driver-disable 0\n"
    "driver-after-disable 700\n";

std::string run_under(const std::string& pool, const std::string& env = "") {
  const gpumem::test::Output o =
      sh(std::string(kEnv) + env + GPUMEM_CLI + " run --device sim --trace off --pool " + pool +
         " -- " PEER_PROG);
  EXPECT_EQ(o.status, 0) << o.out;
  return o.out;
}

TEST(ExpandablePeer, PooledBlocksAreReachableFromAPeerExactlyWhenCudaMallocMemoryIs) {
  const gpumem::test::Output plain =
      sh(std::string(kEnv) + "LD_LIBRARY_PATH=" GPUMEM_SIMCUDA_DIR " " PEER_PROG);
  ASSERT_EQ(plain.status, 0) << plain.out;
  EXPECT_EQ(plain.out, kExpected);
  EXPECT_EQ(run_under("growth"), kExpected);
  EXPECT_EQ(run_under("expandable"), kExpected);
}

// SIMCUDA_PEER=0, devices that cannot reach each other: enabling fails (runtime
// cudaErrorInvalidDevice 101, driver CUDA_ERROR_PEER_ACCESS_UNSUPPORTED 217), so nothing is
// granted, under the expandable pool as without gpumem. A bad value stops the program (status 2).
TEST(ExpandablePeer, DevicesThatCannotReachEachOtherGetNoAccess) {
  const std::string expected =
      "before-enable 700\n"
      "own-device 0\n"
      "enable 101\n"
      "enable-again 101\n"
      "mapped-before 700\n"
      "other-way 700\n"
      "mapped-after 700\n"
      "disable 705\n"
      "disable-again 705\n"
      "after-disable 700\n"
      "after-disable-later-block 700\n"
      "driver-enable 217\n"
      "driver-mapped-before 700\n"
      "driver-disable 705\n"
      "driver-after-disable 700\n";
  const gpumem::test::Output plain =
      sh(std::string(kEnv) + "SIMCUDA_PEER=0 LD_LIBRARY_PATH=" GPUMEM_SIMCUDA_DIR " " PEER_PROG);
  ASSERT_EQ(plain.status, 0) << plain.out;
  EXPECT_EQ(plain.out, expected);
  EXPECT_EQ(run_under("expandable", "SIMCUDA_PEER=0 "), expected);
  const gpumem::test::Output bad =
      sh(std::string(kEnv) + "SIMCUDA_PEER=yes LD_LIBRARY_PATH=" GPUMEM_SIMCUDA_DIR " " PEER_PROG);
  EXPECT_EQ(bad.status, 2);
  EXPECT_NE(bad.out.find("SIMCUDA_PEER='yes' is not valid; use 1"), std::string::npos) << bad.out;
}

}  // namespace
