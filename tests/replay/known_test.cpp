// Replay on hand-built traces whose answers are worked out by hand (docs/replay-fit.md).
#include <gtest/gtest.h>
#include <unistd.h>

#include "gpumem/replay/replay.h"
#include "trace_file.h"
#include "units.h"

namespace gpumem::replay {
namespace {

using replay_test::load;
using replay_test::TraceFile;

DeviceRun run(const Program& p, Policy policy, uint64_t limit, uint64_t capacity = 0) {
  ReplayOptions o;
  o.policy = policy;
  o.limit = limit;
  o.capacity = capacity;
  return replay_device(p, p.devices.at(0), o);
}

// A 3 MiB, B 5 MiB, free A, C 4 MiB (peak allocated 9 MiB = B + C), free B, free C.
TraceFile three_buffers() {
  TraceFile t(64 * kMiB);
  t.alloc(0x1000, 3 * kMiB);
  t.alloc(0x2000, 5 * kMiB);
  t.free(0x1000, 3 * kMiB);
  t.string(7, "train/step");
  t.begin(7);
  t.alloc(0x1000, 4 * kMiB);
  t.end(7);
  t.free(0x2000, 5 * kMiB);
  t.free(0x1000, 4 * kMiB);
  return t;
}

TEST(Known, NoneFitsAndPeaks) {
  TraceFile t = three_buffers();
  auto p = load(t, "none-fits");
  ASSERT_EQ(p->devices.size(), 1u);
  EXPECT_EQ(p->devices[0].steps.size(), 6u);
  DeviceRun r = run(*p, Policy::none, 9 * kMiB);
  EXPECT_TRUE(r.fits);
  EXPECT_FALSE(r.failure.has_value());
  EXPECT_EQ(r.peak_allocated_bytes, 9 * kMiB);
  EXPECT_EQ(r.peak_reserved_bytes, 9 * kMiB);
  // simcuda charges 2 MiB pages: 3 -> 4, 5 -> 6, 4 -> 4: at most 6 + 4 = 4 + 6 = 10 MiB.
  EXPECT_EQ(r.device_peak_bytes, 10 * kMiB);
  EXPECT_EQ(r.fragmentation_max, 0.0);
}

TEST(Known, NoneFirstFailureHasPhaseBytesAndInUse) {
  TraceFile t = three_buffers();
  auto p = load(t, "none-fails");
  DeviceRun r = run(*p, Policy::none, 9 * kMiB - 1);
  ASSERT_FALSE(r.fits);
  ASSERT_TRUE(r.failure.has_value());
  EXPECT_EQ(r.failure->bytes, 4 * kMiB);
  EXPECT_EQ(r.failure->phase, "train/step");
  EXPECT_EQ(r.failure->in_use_bytes, 5 * kMiB);
  EXPECT_EQ(r.failure->allocated_bytes, 5 * kMiB);
  EXPECT_EQ(r.failure->refused_by, "limit");
  EXPECT_EQ(r.failure->api, "cudaMalloc");
  // Records: 0 alloc, 1 alloc, 2 free, 3 string (+1 continuation slot not counted), 4 begin, 5
  // alloc.
  EXPECT_EQ(r.failure->record, 5u);
  EXPECT_EQ(r.failure->t_ns, 7000);  // its slot is the 7th written (the string took two)
}

TEST(Known, DeviceAccountingLikeSimcuda) {
  TraceFile t = three_buffers();
  auto p = load(t, "device-pages");
  // A 9 MiB device: the limit (requested bytes) would allow 9 MiB, but in 2 MiB pages A and B
  // alone take 4 + 6 = 10 MiB.
  DeviceRun r = run(*p, Policy::none, 0, 9 * kMiB);
  ASSERT_FALSE(r.fits);
  EXPECT_EQ(r.failure->refused_by, "device");
  EXPECT_EQ(r.failure->bytes, 5 * kMiB);
  DeviceRun ok = run(*p, Policy::none, 0, 10 * kMiB);
  EXPECT_TRUE(ok.fits);
  // Small allocations share 2 MiB pages: 4096 x 512 B fill exactly one page, one more opens a
  // second.
  TraceFile s(2 * kMiB);
  for (uint64_t i = 0; i < 4096; ++i) s.alloc(0x100000 + i * 512, 500);
  auto ps = load(s, "small-pages");
  EXPECT_TRUE(run(*ps, Policy::none, 0).fits);
  s.alloc(0x900000, 1);
  auto ps2 = load(s, "small-pages-2");
  DeviceRun r2 = run(*ps2, Policy::none, 0);
  ASSERT_FALSE(r2.fits);
  EXPECT_EQ(r2.failure->refused_by, "device");
  EXPECT_EQ(r2.failure->bytes, 1u);
}

TEST(Known, SmallestLimitPerPolicy) {
  TraceFile t = three_buffers();
  auto p = load(t, "smallest");
  LimitSearch none = smallest_limit(*p, p->devices[0], Policy::none);
  ASSERT_TRUE(none.smallest_bytes.has_value());
  EXPECT_EQ(*none.smallest_bytes, 9 * kMiB);  // exact to the byte
  // Growth: 3, 5 and 4 MiB are "large" requests served from 20 MiB segments: one segment holds
  // A and B, then C fits in the freed room. A limit below 20 MiB refuses the first segment.
  LimitSearch growth = smallest_limit(*p, p->devices[0], Policy::growth);
  EXPECT_EQ(growth.granularity, 2 * kMiB);
  EXPECT_EQ(*growth.smallest_bytes, 20 * kMiB);
  EXPECT_FALSE(growth.non_monotonic);
  // Fixed: one pool; A at 0, B at 3 MiB, the rest free after B. A's 3 MiB hole (once freed and
  // synchronized) is too small for C, so C must fit after B: 3 + 5 + 4 = 12 MiB.
  LimitSearch fixed = smallest_limit(*p, p->devices[0], Policy::fixed);
  EXPECT_EQ(fixed.granularity, 512u);
  EXPECT_EQ(*fixed.smallest_bytes, 12 * kMiB);
  EXPECT_TRUE(run(*p, Policy::fixed, 12 * kMiB).fits);
  EXPECT_FALSE(run(*p, Policy::fixed, 12 * kMiB - 512).fits);
  EXPECT_TRUE(run(*p, Policy::growth, 20 * kMiB).fits);
  EXPECT_FALSE(run(*p, Policy::growth, 20 * kMiB - 1).fits);
}

TEST(Known, GrowthPeaksAndFragmentation) {
  TraceFile t = three_buffers();
  auto p = load(t, "growth");
  DeviceRun r = run(*p, Policy::growth, 0);
  EXPECT_TRUE(r.fits);
  EXPECT_EQ(r.peak_allocated_bytes, 9 * kMiB);
  EXPECT_EQ(r.peak_reserved_bytes, 20 * kMiB);
  EXPECT_EQ(r.device_peak_bytes, 20 * kMiB);
  // At the 9 MiB peak the 20 MiB segment holds A's freed 3 MiB (pending), B (5), C (4) and an
  // 8 MiB tail: free = 11 MiB in two blocks, the largest 8 MiB: 1 - 8/11.
  EXPECT_NEAR(r.fragmentation_at_peak, 1.0 - 8.0 / 11.0, 1e-12);
  EXPECT_EQ(r.reserved_unallocated_at_peak_bytes, 11 * kMiB);
  ASSERT_TRUE(r.utilization.has_value());
  EXPECT_DOUBLE_EQ(*r.utilization, 9.0 / 20.0);
}

TEST(Known, RecordedFailureIsTriedAndFreed) {
  TraceFile t(64 * kMiB, "none", 8 * kMiB);
  t.alloc(0x1000, 5 * kMiB);
  t.failed(4 * kMiB, 5 * kMiB);
  t.free(0x1000, 5 * kMiB);
  auto p = load(t, "recorded-failure");
  EXPECT_EQ(p->devices[0].recorded_failures, 1u);
  EXPECT_EQ(p->devices[0].recorded_limit_bytes, 8 * kMiB);
  DeviceRun at_recorded = run(*p, Policy::none, 8 * kMiB);
  ASSERT_FALSE(at_recorded.fits);
  EXPECT_TRUE(at_recorded.failure->recorded_failed);
  DeviceRun bigger = run(*p, Policy::none, 9 * kMiB);
  EXPECT_TRUE(bigger.fits);
  EXPECT_EQ(bigger.peak_allocated_bytes, 9 * kMiB);
  EXPECT_EQ(*smallest_limit(*p, p->devices[0], Policy::none).smallest_bytes, 9 * kMiB);
}

// A call CUDA refused for another reason than memory (an invalid argument, an unknown stream)
// could never have been served: replay does not try it. Out-of-memory (2 in both APIs) is.
TEST(Known, OnlyOutOfMemoryFailuresAreTried) {
  TraceFile t(64 * kMiB, "none");
  t.alloc(0x1000, 6 * kMiB);
  t.add(trace::Op::alloc_failed, 0, 4 * kMiB, 0, trace::Api::cudaMallocManaged).result = 1;
  t.add(trace::Op::alloc_failed, 0, ~uint64_t{0}, 0, trace::Api::cuArray3DCreate).result = 1;
  t.free(0x1000, 6 * kMiB);
  t.add(trace::Op::alloc_failed, 0, 7 * kMiB).result = 2;  // cudaErrorMemoryAllocation
  auto p = load(t, "non-oom-failures");
  EXPECT_EQ(p->devices[0].recorded_failures, 1u);
  EXPECT_EQ(p->devices[0].steps.size(), 3u);
  DeviceRun r = run(*p, Policy::none, 7 * kMiB);
  EXPECT_TRUE(r.fits) << (r.failure ? std::to_string(r.failure->bytes) : "");
  EXPECT_EQ(r.peak_allocated_bytes, 7 * kMiB);
  EXPECT_EQ(*smallest_limit(*p, p->devices[0], Policy::none).smallest_bytes, 7 * kMiB);
}

TEST(Known, PinnedSkippedManagedUnpooledUnknownFreeCounted) {
  TraceFile t(64 * kMiB);
  t.alloc(0x1000, 6 * kMiB, 0, static_cast<uint16_t>(trace::MemKind::pinned_host));
  // Another process's memory, imported: not charged to this one's cap by the preload, so not
  // replayed (its free is not an unknown one either).
  t.alloc(0x5000, 40 * kMiB, 0, static_cast<uint16_t>(trace::MemKind::imported));
  t.alloc(0x2000, 3 * kMiB, 0, static_cast<uint16_t>(trace::MemKind::managed));
  t.alloc(0x3000, 1 * kMiB);
  t.free(0xdead, 0);
  t.free(0x2000, 3 * kMiB, 0, static_cast<uint16_t>(trace::MemKind::managed));
  t.free(0x5000, 40 * kMiB, 0, static_cast<uint16_t>(trace::MemKind::imported));
  auto p = load(t, "kinds");
  const DeviceProgram& d = p->devices[0];
  EXPECT_EQ(d.skipped_pinned, 1u);
  EXPECT_EQ(d.skipped_imported, 1u);
  EXPECT_EQ(d.unpooled_allocs, 1u);
  EXPECT_EQ(d.unknown_frees, 1u);
  DeviceRun r = run(*p, Policy::growth, 0);
  EXPECT_TRUE(r.fits);
  EXPECT_EQ(r.peak_allocated_bytes, 4 * kMiB);
  // Managed 3 MiB straight to the limit; 1 MiB is a "small" request: one 2 MiB segment.
  EXPECT_EQ(r.peak_reserved_bytes, 5 * kMiB);
}

TEST(Known, DevicesAreReplayedSeparately) {
  TraceFile t(16 * kMiB, "none", 0, 2);
  t.alloc(0x1000, 10 * kMiB, 0);
  t.alloc(0x2000, 12 * kMiB, 1);
  t.free(0x1000, 10 * kMiB, 0);
  auto p = load(t, "two-devices");
  ASSERT_EQ(p->devices.size(), 2u);
  EXPECT_EQ(p->devices[1].device, 1);
  EXPECT_EQ(*smallest_limit(*p, p->devices[0], Policy::none).smallest_bytes, 10 * kMiB);
  EXPECT_EQ(*smallest_limit(*p, p->devices[1], Policy::none).smallest_bytes, 12 * kMiB);
}

// Device 1's program under the expandable pool: its granules are mapped for device 1 (the
// simulated VMM must know that device), exactly as device 0's would be.
TEST(Known, ExpandablePoolReplaysEveryDevice) {
  TraceFile t(64 * kMiB, "expandable", 0, 2);
  t.alloc(0x1000, 3 * kMiB, 1);
  t.alloc(0x2000, 1 * kMiB, 1);
  t.free(0x1000, 3 * kMiB, 1);
  t.free(0x2000, 1 * kMiB, 1);
  auto p = load(t, "expandable-device-1");
  ASSERT_EQ(p->devices.size(), 2u);
  ASSERT_EQ(p->devices[1].device, 1);
  ReplayOptions o;
  o.policy = Policy::expandable;
  DeviceRun r = replay_device(*p, p->devices[1], o);
  EXPECT_TRUE(r.fits) << (r.failure ? r.failure->refused_by : "");
  EXPECT_EQ(r.steps_replayed, 4u);
  EXPECT_EQ(r.peak_allocated_bytes, 4 * kMiB);
  // 3 MiB + 1 MiB from offset 0: two 2 MiB granules.
  EXPECT_EQ(r.peak_reserved_bytes, 4 * kMiB);
  EXPECT_EQ(*smallest_limit(*p, p->devices[1], Policy::expandable).smallest_bytes, 4 * kMiB);
}

// A failed free cancels its own free even when another free came between (the two addresses
// share a slot of a table indexed by address hash, which once let B's free push A's out).
TEST(Known, AFailedFreeIsUndoneAfterAnotherFree) {
  constexpr uint64_t kA = 0x7f0000000000, kB = 0x7f00000b5200;
  TraceFile t(64 * kMiB);
  t.alloc(kA, 4 * kMiB);
  t.alloc(kB, 1 * kMiB);
  t.free(kA, 4 * kMiB);
  t.free(kB, 1 * kMiB);
  t.add(trace::Op::free_failed, kA, 4 * kMiB);  // A's free failed: A is still held
  t.alloc(0x1000, 6 * kMiB);
  t.free(kA, 4 * kMiB);
  t.free(0x1000, 6 * kMiB);
  auto p = load(t, "free-failed-after-another-free");
  EXPECT_EQ(p->devices[0].unknown_frees, 0u);
  EXPECT_EQ(p->devices[0].steps.size(), 6u);  // the cancelled free is dropped
  DeviceRun r = run(*p, Policy::none, 0);
  EXPECT_TRUE(r.fits);
  EXPECT_EQ(r.peak_allocated_bytes, 10 * kMiB);  // A and the 6 MiB together
}

TEST(Known, DoesNotFitEvenAtCapacity) {
  TraceFile t(8 * kMiB);
  t.alloc(0x1000, 9 * kMiB);
  auto p = load(t, "too-big");
  LimitSearch s = smallest_limit(*p, p->devices[0], Policy::growth);
  EXPECT_FALSE(s.fits_at_capacity);
  EXPECT_FALSE(s.smallest_bytes.has_value());
}

TEST(Known, BadFileIsAnErrorNotACrash) {
  const std::string path = replay_test::temp_path("garbage");
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fputs("not a trace", f);
  std::fclose(f);
  std::string error;
  EXPECT_EQ(load_program(path, &error), nullptr);
  EXPECT_FALSE(error.empty());
  ::unlink(path.c_str());
  EXPECT_EQ(load_program("/nonexistent/x.trace", &error), nullptr);
}

}  // namespace
}  // namespace gpumem::replay
