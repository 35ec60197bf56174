// Stream-ordered allocations are recorded on, charged to and freed from the device whose memory
// they take: the stream's (cudaMallocAsync, cuMemAllocAsync) or the pool's
// (cudaMallocFromPoolAsync, cuMemAllocFromPoolAsync), not the current device. Each runs
// tests/reliability/stream_device.cpp on two simulated devices with a cap on device 1 only.
#include <cstdint>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "process.h"
#include "support.h"

namespace reliability {
namespace {

using gpumem::trace::Op;
using StreamDevice = ScratchTest;

constexpr uint64_t kAsked = uint64_t{48} << 20;
constexpr long long kRefused = 2;  // cudaErrorMemoryAllocation, CUDA_ERROR_OUT_OF_MEMORY

std::map<std::string, long long> printed_codes(const std::string& out) {
  std::map<std::string, long long> kv;
  std::istringstream in(out);
  std::string key;
  long long value = 0;
  while (in >> key >> value) kv[key] = value;
  return kv;
}

// The device of each allocation the trace holds, in order; {-2} when it cannot be read.
std::vector<int> allocation_devices(const std::string& trace) {
  const LoadedTrace t = load_trace(trace);
  EXPECT_TRUE(t.opened) << t.error;
  if (!t.opened) return {-2};
  std::vector<int> devices;
  for (const auto& r : t.records)
    if (static_cast<Op>(r.op) == Op::alloc) devices.push_back(r.device);
  return devices;
}

// The stream_device program in `mode` on two simulated devices, tracing to `trace`.
Outcome run_on_two_devices(const std::string& mode, const std::string& trace,
                           const std::string& dir, const std::string& extra = {}) {
  std::vector<std::string> env = {"GPUMEM_TRACE=" + trace, "SIMCUDA_DEVICES=2",
                                  "SIMCUDA_ALLOC_LATENCY_US=0", "SIMCUDA_FREE_LATENCY_US=0"};
  if (!extra.empty()) env.push_back(extra);
  return run({RELIABILITY_STREAM_DEVICE, mode}, child_environment(true, env), dir);
}

// Device 1's cap (64 MiB) holds one 48 MiB allocation; device 0 has none. Device 0 is current
// throughout, so a hook that charges the current device lets the second 48 MiB through.
void expect_charged_to_device_1(const std::string& mode, const std::string& dir) {
  const std::string trace = dir + "/" + mode + ".trace";
  const Outcome o = run_on_two_devices(mode, trace, dir, "GPUMEM_LIMIT_1=64MiB");
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  auto kv = printed_codes(o.out);
  EXPECT_EQ(kv["first"], 0);
  EXPECT_EQ(kv["over"], kRefused) << "the second 48 MiB passes device 1's 64 MiB cap";
  EXPECT_EQ(kv["on_device_0"], 0);
  EXPECT_EQ(kv["free_first"], 0);
  EXPECT_EQ(kv["again"], 0) << "the free gave device 1's cap its 48 MiB back";

  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  std::map<int, int> allocs, frees, failed;  // by device
  for (const auto& r : t.records) {
    const auto op = static_cast<Op>(r.op);
    if (op == Op::alloc) ++allocs[r.device];
    if (op == Op::alloc_failed) ++failed[r.device];
    if (op == Op::free) ++frees[r.device];
  }
  EXPECT_EQ(allocs, (std::map<int, int>{{0, 1}, {1, 2}}));
  EXPECT_EQ(failed, (std::map<int, int>{{1, 1}}));
  EXPECT_EQ(frees, (std::map<int, int>{{0, 1}, {1, 2}}));
  for (const auto& r : t.records) {
    if (static_cast<Op>(r.op) != Op::alloc) continue;
    EXPECT_EQ(r.bytes, kAsked);
  }
}

TEST_F(StreamDevice, RuntimeAsyncAllocationIsChargedToTheStreamsDevice) {
  expect_charged_to_device_1("runtime", dir_);
}

TEST_F(StreamDevice, DriverAsyncAllocationIsChargedToTheStreamsDevice) {
  expect_charged_to_device_1("driver", dir_);
}

TEST_F(StreamDevice, PoolAllocationIsChargedToThePoolsDevice) {
  expect_charged_to_device_1("pool", dir_);
}

// The pool's device is kept per thread between allocations (hook_family.h, pool_device), and
// asked again after each change of the pool's access: device 1's pool is device 1's while only
// device 1 has read-write access, the stream's (device 0's) once device 0 has it too, device 1's
// again once it is taken back; through the runtime's and the driver's set-access calls.
TEST_F(StreamDevice, PoolsDeviceFollowsItsAccessChanges) {
  const std::string trace = dir_ + "/access.trace";
  const Outcome o = run_on_two_devices("pool-access", trace, dir_);
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  auto kv = printed_codes(o.out);
  for (const char* family : {"runtime", "driver"}) {
    SCOPED_TRACE(family);
    for (int step = 0; step < 3; ++step)
      EXPECT_EQ(kv[std::string(family) + "_alloc_" + std::to_string(step)], 0);
    EXPECT_EQ(kv[std::string(family) + "_set_1"], 0);
    EXPECT_EQ(kv[std::string(family) + "_set_2"], 0);
  }
  EXPECT_EQ(allocation_devices(trace), (std::vector<int>{1, 0, 1, 1, 0, 1}));
}

// A pool destroyed and another made on another device at the same handle: the device kept for
// the handle is dropped at the destroy, so the new pool's allocation names its own device.
TEST_F(StreamDevice, APoolMadeAgainAtTheSameHandleNamesItsOwnDevice) {
  const std::string trace = dir_ + "/recreate.trace";
  const Outcome o = run_on_two_devices("pool-recreate", trace, dir_);
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  auto kv = printed_codes(o.out);
  for (const char* family : {"runtime", "driver"}) {
    SCOPED_TRACE(family);
    for (const char* step : {"create", "alloc", "destroy"})
      for (int i = 0; i < 2; ++i)
        EXPECT_EQ(kv[std::string(family) + "_" + step + "_" + std::to_string(i)], 0) << step << i;
    EXPECT_EQ(kv[std::string(family) + "_same_handle"], 1) << "the test needs the handle reused";
  }
  EXPECT_EQ(allocation_devices(trace), (std::vector<int>{1, 0, 1, 0}));
}

// A stream-ordered free of a pointer nobody allocated names the stream's device, as its
// allocation would have, not the current one.
TEST_F(StreamDevice, UnknownStreamOrderedFreeNamesTheStreamsDevice) {
  const std::string trace = dir_ + "/unknown.trace";
  const Outcome o = run_on_two_devices("unknown-free", trace, dir_);
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  auto kv = printed_codes(o.out);
  EXPECT_NE(kv["runtime"], 0) << "simcuda refuses a pointer it never gave";
  EXPECT_NE(kv["driver"], 0);
  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  std::map<int, int> unknown;  // by device
  for (const auto& r : t.records)
    if (static_cast<Op>(r.op) == Op::anomaly &&
        r.aux == static_cast<uint64_t>(gpumem::trace::AnomalyKind::free_unknown))
      ++unknown[r.device];
  EXPECT_EQ(unknown, (std::map<int, int>{{1, 2}}));
}

}  // namespace
}  // namespace reliability
