// Replay's simulated device charges by simcuda's own rule (gpumem/simcuda/accounting.h): the
// size asked decides small or large, before any rounding, as in simcuda's cudaMalloc.
#include <gtest/gtest.h>

#include "gpumem/replay/replay.h"
#include "trace_file.h"
#include "units.h"

namespace gpumem::replay {
namespace {

using replay_test::TraceFile;

// Two allocations of 1 MiB - 256 B: under 1 MiB, so both are small (512 B rounding) and share one
// 2 MiB small page. Rounded to 1 MiB first, each would take a whole 2 MiB page of its own.
TEST(DeviceCharge, JustUnderOneMiBIsSmallAsInSimcuda) {
  TraceFile t(2 * kMiB);
  t.alloc(0x1000, kMiB - 256);
  t.alloc(0x2000, kMiB - 256);
  auto p = replay_test::load(t, "charge");
  ASSERT_NE(p, nullptr);
  ReplayOptions o;
  o.policy = Policy::none;
  const DeviceRun r = replay_device(*p, p->devices.at(0), o);
  EXPECT_TRUE(r.fits);
  EXPECT_EQ(r.device_peak_bytes, 2 * kMiB);
  EXPECT_EQ(r.peak_allocated_bytes, 2 * (kMiB - 256));
}

}  // namespace
}  // namespace gpumem::replay
