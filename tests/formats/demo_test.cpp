// The demo's own traces: gpumem-train run under `gpumem run --device sim` (unpooled, and under the
// growth pool with native stacks), exported and read back, report what the trace reports.
#include <gtest/gtest.h>

#include "support.h"

namespace gpumem::formats {
namespace {

using formats_test::analyze;
using formats_test::shell;
using formats_test::temp_file;

void expect_same(const analyzer::Report& want, const analyzer::Report& got, bool reserved) {
  ASSERT_EQ(got.devices.size(), 1u);
  ASSERT_EQ(want.devices.size(), 1u);
  const analyzer::DeviceReport& a = want.devices[0];
  const analyzer::DeviceReport& b = got.devices[0];
  EXPECT_EQ(b.peak.allocated_bytes, a.peak.allocated_bytes);
  if (reserved) {
    EXPECT_EQ(b.peak.reserved_bytes, a.peak.reserved_bytes);
    EXPECT_EQ(b.final.reserved_bytes, a.final.reserved_bytes);
  }
  EXPECT_EQ(b.final.leaked_allocations, a.final.leaked_allocations);
  EXPECT_EQ(b.final.leaked_bytes, a.final.leaked_bytes);
  EXPECT_EQ(b.counts.alloc, a.counts.alloc);
  EXPECT_EQ(b.counts.free, a.counts.free);
  ASSERT_EQ(b.peak.live_at_peak_by_size_class.size(), a.peak.live_at_peak_by_size_class.size());
  for (size_t k = 0; k < a.peak.live_at_peak_by_size_class.size(); ++k) {
    EXPECT_EQ(b.peak.live_at_peak_by_size_class[k].count,
              a.peak.live_at_peak_by_size_class[k].count);
    EXPECT_EQ(b.peak.live_at_peak_by_size_class[k].bytes,
              a.peak.live_at_peak_by_size_class[k].bytes);
  }
}

TEST(Demo, TrainerTracesThroughSnapshotAndCsv) {
  for (const char* pool : {"none", "growth"}) {
    SCOPED_TRACE(pool);
    const std::string trace = temp_file(std::string("demo-") + pool + ".trace");
    ::unlink(trace.c_str());
    int status = 0;
    const std::string out =
        shell(std::string(GPUMEM_CLI) + " run --device sim --stacks --pool " + pool + " --trace " +
                  trace + " -- " + GPUMEM_TRAIN + " --epochs 1 --samples 512 2>&1",
              &status);
    ASSERT_EQ(status, 0) << out;
    const analyzer::Report want = analyze(trace);
    ASSERT_GT(want.devices.at(0).counts.alloc, 10u);
    for (bool csv : {false, true}) {
      SCOPED_TRACE(csv ? "csv" : "snapshot");
      std::string bytes, error;
      ASSERT_TRUE(csv ? trace_to_rmm_csv(trace, -1, &bytes, &error)
                      : trace_to_snapshot(trace, &bytes, &error))
          << error;
      TraceImage image;
      ASSERT_TRUE(csv ? rmm_csv_to_trace(bytes, "demo", &image, &error)
                      : snapshot_to_trace(bytes, "demo", &image, &error))
          << error;
      // RMM's log has no segments: reserved matches only without a pool.
      expect_same(want, analyze(image, "demo-back"), !csv || std::string(pool) == "none");
    }
    ::unlink(trace.c_str());
  }
}

}  // namespace
}  // namespace gpumem::formats
