// Soak: 16 threads, mixed calls across every allocation API (runtime, driver, stream-ordered,
// managed, pitched, pinned host, VMM handles, capacity queries, markers), under each policy.
// The trace must account for every call exactly (counts and byte sums per API, every free
// matched), and the process's anonymous memory must not grow after warm-up: the library's
// own structures (live maps, trace writer, stacks) are bounded however many calls pass through.
// CI: 600k calls per policy (by half-way the lazily committed live-pointer table has seen the
// pool's address windows; 200k was too short for the fixed pool), 100k in sanitizer builds;
// GPUMEM_TEST_LONG=1: 10M.
#include <algorithm>
#include <map>
#include <sstream>

#include "process.h"
#include "sanitized.h"
#include "support.h"

namespace reliability {
namespace {

using gpumem::trace::Api;
using gpumem::trace::Op;

struct Policy {
  const char* name;
  std::vector<std::string> env;
};

void PrintTo(const Policy& p, std::ostream* os) { *os << p.name; }  // readable ctest names

class Soak : public ScratchTest, public ::testing::WithParamInterface<Policy> {};

std::map<std::string, uint64_t> parse_lines(const std::string& text) {
  std::map<std::string, uint64_t> kv;
  std::istringstream in(text);
  std::string key;
  long long value;
  while (in >> key >> value) kv[key] = static_cast<uint64_t>(value);
  return kv;
}

TEST_P(Soak, ExactAccountingAndBoundedLibraryMemory) {
  // The 600k calls are for the resident-memory bound, which a sanitizer build does not judge;
  // its race and memory-error checks see every code path within 100k (TSan: 200 s -> ~35 s).
  const uint64_t ops = long_form() ? 10'000'000 : gpumem::test::kSanitized ? 100'000 : 600'000;
  const std::string trace = dir_ + "/soak.trace";
  std::vector<std::string> extra = GetParam().env;
  extra.push_back("GPUMEM_TRACE=" + trace);
  const Outcome o = run({RELIABILITY_WORKLOAD, "soak", "16", std::to_string(ops)},
                        child_environment(true, extra), dir_);
  ASSERT_EQ(o.status, 0) << o.err << o.out;
  auto kv = parse_lines(o.out);
  ASSERT_EQ(kv["failures"], 0u);

  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_EQ(t.stats.torn, 0u);
  EXPECT_FALSE(t.stats.truncated) << t.stats.reason;

  const std::pair<const char*, Api> apis[] = {
      {"cudaMalloc", Api::cudaMalloc},         {"cuMemAlloc", Api::cuMemAlloc},
      {"cudaMallocAsync", Api::cudaMallocAsync}, {"cuMemAllocAsync", Api::cuMemAllocAsync},
      {"cudaMallocManaged", Api::cudaMallocManaged}, {"cudaMallocPitch", Api::cudaMallocPitch},
      {"cudaMallocHost", Api::cudaMallocHost}, {"cuMemCreate", Api::cuMemCreate}};
  std::map<Api, uint64_t> allocs, bytes;
  uint64_t frees = 0, freed_bytes = 0, alloc_bytes = 0, meminfo = 0, marks = 0, anomalies = 0, failed = 0;
  for (const auto& r : t.records) {
    switch (static_cast<Op>(r.op)) {
      case Op::alloc:
        ++allocs[static_cast<Api>(r.api)];
        bytes[static_cast<Api>(r.api)] += r.bytes;
        alloc_bytes += r.bytes;
        break;
      case Op::free:
        ++frees;
        freed_bytes += r.bytes;
        break;
      case Op::meminfo: ++meminfo; break;
      case Op::mark: ++marks; break;
      case Op::anomaly: ++anomalies; break;
      case Op::alloc_failed: ++failed; break;
      default: break;
    }
  }
  uint64_t program_allocs = 0;
  for (const auto& [name, api] : apis) {
    EXPECT_EQ(allocs[api], kv[std::string("allocs.") + name]) << name;
    EXPECT_EQ(bytes[api], kv[std::string("bytes.") + name]) << name;
    program_allocs += kv[std::string("allocs.") + name];
  }
  EXPECT_EQ(frees, kv["frees"]);
  EXPECT_EQ(frees, program_allocs) << "every allocation was freed";
  EXPECT_EQ(freed_bytes, alloc_bytes) << "each free carries its allocation's size";
  EXPECT_EQ(meminfo, kv["meminfo"]);
  EXPECT_EQ(marks, kv["marks"]);
  EXPECT_EQ(anomalies, 0u);
  EXPECT_EQ(failed, 0u);
  EXPECT_EQ(kv["stats.allocated"], 0u) << "gpumem_get_stats(0) holds nothing at the end";

  const uint64_t events = t.records.size();
  const long warm = static_cast<long>(kv["rss_anon_warm_kib"]), end = static_cast<long>(kv["rss_anon_end_kib"]);
  ASSERT_GT(warm, 0);
  // Program memory is bounded by design (32 live blocks per thread); what could grow is the
  // library's. simcuda keeps device memory in host memory, so segments a pool keeps cached
  // (reserved bytes) are the device's, not the library's: they are allowed for. 16 MiB of slack
  // covers allocator arenas settling after warm-up.
  const long reserved_growth_kib =
      static_cast<long>(kv["stats.reserved_end"] / 1024) - static_cast<long>(kv["stats.reserved_warm"] / 1024);
  // Under a sanitizer the RSS is mostly the runtime's: TSan's shadow and sync-object memory
  // (250-490 MiB at warm-up, +67-105 MiB over 600k calls), ASan's quarantine of freed blocks
  // (up to 256 MiB, filling at its own pace: +16.5 MiB after warm-up failed CI on 2026-12-05).
  // The bound is judged in the main build; there the test is about races, memory errors and
  // exact accounting (ASan's leak check still runs at the child's exit).
  if (!gpumem::test::kSanitized) {
    EXPECT_LE(end - warm, 16 * 1024 + std::max(0L, reserved_growth_kib))
        << "anonymous RSS grew from " << warm << " KiB to " << end << " KiB; pool reserve grew "
        << reserved_growth_kib << " KiB";
  }
  std::printf("reliability.soak.%s: %llu calls, %llu records checked, RssAnon %ld -> %ld KiB, pool reserve %+ld KiB\n",
              GetParam().name, static_cast<unsigned long long>(ops), static_cast<unsigned long long>(events),
              warm, end, reserved_growth_kib);
}

INSTANTIATE_TEST_SUITE_P(
    Policies, Soak,
    ::testing::Values(Policy{"none", {}},
                      Policy{"growth_limit", {"GPUMEM_POOL=growth", "GPUMEM_LIMIT=2GiB"}},
                      Policy{"fixed", {"GPUMEM_POOL=fixed", "GPUMEM_LIMIT=2GiB", "GPUMEM_POOL_SIZE=1GiB"}}),
    [](const ::testing::TestParamInfo<Policy>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace reliability
