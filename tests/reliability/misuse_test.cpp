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

}  // namespace
}  // namespace reliability
