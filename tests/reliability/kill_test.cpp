// Kill test: a multi-threaded workload under the preload on simcuda, killed with SIGKILL at a
// random moment, many times. Every call that returned before the kill (each thread publishes its
// count in shared memory after every return) must be in the trace, and the trace must open.
// One call leaves one record, and a call in flight at the kill may or may not have one, so per
// thread: returned <= records <= returned + 1.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <map>
#include <random>
#include <thread>

#include "gpumem/resources/shared_ledger.h"
#include "gpumem/trace/format_v2.h"
#include "process.h"
#include "progress.h"
#include "support.h"

namespace reliability {
namespace {

using gpumem::trace::Op;
class Kill : public ScratchTest {
 protected:
  // `extra`: more environment for the workload (the trace format).
  void kill_at_random_moments(const std::vector<std::string>& extra);
};

TEST_F(Kill, RandomMomentsLoseNoReturnedCall) { kill_at_random_moments({}); }

// The same on the compact trace format (version 2, gpumem/trace/format_v2.h): the slots being
// written are raw as in version 1, and a chunk's space is reused only after its sealed copy is in
// the file, so a kill loses no returned call here either (issue 23).
TEST_F(Kill, CompactFormatRandomMomentsLoseNoReturnedCall) {
  kill_at_random_moments({"GPUMEM_TRACE_FORMAT=compact"});
}

// The same on a bounded trace (GPUMEM_TRACE_MAX=4MiB): kills in its head and its window. This
// workload makes too few calls in a run for the window to go round (about 300k records); kills
// after drops are trace.TraceBoundedFile.KilledAtRandomMoments*. Should the middle be dropped,
// its records are counted in the digest, not delivered: the check is then on the sum.
TEST_F(Kill, BoundedTraceRandomMomentsLoseNoReturnedCall) {
  kill_at_random_moments({"GPUMEM_TRACE_MAX=4MiB"});
}

void Kill::kill_at_random_moments(const std::vector<std::string>& extra) {
  const bool bounded = !extra.empty() && extra[0].rfind("GPUMEM_TRACE_MAX=", 0) == 0;
  const int runs = long_form() ? 100 : bounded ? 8 : 20;
  constexpr int kThreads = 4;
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  uint64_t checked_calls = 0;
  int bounded_drops = 0;
  for (int run = 0; run < runs; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    const std::string shm = dir_ + "/progress", trace = dir_ + "/kill-" + std::to_string(run) + ".trace";
    int fd = ::open(shm.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, sizeof(Progress)), 0);
    auto* progress = static_cast<Progress*>(mmap(nullptr, sizeof(Progress), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    ::close(fd);
    ASSERT_NE(progress, MAP_FAILED);
    const pid_t pid = start({RELIABILITY_WORKLOAD, "kill", shm, std::to_string(kThreads)},
                            [&] {
                              auto env = child_environment(true, {"GPUMEM_TRACE=" + trace});
                              env.insert(env.end(), extra.begin(), extra.end());
                              return env;
                            }(),
                            "", dir_ + "/stderr");
    ASSERT_GT(pid, 0);
    // Wait until every thread has a returned call, then let it run a random while.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    auto all_started = [&] {
      if (progress->thread_count.load() != kThreads) return false;
      for (int t = 0; t < kThreads; ++t)
        if (progress->threads[t].returned.load() == 0) return false;
      return true;
    };
    while (!all_started() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    std::this_thread::sleep_for(std::chrono::microseconds(
        std::uniform_int_distribution<int>(0, bounded ? 200000 : 60000)(rng)));
    ::kill(pid, SIGKILL);
    const Outcome o = wait_for(pid, "", dir_ + "/stderr");
    ASSERT_TRUE(all_started()) << "the workload never got going: " << o.err;
    ASSERT_EQ(o.status, 128 + SIGKILL) << o.err;

    const LoadedTrace t = load_trace(trace);
    ASSERT_TRUE(t.opened) << t.error;
    if (!extra.empty()) {
      ASSERT_EQ(t.header.version, gpumem::trace::kVersionCompact) << "the format asked for";
    }
    std::map<uint32_t, uint64_t> per_tid;
    for (const auto& r : t.records) {
      const auto op = static_cast<Op>(r.op);
      if (op == Op::alloc || op == Op::free || op == Op::meminfo) ++per_tid[r.tid];
    }
    uint64_t omitted = 0;  // a bounded trace's dropped calls (none unless the window went round)
    if (bounded) {
      std::string error;
      auto reader = gpumem::trace::Reader::open(trace, &error);
      ASSERT_NE(reader, nullptr) << error;
      if (const gpumem::trace::DroppedSpan* d = reader->dropped()) {
        ++bounded_drops;
        for (const auto& row : d->omitted) {
          const auto op = static_cast<Op>(row.op);
          if (op == Op::alloc || op == Op::free || op == Op::meminfo) omitted += row.count;
        }
      }
    }
    uint64_t records = omitted, returned_all = 0;
    for (int th = 0; th < kThreads; ++th) {
      const uint32_t tid = progress->threads[th].tid.load();
      const uint64_t returned = progress->threads[th].returned.load();
      records += per_tid[tid];
      returned_all += returned;
      checked_calls += returned;
      if (omitted != 0) continue;
      EXPECT_GE(per_tid[tid], returned) << "thread " << th << " lost calls that had returned";
      EXPECT_LE(per_tid[tid], returned + 1) << "thread " << th << " has records of calls never made";
    }
    EXPECT_GE(records, returned_all) << "calls that had returned were lost";
    EXPECT_LE(records, returned_all + kThreads) << "records of calls never made";
    munmap(progress, sizeof(Progress));
    ::unlink(trace.c_str());
    if (HasFailure()) break;
  }
  std::printf("reliability.kill: %d kills, %llu returned calls checked%s\n", runs,
              static_cast<unsigned long long>(checked_calls),
              bounded ? (", " + std::to_string(bounded_drops) + " after the window went round").c_str()
                      : "");
}

// The kill test under a shared budget (GPUMEM_LIMIT_SCOPE=shared): at each kill the workload's
// threads hold at most one allocation each (under 8 KiB) in the ledger, in its one slot; killed
// at a random moment, what it held comes back to the budget, and the budget is whole again.
TEST_F(Kill, SharedLedgerGetsAKilledProcessesBytesBack) {
  constexpr int kThreads = 4;
  constexpr uint64_t kLimit = 1ull << 30;
  const std::string name = "kill" + std::to_string(getpid());
  const std::string shm = "/gpumem-budget-" + name + "-dev0";
  shm_unlink(shm.c_str());
  char err[512] = {};
  std::unique_ptr<gpumem::resources::SharedLedger> ledger(
      gpumem::resources::SharedLedger::open(shm.c_str(), kLimit, 0600, err, sizeof err));
  ASSERT_NE(ledger, nullptr) << err;
  std::mt19937 rng(std::random_device{}());
  for (int run = 0; run < 5; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    const std::string prog = dir_ + "/progress";
    int fd = ::open(prog.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, sizeof(Progress)), 0);
    auto* progress = static_cast<Progress*>(
        mmap(nullptr, sizeof(Progress), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    ::close(fd);
    ASSERT_NE(progress, MAP_FAILED);
    const pid_t pid = start({RELIABILITY_WORKLOAD, "kill", prog, std::to_string(kThreads)},
                            child_environment(true, {"GPUMEM_TRACE=" + dir_ + "/k.trace",
                                                     "GPUMEM_LIMIT=1GiB",
                                                     "GPUMEM_LIMIT_SCOPE=shared",
                                                     "GPUMEM_LIMIT_NAME=" + name}),
                            "", dir_ + "/stderr");
    ASSERT_GT(pid, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    auto started = [&] {
      if (progress->thread_count.load() != kThreads) return false;
      for (int t = 0; t < kThreads; ++t)
        if (progress->threads[t].returned.load() == 0) return false;
      return true;
    };
    while (!started() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    std::this_thread::sleep_for(
        std::chrono::microseconds(std::uniform_int_distribution<int>(0, 20000)(rng)));
    gpumem::resources::SharedLedger::Slot slots[4];
    const int n = ledger->slots(slots, 4);
    ::kill(pid, SIGKILL);
    const Outcome o = wait_for(pid, "", dir_ + "/stderr");
    ASSERT_TRUE(started()) << o.err;
    ASSERT_EQ(o.status, 128 + SIGKILL) << o.err;
    ASSERT_EQ(n, 1);
    EXPECT_EQ(slots[0].pid, pid);
    EXPECT_LE(slots[0].charge, uint64_t{kThreads} * 256 * 31);
    bool back = false;
    for (int i = 0; i < 20000 && !back; ++i) {
      ledger->reclaim_dead();
      back = ledger->total() == 0;
      if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_TRUE(back) << ledger->total();
    EXPECT_EQ(ledger->slots(slots, 4), 0);
    munmap(progress, sizeof(Progress));
    if (HasFailure()) break;
  }
  EXPECT_LE(ledger->high_water(), uint64_t{kThreads} * 256 * 31);
  shm_unlink(shm.c_str());
}

}  // namespace
}  // namespace reliability
