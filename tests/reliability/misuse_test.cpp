// A program that frees unknown pointers, frees twice and passes NULL out-parameters: each
// misuse is an anomaly record, every return code is the API's own, and nothing is lost: the good
// allocations before, between and after are all in the trace with their frees.
#include <map>
#include <sstream>

#include "process.h"
#include "support.h"

namespace reliability {
namespace {

using gpumem::trace::AnomalyKind;
using gpumem::trace::Api;
using gpumem::trace::Op;
using Misuse = ScratchTest;

TEST_F(Misuse, RecordedAsAnomaliesNothingLost) {
  const std::string trace = dir_ + "/misuse.trace";
  const Outcome o = run({RELIABILITY_WORKLOAD, "misuse"}, child_environment(true, {"GPUMEM_TRACE=" + trace}), dir_);
  ASSERT_EQ(o.status, 0) << "a call returned an unexpected code: " << o.err;
  std::map<std::string, uint64_t> addr;
  std::istringstream in(o.out);
  std::string key, value;
  while (in >> key >> value) addr[key] = std::stoull(value, nullptr, 16);
  ASSERT_EQ(addr.size(), 3u) << o.out;

  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  std::map<uint64_t, int> alloc_sizes, free_sizes;
  int null_params = 0;
  std::map<uint64_t, std::vector<std::pair<Api, AnomalyKind>>> anomalies;
  for (const auto& r : t.records) {
    switch (static_cast<Op>(r.op)) {
      case Op::alloc: ++alloc_sizes[r.bytes]; break;
      case Op::free: ++free_sizes[r.bytes]; break;
      case Op::anomaly:
        if (static_cast<AnomalyKind>(r.aux) == AnomalyKind::null_out_param) ++null_params;
        else anomalies[r.address].push_back({static_cast<Api>(r.api), static_cast<AnomalyKind>(r.aux)});
        break;
      default: break;
    }
  }
  EXPECT_EQ(alloc_sizes, (std::map<uint64_t, int>{{1000, 1}, {2000, 1}, {3000, 1}}));
  EXPECT_EQ(free_sizes, (std::map<uint64_t, int>{{1000, 1}, {2000, 1}, {3000, 1}}));
  EXPECT_EQ(null_params, 5) << "cudaMalloc, cuMemAlloc_v2, cudaMallocAsync, cuMemGetInfo_v2 and cudaMemGetInfo with NULL";
  ASSERT_EQ(anomalies[addr["unknown_rt"]].size(), 1u);
  EXPECT_EQ(anomalies[addr["unknown_rt"]][0].first, Api::cudaFree);
  EXPECT_EQ(anomalies[addr["unknown_rt"]][0].second, AnomalyKind::free_unknown);
  ASSERT_EQ(anomalies[addr["unknown_drv"]].size(), 1u);
  EXPECT_EQ(anomalies[addr["unknown_drv"]][0].first, Api::cuMemFree);
  ASSERT_EQ(anomalies[addr["double"]].size(), 1u) << "the second free of the same pointer";
  const AnomalyKind second = anomalies[addr["double"]][0].second;
  EXPECT_TRUE(second == AnomalyKind::double_free || second == AnomalyKind::free_unknown);
  EXPECT_EQ(anomalies.size(), 3u);
}

// A request for a device CUDA does not have (a cuMemCreate location past simcuda's one device)
// under a percentage limit, whose capacity cannot be read for it, and under the expandable pool,
// whose granularity query fails for it: the program gets CUDA's own answer and goes on (this
// exited with status 2), and the trace's header keeps the pool that serves device 0.
TEST_F(Misuse, ADeviceCudaDoesNotHaveGetsCudasAnswer) {
  const Outcome bare = run({RELIABILITY_WORKLOAD, "bad_device"}, child_environment(false, {}), dir_);
  ASSERT_EQ(bare.status, 0) << bare.out << bare.err;
  ASSERT_NE(bare.out.find("bad_device "), std::string::npos) << bare.out;
  const int real_code = std::stoi(bare.out.substr(bare.out.find("bad_device ") + 11));
  ASSERT_NE(real_code, 0) << "simcuda has one device";
  for (const char* pool : {"none", "expandable"}) {
    SCOPED_TRACE(pool);
    const std::string trace = dir_ + "/bad-device-" + pool + ".trace";
    const Outcome o = run({RELIABILITY_WORKLOAD, "bad_device"},
                          child_environment(true, {"GPUMEM_TRACE=" + trace, "GPUMEM_LIMIT=50%",
                                                   std::string("GPUMEM_POOL=") + pool}),
                          dir_);
    ASSERT_EQ(o.status, 0) << o.out << o.err;
    EXPECT_NE(o.out.find("bad_device " + std::to_string(real_code)), std::string::npos) << o.out;
    const LoadedTrace t = load_trace(trace);
    ASSERT_TRUE(t.opened) << t.error;
    EXPECT_STREQ(t.header.pool, pool);
    int failed = 0;
    for (const auto& r : t.records) {
      if (static_cast<Op>(r.op) != Op::alloc_failed || static_cast<Api>(r.api) != Api::cuMemCreate)
        continue;
      ++failed;
      EXPECT_EQ(r.result, real_code);
    }
    EXPECT_EQ(failed, 1);
  }
}

}  // namespace
}  // namespace reliability
