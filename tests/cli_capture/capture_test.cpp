// `gpumem run --capture`: cupti refuses caps, pools and the simulated device (exit 2, a message
// saying what to do), and on the real device hands libgpumem_cupti.so to the CUDA driver through
// CUDA_INJECTION64_PATH instead of preloading libgpumem.so. The child is `sh -c` printing its
// environment, so no GPU is needed (the driver would only matter once CUDA is initialised).
#include <gtest/gtest.h>

#include "shell.h"
#include <limits.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace {

using gpumem::test::Output;
using gpumem::test::sh;

const std::string kCli = GPUMEM_CLI;
// Prints the two variables the capture mode decides, one per line, between brackets.
const std::string kShowEnv =
    " -- sh -c 'echo \"[$CUDA_INJECTION64_PATH]\"; echo \"[$LD_PRELOAD]\"'";

std::string real_path(const std::string& p) {
  char buf[PATH_MAX];
  return ::realpath(p.c_str(), buf) != nullptr ? buf : "";
}

class Capture : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("CUDA_INJECTION64_PATH");
    ::unsetenv("LD_PRELOAD");
  }
};

const char kObserveOnly[] =
    "gpumem run: --capture cupti only observes; caps and pools need the preload capture (drop "
    "--capture cupti)\n";

TEST_F(Capture, CuptiRefusesLimit) {
  Output o = sh(kCli + " run --capture cupti --device real --trace off --limit 1GiB -- true");
  EXPECT_EQ(o.status, 2);
  EXPECT_EQ(o.out, kObserveOnly);
}

TEST_F(Capture, CuptiRefusesPool) {
  Output o = sh(kCli + " run --capture cupti --device real --trace off --pool growth -- true");
  EXPECT_EQ(o.status, 2);
  EXPECT_EQ(o.out, kObserveOnly);
}

TEST_F(Capture, CuptiRefusesSimulatedDevice) {
  // The command would print "ran" if it were started: it must not be.
  Output o = sh(kCli + " run --capture cupti --device sim --trace off -- echo ran");
  EXPECT_EQ(o.status, 2);
  EXPECT_EQ(o.out,
            "gpumem run: --capture cupti: simcuda does not load CUDA_INJECTION64_PATH; use a real "
            "GPU or --capture preload\n");
}

TEST_F(Capture, UnknownCaptureIsRejected) {
  Output o = sh(kCli + " run --capture ebpf --trace off -- echo ran");
  EXPECT_NE(o.status, 0);
  EXPECT_NE(o.out.find("--capture: ebpf not in {preload,cupti}"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("ran"), std::string::npos) << o.out;
}

TEST_F(Capture, CuptiSetsInjectionPathAndNoPreload) {
  Output o = sh(kCli + " run --capture cupti --device real --trace off" + kShowEnv);
  ASSERT_EQ(o.status, 0) << o.out;
  const size_t open = o.out.find('['), close = o.out.find(']');
  ASSERT_TRUE(open == 0 && close != std::string::npos) << o.out;
  const std::string injection = o.out.substr(1, close - 1);
  // The very library this build made (the CLI names it through bin/../lib).
  EXPECT_EQ(real_path(injection), real_path(GPUMEM_CUPTI_LIBRARY)) << o.out;
  EXPECT_EQ(o.out.substr(close + 1), "\n[]\n") << o.out;
}

TEST_F(Capture, CuptiKeepsTheCallersPreloadWithoutAddingLibgpumem) {
  ::setenv("LD_PRELOAD", "libm.so.6", 1);
  Output o = sh(kCli + " run --capture cupti --device real --trace off" + kShowEnv);
  ASSERT_EQ(o.status, 0) << o.out;
  EXPECT_NE(o.out.find("libgpumem_cupti.so]\n[libm.so.6]\n"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("libgpumem.so"), std::string::npos) << o.out;
}

TEST_F(Capture, PreloadIsTheDefault) {
  for (const std::string flag : {"", " --capture preload"}) {
    Output o = sh(kCli + " run --device real --trace off" + flag + kShowEnv);
    ASSERT_EQ(o.status, 0) << o.out;
    EXPECT_EQ(o.out.rfind("[]\n[", 0), 0u) << flag << ": " << o.out;
    EXPECT_NE(o.out.find("/libgpumem.so]\n"), std::string::npos) << flag << ": " << o.out;
    EXPECT_EQ(o.out.find("libgpumem_cupti"), std::string::npos) << flag << ": " << o.out;
  }
}

}  // namespace
