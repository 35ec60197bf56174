// OOM forensics end to end: gpumem-oom's scenarios (sample_workloads/scenarios/oom.cpp) under
// `gpumem run` on the simulated device. The numbers are what each scenario does, in bytes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gpumem/trace/format.h"
#include "gpumem/trace/reader.h"
#include "scratch.h"
#include "shell.h"

namespace {

using gpumem::test::Output;
using gpumem::test::ScratchDir;
using gpumem::test::sh;
namespace tr = gpumem::trace;

const std::string kCli = GPUMEM_CLI;
const std::string kOom = GPUMEM_OOM;
constexpr uint64_t kMiB = uint64_t{1} << 20;

// Runs `gpumem run --device sim OPTIONS -- gpumem-oom SCENARIO` with its trace in `dir`.
Output run(const ScratchDir& dir, const std::string& options, const std::string& scenario,
           const std::string& env = "") {
  return sh(env + " " + kCli + " run --device sim --trace " + (dir / "run.trace") + " " + options +
            " -- " + kOom + " " + scenario);
}

std::vector<tr::Record> records(const std::string& path) {
  std::vector<tr::Record> out;
  std::string error;
  auto reader = tr::Reader::open(path, &error);
  EXPECT_TRUE(reader) << error;
  if (!reader) return out;
  tr::Event ev;
  while (reader->next(&ev)) out.push_back(ev.rec);
  return out;
}

std::vector<tr::Record> of_op(const std::vector<tr::Record>& all, tr::Op op) {
  std::vector<tr::Record> out;
  for (const tr::Record& r : all)
    if (r.op == static_cast<uint16_t>(op)) out.push_back(r);
  return out;
}

// The oom record follows its alloc_failed record on the same thread, with its request and site.
void expect_pair(const std::vector<tr::Record>& all, const tr::Record& oom) {
  const tr::Record* failed = nullptr;
  for (const tr::Record& r : all) {
    if (&r == &oom || r.t_ns > oom.t_ns) break;
    if (r.op == static_cast<uint16_t>(tr::Op::alloc_failed) && r.tid == oom.tid) failed = &r;
  }
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(failed->bytes, oom.bytes);
  EXPECT_EQ(failed->site, oom.site);
  EXPECT_EQ(failed->result, oom.result);
  EXPECT_EQ(failed->device, oom.device);
}

TEST(Record, DeviceRefusesTooBig) {
  ScratchDir dir("gpumem-oom");
  Output o = run(dir, "", "too-big", "SIMCUDA_MEMORY=256MiB");
  ASSERT_EQ(o.status, 3) << o.out;
  const auto all = records(dir / "run.trace");
  const auto ooms = of_op(all, tr::Op::oom);
  ASSERT_EQ(ooms.size(), 1u);
  const tr::Record& r = ooms[0];
  EXPECT_EQ(r.bytes, 512 * kMiB);
  EXPECT_EQ(r.address, 64 * kMiB);  // allocated
  EXPECT_EQ(r.stream, 64 * kMiB);   // reserved: no pool
  EXPECT_EQ(r.aux, 0u);             // no pool, no free block
  EXPECT_EQ(r.result, 2);           // cudaErrorMemoryAllocation
  EXPECT_EQ(r.flags & tr::kFlagOomByGpumem, 0);
  expect_pair(all, r);
}

TEST(Record, GrowthPoolFragmentation) {
  ScratchDir dir("gpumem-oom");
  Output o = run(dir, "--pool growth --limit 40MiB", "fragmentation");
  ASSERT_EQ(o.status, 3) << o.out;
  const auto all = records(dir / "run.trace");
  const auto ooms = of_op(all, tr::Op::oom);
  ASSERT_EQ(ooms.size(), 1u);
  const tr::Record& r = ooms[0];
  EXPECT_EQ(r.bytes, 8 * kMiB);
  EXPECT_EQ(r.address, 20 * kMiB);  // five 4 MiB blocks live
  EXPECT_EQ(r.stream, 40 * kMiB);   // two 20 MiB segments
  EXPECT_EQ(r.aux, 4 * kMiB);       // the holes are 4 MiB each
  EXPECT_NE(r.flags & tr::kFlagOomByGpumem, 0);
  EXPECT_NE(r.flags & tr::kFlagPooled, 0);
  expect_pair(all, r);
}

TEST(Record, RetryAfterEmptyingTheCache) {
  ScratchDir dir("gpumem-oom");
  Output o = run(dir, "--limit 48MiB", "retry");
  ASSERT_EQ(o.status, 0) << o.out;
  const auto all = records(dir / "run.trace");
  const auto ooms = of_op(all, tr::Op::oom);
  ASSERT_EQ(ooms.size(), 1u);
  EXPECT_EQ(ooms[0].bytes, 16 * kMiB);
  EXPECT_EQ(ooms[0].address, 40 * kMiB);
  EXPECT_EQ(ooms[0].stream, 40 * kMiB);
  EXPECT_NE(ooms[0].flags & tr::kFlagOomByGpumem, 0);
  expect_pair(all, ooms[0]);
}

TEST(Record, NoneWithoutAFailure) {
  ScratchDir dir("gpumem-oom");
  Output o = run(dir, "--limit 64MiB", "retry");
  ASSERT_EQ(o.status, 0) << o.out;
  EXPECT_TRUE(of_op(records(dir / "run.trace"), tr::Op::oom).empty());
}

}  // namespace
