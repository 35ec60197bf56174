// What the preload counts must be true (issue 29 items 4, 5, 7, 11): a failed free is accounted
// by its real result, the limit in force is written into the trace and used by replay, double
// frees are counted as such, and an overflowing cudaMalloc3D extent or driver pitch is never
// recorded as a few bytes. Each runs tests/reliability/accounting.cpp under the preload on simcuda.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <sstream>

#include "process.h"
#include "support.h"

namespace reliability {
namespace {

using gpumem::trace::Api;
using gpumem::trace::Op;
using Accounting = ScratchTest;
using nlohmann::json;

constexpr uint64_t kMiB = uint64_t{1} << 20;

std::map<std::string, long long> key_values(const std::string& out) {
  std::map<std::string, long long> kv;
  std::istringstream in(out);
  std::string key;
  unsigned long long value = 0;
  while (in >> key >> value) kv[key] = static_cast<long long>(value);
  return kv;
}

// `gpumem report TRACE --json -`, parsed.
json report_of(const std::string& trace, const std::string& scratch) {
  const Outcome o =
      run({GPUMEM_CLI, "report", trace, "--json", "-"}, child_environment(false, {}), scratch);
  EXPECT_EQ(o.status, 0) << o.err;
  json j = json::parse(o.out, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << o.out;
  return j;
}

std::vector<gpumem::trace::Record> records_of(const LoadedTrace& t, Op op) {
  std::vector<gpumem::trace::Record> out;
  for (const auto& r : t.records)
    if (static_cast<Op>(r.op) == op) out.push_back(r);
  return out;
}

// Item 4: under a cap without a pool, cudaFreeHost of a device pointer fails; the allocation stays
// live (the trace cancels the free), the following cudaFree is a normal free and gives the bytes
// back to the cap, so a 48 MiB allocation then fits in 64 MiB.
TEST_F(Accounting, FailedWrongApiFreeKeepsTheAllocationLive) {
  const std::string trace = dir_ + "/failed-free.trace";
  const Outcome o =
      run({RELIABILITY_ACCOUNTING, "failed_free"},
          child_environment(true, {"GPUMEM_TRACE=" + trace, "GPUMEM_LIMIT=64MiB"}), dir_);
  auto kv = key_values(o.out);
  ASSERT_EQ(o.status, 0) << "codes: " << o.out << o.err;
  const long long free_host_code = kv["free_host"];
  EXPECT_NE(free_host_code, 0);
  EXPECT_EQ(kv["free"], 0);
  EXPECT_EQ(kv["alloc48"], 0) << "the cap must have got the 32 MiB back";
  const uint64_t address = static_cast<uint64_t>(kv["address"]);

  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  const auto allocs = records_of(t, Op::alloc);
  const auto frees = records_of(t, Op::free);
  const auto failed = records_of(t, Op::free_failed);
  ASSERT_EQ(allocs.size(), 2u);
  ASSERT_EQ(frees.size(), 3u) << "cudaFreeHost's attempt, cudaFree, the 48 MiB free";
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(records_of(t, Op::anomaly).size(), 0u) << "no unknown free";
  EXPECT_EQ(frees[0].api, static_cast<uint16_t>(Api::cudaFreeHost));
  EXPECT_EQ(failed[0].api, static_cast<uint16_t>(Api::cudaFreeHost));
  EXPECT_EQ(failed[0].address, address);
  EXPECT_EQ(failed[0].bytes, 32 * kMiB);
  EXPECT_EQ(failed[0].result, free_host_code);
  EXPECT_EQ(failed[0].aux, frees[0].t_ns) << "aux names the free it cancels";
  EXPECT_EQ(frees[1].api, static_cast<uint16_t>(Api::cudaFree));
  EXPECT_EQ(frees[1].address, address);
  EXPECT_EQ(frees[1].bytes, 32 * kMiB);

  const json r = report_of(trace, dir_);
  ASSERT_EQ(r["devices"].size(), 1u);
  const json& d = r["devices"][0];
  EXPECT_EQ(d["counts"]["alloc"], 2);
  EXPECT_EQ(d["counts"]["free"], 2);
  EXPECT_EQ(d["counts"]["free_unknown"], 0);
  EXPECT_EQ(d["counts"]["double_free"], 0);
  EXPECT_EQ(d["peak"]["allocated_bytes"], 48 * kMiB);
  EXPECT_EQ(d["final"]["allocated_bytes"], 0u);
  EXPECT_EQ(d["leaks"].size(), 0u);
  ASSERT_EQ(r["anomalies"].size(), 1u) << r["anomalies"].dump();
  const json& a = r["anomalies"][0];
  EXPECT_EQ(a["kind"], "free_failed");
  EXPECT_EQ(a["api"], "cudaFreeHost");
  EXPECT_EQ(a["result"], free_host_code);
  EXPECT_EQ(a["address"], address);
  EXPECT_EQ(a["bytes"], 32 * kMiB);
  const Outcome text = run({GPUMEM_CLI, "report", trace}, child_environment(false, {}), dir_);
  EXPECT_NE(text.out.find("(cudaFreeHost failed with " + std::to_string(free_host_code) +
                          "; still allocated)"),
            std::string::npos)
      << text.out;
}

// Item 4 in replay: the cancelled free is dropped, so the 32 MiB is still held when the 48 MiB is
// asked for, and the replay under the recorded 64 MiB cap fails where the run failed.
TEST_F(Accounting, ReplayKeepsTheAllocationWhoseFreeFailed) {
  const std::string trace = dir_ + "/held.trace";
  const Outcome o =
      run({RELIABILITY_ACCOUNTING, "failed_free_held"},
          child_environment(true, {"GPUMEM_TRACE=" + trace, "GPUMEM_LIMIT=64MiB"}), dir_);
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  EXPECT_EQ(key_values(o.out)["alloc48"], 2) << "refused: 32 + 48 MiB > 64 MiB";
  const json r = report_of(trace, dir_);
  ASSERT_EQ(r["devices"].size(), 1u);
  EXPECT_EQ(r["devices"][0]["peak"]["allocated_bytes"], 32 * kMiB);
  EXPECT_EQ(r["devices"][0]["counts"]["alloc_failed"], 1);
  const Outcome js = run({GPUMEM_CLI, "replay", trace, "--no-search", "--json", "-"},
                         child_environment(false, {}), dir_);
  const json rep = json::parse(js.out, nullptr, false);
  ASSERT_FALSE(rep.is_discarded()) << js.out << js.err;
  EXPECT_EQ(rep["fits"], false) << "the 48 MiB cannot fit beside the 32 MiB still held";
  ASSERT_EQ(rep["devices"].size(), 1u);
  EXPECT_EQ(rep["devices"][0]["steps"], 3) << "alloc 32, alloc 48 (refused in the run), free 32";
}

// Item 5: the limit as enforced is in the header and the device_info record, in the report, and
// `gpumem replay` judges the trace by it when no --limit is given.
TEST_F(Accounting, RecordedLimitIsTheEnforcedOneAndReplayUsesIt) {
  const std::string trace = dir_ + "/refused.trace";
  const Outcome o =
      run({RELIABILITY_ACCOUNTING, "refused"},
          child_environment(true, {"GPUMEM_TRACE=" + trace, "GPUMEM_LIMIT=110MiB"}), dir_);
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  EXPECT_EQ(key_values(o.out)["second"], 2) << "cudaErrorMemoryAllocation: 128 MiB > 110 MiB";

  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  ASSERT_EQ(t.header.devices[0].present, 1u);
  EXPECT_EQ(t.header.devices[0].limit_bytes, 110 * kMiB);
  const auto info = records_of(t, Op::device_info);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].aux, 110 * kMiB);

  const json r = report_of(trace, dir_);
  ASSERT_EQ(r["devices"].size(), 1u);
  EXPECT_EQ(r["devices"][0]["limit_bytes"], 110 * kMiB);

  const Outcome text =
      run({GPUMEM_CLI, "replay", trace, "--no-search"}, child_environment(false, {}), dir_);
  EXPECT_NE(text.out.find("DOES NOT FIT"), std::string::npos) << text.out << text.err;
  const Outcome js = run({GPUMEM_CLI, "replay", trace, "--no-search", "--json", "-"},
                         child_environment(false, {}), dir_);
  const json rep = json::parse(js.out, nullptr, false);
  ASSERT_FALSE(rep.is_discarded()) << js.out << js.err;
  EXPECT_EQ(rep["fits"], false);
  ASSERT_EQ(rep["devices"].size(), 1u);
  EXPECT_EQ(rep["devices"][0]["limit_bytes"], 110 * kMiB);
  EXPECT_EQ(rep["devices"][0]["recorded_limit_bytes"], 110 * kMiB);
}

// Item 5, percentages: the header holds the bytes the percentage resolved to.
TEST_F(Accounting, RecordedLimitIsAPercentageResolved) {
  const std::string trace = dir_ + "/percent.trace";
  const Outcome o =
      run({RELIABILITY_ACCOUNTING, "refused"},
          child_environment(true, {"GPUMEM_TRACE=" + trace, "GPUMEM_LIMIT=50%"}), dir_);
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  const uint64_t capacity = t.header.devices[0].capacity_bytes;
  ASSERT_GT(capacity, 0u);
  EXPECT_EQ(t.header.devices[0].limit_bytes,
            static_cast<uint64_t>(static_cast<double>(capacity) * 50 / 100.0));
}

// Item 7: a pointer freed twice through the runtime and one freed twice through the driver are
// double frees in the report; only the pointer CUDA never gave out is an unknown free.
TEST_F(Accounting, DoubleFreesAreCountedThroughBothApis) {
  const std::string trace = dir_ + "/double.trace";
  const Outcome o = run({RELIABILITY_ACCOUNTING, "double_free"},
                        child_environment(true, {"GPUMEM_TRACE=" + trace}), dir_);
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  auto kv = key_values(o.out);
  EXPECT_EQ(kv["runtime_first"], 0);
  EXPECT_NE(kv["runtime_second"], 0);
  EXPECT_EQ(kv["driver_first"], 0);
  EXPECT_NE(kv["driver_second"], 0);
  EXPECT_NE(kv["unknown_free"], 0);

  const json r = report_of(trace, dir_);
  ASSERT_EQ(r["devices"].size(), 1u);
  const json& d = r["devices"][0];
  EXPECT_EQ(d["counts"]["double_free"], 2);
  EXPECT_EQ(d["counts"]["free_unknown"], 1);
  EXPECT_EQ(d["counts"]["alloc"], 2);
  EXPECT_EQ(d["counts"]["free"], 2);
  ASSERT_EQ(r["anomalies"].size(), 3u) << r["anomalies"].dump();
  EXPECT_EQ(r["anomalies"][0]["kind"], "double_free");
  EXPECT_EQ(r["anomalies"][0]["api"], "cudaFree");
  EXPECT_EQ(r["anomalies"][0]["address"], static_cast<uint64_t>(kv["runtime"]));
  EXPECT_EQ(r["anomalies"][1]["kind"], "double_free");
  EXPECT_EQ(r["anomalies"][1]["api"], "cuMemFree_v2");
  EXPECT_EQ(r["anomalies"][1]["address"], static_cast<uint64_t>(kv["driver"]));
  EXPECT_EQ(r["anomalies"][2]["kind"], "free_unknown");
  EXPECT_EQ(r["anomalies"][2]["address"], static_cast<uint64_t>(kv["unknown"]));
}

// Runs `accounting MODE`, whose first call asks for 2^64 + 4 bytes (a product of dimensions that
// wraps to 4) and whose second asks for `asked` bytes. Under the preload, with and without a
// limit, the program gets simcuda's own answer, and the trace holds the first request saturated,
// never the wrapped 4 bytes (a limit would let those through), and the second as asked.
void expect_overflow_recorded_saturated(const std::string& dir, const std::string& mode, Api api,
                                        uint64_t asked) {
  const Outcome bare = run({RELIABILITY_ACCOUNTING, mode}, child_environment(false, {}), dir);
  ASSERT_EQ(bare.status, 0) << bare.out << bare.err;
  const long long real_code = key_values(bare.out)[mode];
  ASSERT_NE(real_code, 0) << "no device holds 2^64 bytes";
  for (const char* limit : {"", "GPUMEM_LIMIT=64MiB"}) {
    SCOPED_TRACE(limit);
    const std::string trace = dir + "/" + mode + (*limit ? "-limit" : "") + ".trace";
    std::vector<std::string> env = {"GPUMEM_TRACE=" + trace};
    if (*limit) env.emplace_back(limit);
    const Outcome o = run({RELIABILITY_ACCOUNTING, mode}, child_environment(true, env), dir);
    ASSERT_EQ(o.status, 0) << o.out << o.err;
    EXPECT_EQ(key_values(o.out)[mode], real_code);
    const LoadedTrace t = load_trace(trace);
    ASSERT_TRUE(t.opened) << t.error;
    const auto failed = records_of(t, Op::alloc_failed);
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0].api, static_cast<uint16_t>(api));
    EXPECT_EQ(failed[0].bytes, UINT64_MAX);
    EXPECT_EQ(failed[0].result, real_code);
    const auto allocs = records_of(t, Op::alloc);
    ASSERT_EQ(allocs.size(), 1u);
    EXPECT_EQ(allocs[0].bytes, asked);
  }
}

// Item 11: cudaMalloc3D, width * height * depth; then a 64 x 32 x 2 extent.
TEST_F(Accounting, Malloc3DOverflowIsRecordedSaturated) {
  expect_overflow_recorded_saturated(dir_, "malloc3d", Api::cudaMalloc3D, 64u * 32u * 2u);
}

// The driver's pitched allocation, width * height; then 256 x 4.
TEST_F(Accounting, DriverPitchOverflowIsRecordedSaturated) {
  expect_overflow_recorded_saturated(dir_, "pitch", Api::cuMemAllocPitch, 256u * 4u);
}

// cuMemCreate with a NULL prop: the program gets the code simcuda gives (CUDA documents the same),
// and the trace holds the refusal as any refused call, an alloc_failed with that code and the
// bytes asked (this returned the code with nothing recorded). It names no device: host (-1),
// never charged to a cap.
TEST_F(Accounting, VmmCreateWithNullPropIsARecordedFailure) {
  const Outcome bare =
      run({RELIABILITY_ACCOUNTING, "vmm_null_prop"}, child_environment(false, {}), dir_);
  ASSERT_EQ(bare.status, 0) << bare.out << bare.err;
  const long long real_code = key_values(bare.out)["null_prop"];
  ASSERT_EQ(real_code, 1) << "CUDA_ERROR_INVALID_VALUE";
  for (const char* limit : {"", "GPUMEM_LIMIT=64MiB"}) {
    SCOPED_TRACE(limit);
    const std::string trace = dir_ + "/null-prop" + (*limit ? "-limit" : "") + ".trace";
    std::vector<std::string> env = {"GPUMEM_TRACE=" + trace};
    if (*limit) env.emplace_back(limit);
    const Outcome o =
        run({RELIABILITY_ACCOUNTING, "vmm_null_prop"}, child_environment(true, env), dir_);
    ASSERT_EQ(o.status, 0) << o.out << o.err;
    EXPECT_EQ(key_values(o.out)["null_prop"], real_code);
    const LoadedTrace t = load_trace(trace);
    ASSERT_TRUE(t.opened) << t.error;
    const auto failed = records_of(t, Op::alloc_failed);
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0].api, static_cast<uint16_t>(Api::cuMemCreate));
    EXPECT_EQ(failed[0].bytes, 2 * kMiB);
    EXPECT_EQ(failed[0].result, real_code);
    EXPECT_EQ(failed[0].device, -1);
    EXPECT_EQ(failed[0].flags & gpumem::trace::kFlagKindMask,
              static_cast<uint16_t>(gpumem::trace::MemKind::physical));
    EXPECT_EQ(records_of(t, Op::oom).size(), 0u) << "invalid, not out of memory";
    ASSERT_EQ(records_of(t, Op::alloc).size(), 1u) << "the good create after it";
    EXPECT_EQ(records_of(t, Op::free).size(), 1u);
  }
}

// IPC opens with a NULL out-parameter go to CUDA, whose refusal the program gets; each is an
// alloc_failed of kind imported with that code, as any failed open (they were passed through
// with nothing recorded).
TEST_F(Accounting, IpcOpenWithNullOutParameterIsARecordedFailure) {
  const Outcome bare =
      run({RELIABILITY_ACCOUNTING, "ipc_null"}, child_environment(false, {}), dir_);
  ASSERT_EQ(bare.status, 0) << bare.out << bare.err;
  auto real = key_values(bare.out);
  const std::string trace = dir_ + "/ipc-null.trace";
  const Outcome o = run({RELIABILITY_ACCOUNTING, "ipc_null"},
                        child_environment(true, {"GPUMEM_TRACE=" + trace}), dir_);
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  auto got = key_values(o.out);
  const std::pair<const char*, Api> calls[] = {{"runtime_open", Api::cudaIpcOpenMemHandle},
                                               {"driver_open", Api::cuIpcOpenMemHandle}};
  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  const auto failed = records_of(t, Op::alloc_failed);
  ASSERT_EQ(failed.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(calls[i].first);
    ASSERT_NE(real[calls[i].first], 0) << "simcuda refuses a NULL out-parameter";
    EXPECT_EQ(got[calls[i].first], real[calls[i].first]);
    EXPECT_EQ(failed[i].api, static_cast<uint16_t>(calls[i].second));
    EXPECT_EQ(failed[i].result, real[calls[i].first]);
    EXPECT_EQ(failed[i].bytes, 0u);
    EXPECT_EQ(failed[i].flags & gpumem::trace::kFlagKindMask,
              static_cast<uint16_t>(gpumem::trace::MemKind::imported));
  }
  EXPECT_EQ(records_of(t, Op::anomaly).size(), 0u);
}
// The trace's header names each device CUDA has, with its name and capacity, even when the first
// event on it comes before CUDA is initialised (an NVML query, as pynvml users make to choose a
// GPU): it was "unknown" with capacity 0 for the whole run. Without a limit, which would
// initialise CUDA itself.
TEST_F(Accounting, HeaderNamesTheDeviceWhenNvmlAskedBeforeCudaInit) {
  const std::string trace = dir_ + "/nvml-first.trace";
  const Outcome o =
      run({RELIABILITY_ACCOUNTING, "nvml_first"},
          child_environment(true, {"GPUMEM_TRACE=" + trace, "SIMCUDA_MEMORY=8GiB"}), dir_);
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  EXPECT_EQ(key_values(o.out)["nvml"], 0);
  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_EQ(t.header.device_count, 1u);
  ASSERT_EQ(t.header.devices[0].present, 1u);
  EXPECT_STREQ(t.header.devices[0].name, "gpumem simulated device");
  EXPECT_EQ(t.header.devices[0].capacity_bytes, 8 * 1024 * kMiB);
  const auto info = records_of(t, Op::device_info);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].bytes, 8 * 1024 * kMiB);
  ASSERT_EQ(records_of(t, Op::meminfo).size(), 1u) << "the NVML query";
  ASSERT_EQ(records_of(t, Op::alloc).size(), 1u);

  const json r = report_of(trace, dir_);
  ASSERT_EQ(r["devices"].size(), 1u);
  EXPECT_EQ(r["devices"][0]["name"], "gpumem simulated device");
  EXPECT_EQ(r["devices"][0]["capacity_bytes"], 8 * 1024 * kMiB);
}

// A failed call naming a device CUDA does not have keeps its device in its record, but the
// header lists only real devices: the phantom made device_count 4 and `gpumem replay` replayed
// devices 0 to 3.
TEST_F(Accounting, DeviceCudaDoesNotHaveIsNotInTheHeader) {
  const std::string trace = dir_ + "/missing-device.trace";
  const Outcome o = run({RELIABILITY_ACCOUNTING, "missing_device"},
                        child_environment(true, {"GPUMEM_TRACE=" + trace}), dir_);
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  EXPECT_NE(key_values(o.out)["create"], 0);
  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_EQ(t.header.device_count, 1u);
  EXPECT_EQ(t.header.devices[0].present, 1u);
  EXPECT_EQ(t.header.devices[3].present, 0u);
  EXPECT_EQ(records_of(t, Op::device_info).size(), 1u);
  const auto failed = records_of(t, Op::alloc_failed);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].device, 3);
  EXPECT_EQ(failed[0].result, key_values(o.out)["create"]);
}

// NCCL asks whether a buffer is cuMem memory by retaining its handle and releasing it. Under
// GPUMEM_POOL=expandable a cudaMalloc'ed buffer is: the handle is the pool's, and its release
// goes to CUDA unrecorded (each was a free_unknown anomaly, an unknown free in the report).
TEST_F(Accounting, RetainedHandleOfExpandablePoolMemoryIsNotAnUnknownFree) {
  const std::string trace = dir_ + "/retain-pool.trace";
  const Outcome o =
      run({RELIABILITY_ACCOUNTING, "retain_pool"},
          child_environment(true, {"GPUMEM_TRACE=" + trace, "GPUMEM_POOL=expandable"}), dir_);
  ASSERT_EQ(o.status, 0) << o.out << o.err;
  auto kv = key_values(o.out);
  for (const char* key : {"first_retain", "first_release", "second_retain", "second_release"}) {
    ASSERT_EQ(kv.count(key), 1u) << key << ": " << o.out;
    EXPECT_EQ(kv[key], 0) << key;
  }
  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_STREQ(t.header.pool, "expandable");
  EXPECT_EQ(records_of(t, Op::anomaly).size(), 0u);
  const auto allocs = records_of(t, Op::alloc), frees = records_of(t, Op::free);
  ASSERT_EQ(allocs.size(), 1u);
  ASSERT_EQ(frees.size(), 1u);
  EXPECT_EQ(frees[0].api, static_cast<uint16_t>(Api::cudaFree));
  EXPECT_EQ(frees[0].bytes, 4 * kMiB);
  const json r = report_of(trace, dir_);
  ASSERT_EQ(r["devices"].size(), 1u);
  EXPECT_EQ(r["devices"][0]["counts"]["free_unknown"], 0);
  EXPECT_EQ(r["anomalies"].size(), 0u) << r["anomalies"].dump();
}

}  // namespace
}  // namespace reliability
