// fork() while another thread is inside a pool (issue 29 item 3): the preload takes every lock a
// hook may hold around fork, so each child allocates and frees through its copy of the pool at
// once (no deadlock) and writes a trace of its own with exactly its calls. "Thread" in the name:
// the TSan stage runs it.
#include <map>
#include <sstream>

#include "process.h"
#include "support.h"

namespace reliability {
namespace {

using gpumem::trace::Op;

struct PoolCase {
  const char* name;
  std::vector<std::string> env;
};

void PrintTo(const PoolCase& c, std::ostream* os) {
  *os << c.name;
}

class ForkWithThreadInsidePool : public ScratchTest,
                                 public ::testing::WithParamInterface<PoolCase> {};

TEST_P(ForkWithThreadInsidePool, EachChildAllocatesAndExitsWithItsOwnTrace) {
  constexpr int kForks = 12;
  std::vector<std::string> env = GetParam().env;
  env.push_back("GPUMEM_TRACE=" + dir_ + "/t-%p.trace");
  const Outcome o =
      run({RELIABILITY_FORK_CHILD, std::to_string(kForks)}, child_environment(true, env), dir_);
  ASSERT_EQ(o.status, 0) << "a child hung (deadlock) or failed:\n" << o.out << o.err;

  std::istringstream in(o.out);
  std::string word;
  std::vector<int> children;
  uint32_t parent_pid = 0;
  while (in >> word) {
    if (word == "child") {
      int pid = 0, status = 0;
      in >> pid >> status;
      EXPECT_EQ(status, 0) << "child " << pid;
      children.push_back(pid);
    }
  }
  ASSERT_EQ(children.size(), static_cast<size_t>(kForks)) << o.out;

  for (int pid : children) {
    SCOPED_TRACE("child " + std::to_string(pid));
    const LoadedTrace t = load_trace(dir_ + "/t-" + std::to_string(pid) + ".trace");
    ASSERT_TRUE(t.opened) << t.error;
    EXPECT_EQ(t.header.pid, static_cast<uint32_t>(pid));
    if (parent_pid == 0) parent_pid = t.header.parent_pid;
    EXPECT_NE(t.header.parent_pid, 0u);
    EXPECT_EQ(t.header.parent_pid, parent_pid) << "every child names the same parent";
    EXPECT_NE(t.header.flags & gpumem::trace::kHeaderClosed, 0u) << "closed cleanly at exit";
    EXPECT_EQ(t.stats.torn, 0u);
    std::map<uint64_t, int> allocs, frees;  // bytes -> count
    for (const auto& r : t.records) {
      EXPECT_EQ(r.tid, static_cast<uint32_t>(pid)) << "only the child's own thread";
      if (static_cast<Op>(r.op) == Op::alloc) {
        ++allocs[r.bytes];
        EXPECT_NE(r.flags & gpumem::trace::kFlagPooled, 0u) << "served by the child's pool";
      }
      if (static_cast<Op>(r.op) == Op::free) ++frees[r.bytes];
      EXPECT_NE(static_cast<Op>(r.op), Op::alloc_failed);
      EXPECT_NE(static_cast<Op>(r.op), Op::anomaly);
    }
    const std::map<uint64_t, int> expected{{4096, 1}, {2u << 20, 1}};
    EXPECT_EQ(allocs, expected);
    EXPECT_EQ(frees, expected);
  }
}

// fork() while another thread is inside the preload's VMM bookkeeping (a cuMemUnmap searching the
// mappings it tracks, under its lock): the child's own VMM calls must not wait for that lock,
// whose holder does not exist in the child (every child hung in cuMemCreate). Each child's trace
// holds its one lifetime: created, mapped, unmapped, freed by its release.
using ForkWithThreadInsideVmmBookkeeping = ScratchTest;

TEST_F(ForkWithThreadInsideVmmBookkeeping, EachChildRunsAVmmLifetimeWithItsOwnTrace) {
  constexpr int kForks = 12;
  // No simulated latency: the worker spends most of its time inside the preload's lock.
  const Outcome o =
      run({RELIABILITY_FORK_CHILD, std::to_string(kForks), "vmm"},
          child_environment(true, {"GPUMEM_TRACE=" + dir_ + "/t-%p.trace",
                                   "SIMCUDA_ALLOC_LATENCY_US=0", "SIMCUDA_FREE_LATENCY_US=0"}),
          dir_);
  ASSERT_EQ(o.status, 0) << "a child hung (deadlock) or failed:\n" << o.out << o.err;
  std::istringstream in(o.out);
  std::string word;
  int children = 0;
  while (in >> word) {
    if (word != "child") continue;
    int pid = 0, status = 0;
    in >> pid >> status;
    ASSERT_EQ(status, 0) << "child " << pid;
    ++children;
    SCOPED_TRACE("child " + std::to_string(pid));
    const LoadedTrace t = load_trace(dir_ + "/t-" + std::to_string(pid) + ".trace");
    ASSERT_TRUE(t.opened) << t.error;
    std::map<Op, int> ops;
    for (const auto& r : t.records) {
      ++ops[static_cast<Op>(r.op)];
      if (static_cast<Op>(r.op) == Op::alloc || static_cast<Op>(r.op) == Op::free) {
        EXPECT_EQ(r.bytes, 2u << 20);
        EXPECT_EQ(r.device, 0);
      }
      if (static_cast<Op>(r.op) == Op::free) {
        EXPECT_EQ(r.api, static_cast<uint16_t>(gpumem::trace::Api::cuMemRelease));
      }
    }
    EXPECT_EQ(ops[Op::alloc], 1);
    EXPECT_EQ(ops[Op::map], 1);
    EXPECT_EQ(ops[Op::unmap], 1);
    EXPECT_EQ(ops[Op::free], 1);
    EXPECT_EQ(ops[Op::anomaly], 0);
  }
  EXPECT_EQ(children, kForks) << o.out;
}

INSTANTIATE_TEST_SUITE_P(
    Pools, ForkWithThreadInsidePool,
    ::testing::Values(PoolCase{"growth", {"GPUMEM_POOL=growth"}},
                      PoolCase{"fixed", {"GPUMEM_POOL=fixed", "GPUMEM_POOL_SIZE=128MiB"}},
                      PoolCase{"growth_limit", {"GPUMEM_POOL=growth", "GPUMEM_LIMIT=1GiB"}}),
    [](const ::testing::TestParamInfo<PoolCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace reliability
