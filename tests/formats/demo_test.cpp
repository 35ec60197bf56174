// The demo's own traces: gpumem-train run under `gpumem run --device sim` (unpooled, and under the
// growth pool with native stacks), exported and read back, report what the trace reports.
#include <gtest/gtest.h>

#include "support.h"

namespace gpumem::formats {
namespace {

using formats_test::analyze;
using formats_test::expect_same;
using formats_test::shell;
using formats_test::temp_file;

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
