// The RMM log reader on lines that are not what RMM writes: each refused with its line, its byte
// and what is wrong with it.
#include <gtest/gtest.h>

#include "gpumem/formats/convert.h"

namespace gpumem::formats {
namespace {

constexpr const char* kHeader = "Thread,Time,Action,Pointer,Size,Stream\n";

std::string error_of(const std::string& log) {
  TraceImage image;
  std::string error;
  EXPECT_FALSE(rmm_csv_to_trace(log, "x.csv", &image, &error));
  return error;
}

// A size above a GPU's address space (2^49) is damage: two of them overflowed the report's sums
// (peak 8192 PiB, leaked 100 B in 3 allocations). A failed request may ask for anything.
TEST(RmmCsv, AllocationsNoGpuCanAddressAreRefusedButAFailureMayAskAnything) {
  const std::string ok = "1,10:00:00.000001,allocate,0x10,562949953421312,0\n";
  EXPECT_EQ(error_of(kHeader + ok + "1,10:00:00.000002,allocate,0x20,9223372036854775808,0\n"),
            "line 3 (byte 89): Size 9223372036854775808 is more than a GPU can address "
            "(562949953421312); the line is damaged");
  EXPECT_EQ(error_of(kHeader + ok + "1,10:00:00.000002,allocate,0x20,-1,0\n"),
            "line 3 (byte 89): Size is not a number");
  EXPECT_EQ(error_of(kHeader + ok + "1,10:00:00.000002,allocate,0x20,18446744073709551616,0\n"),
            "line 3 (byte 89): Size is not a number");
  TraceImage image;
  std::string error;
  ASSERT_TRUE(rmm_csv_to_trace(
      kHeader + ok + "1,10:00:00.000002,allocate failure,0x0,9223372036854775808,0\n", "x.csv",
      &image, &error))
      << error;
  ASSERT_EQ(image.records().size(), 2u);
  EXPECT_EQ(image.records()[0].bytes, uint64_t{1} << 49);
  EXPECT_EQ(image.records()[1].op, static_cast<uint16_t>(trace::Op::alloc_failed));
  EXPECT_EQ(image.records()[1].bytes, uint64_t{1} << 63);
}

}  // namespace
}  // namespace gpumem::formats
