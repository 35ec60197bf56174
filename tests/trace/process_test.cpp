// The writer across process boundaries: SIGKILL at a random moment, and fork.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <thread>

#include "trace_test_util.h"

namespace gpumem::test {
namespace {

using trace::Op;

struct SharedCounter {
  std::atomic<uint64_t> returned{0};  // appends that had returned, written after each one
};

// Child: kThreads threads append forever, each bumping the shared counter after every append
// that returned. Never returns; the parent kills it.
[[noreturn]] void append_until_killed(const std::string& path, SharedCounter* counter,
                                      int threads) {
  static TraceWriter w;  // static: the child never unwinds
  char err[512];
  if (!w.open(path.c_str(), test_header(), err, sizeof(err))) _exit(2);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([t, counter] {
      for (uint64_t i = 0;; ++i) {
        trace::Record r = make_record(Op::alloc, 0x1000 + i, i);
        r.aux = static_cast<uint64_t>(t);
        w.append(r);
        if (i % 64 == 0) {  // distinct strings: blob records get cut by the kill too
          char text[64];
          std::snprintf(text, sizeof(text), "phase %d.%llu", t, static_cast<unsigned long long>(i));
          w.intern_string(text);
        }
        counter->returned.fetch_add(1, std::memory_order_release);
      }
    });
  }
  for (;;) pause();
}

TEST(TraceCrash, SigkillLosesNoAppendThatReturned) {
  constexpr int kThreads = 4;
  const char* long_env = std::getenv("GPUMEM_TEST_LONG");
  const int rounds = (long_env != nullptr && std::string(long_env) == "1") ? 60 : 4;
  std::mt19937_64 rng(std::random_device{}());
  for (int round = 0; round < rounds; ++round) {
    ScratchDir dir;
    const std::string path = dir.file("killed.trace");
    auto* counter = static_cast<SharedCounter*>(mmap(
        nullptr, sizeof(SharedCounter), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(counter, MAP_FAILED);
    new (counter) SharedCounter;
    // Up to ~300k records: the file grows several times on the way, so a kill may land while
    // the file is being extended.
    const uint64_t kill_after = std::uniform_int_distribution<uint64_t>(1, 300000)(rng);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) append_until_killed(path, counter, kThreads);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (counter->returned.load(std::memory_order_acquire) < kill_after &&
           std::chrono::steady_clock::now() < deadline) {
      int status;
      if (waitpid(pid, &status, WNOHANG) == pid) FAIL() << "child exited early: " << status;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status));
    const uint64_t reported = counter->returned.load(std::memory_order_acquire);
    munmap(counter, sizeof(SharedCounter));
    ASSERT_GE(reported, kill_after) << "round " << round << ": child too slow";

    std::string error;
    auto reader = trace::Reader::open(path, &error);
    ASSERT_NE(reader, nullptr) << error;
    std::map<uint64_t, uint64_t> next_seq;  // per thread: every seq 0..n-1 present, in order
    uint64_t allocs = 0, out_of_order = 0;
    trace::Event ev;
    while (reader->next(&ev)) {
      if (ev.rec.op != static_cast<uint16_t>(Op::alloc)) continue;
      ++allocs;
      out_of_order += ev.rec.bytes != next_seq[ev.rec.aux]++;
    }
    const trace::ReadStats& stats = reader->stats();
    EXPECT_GE(allocs, reported) << "round " << round;
    EXPECT_LE(allocs, reported + kThreads) << "round " << round;
    EXPECT_EQ(out_of_order, 0u) << "round " << round;
    EXPECT_LE(stats.torn, uint64_t{kThreads} * 3) << "round " << round;  // in-flight slots only
    EXPECT_TRUE(stats.truncated);
    EXPECT_NE(stats.reason.find("not closed cleanly"), std::string::npos) << stats.reason;
  }
}

TEST(TraceFork, ChildAbandonsParentTraceAndWritesItsOwn) {
  ScratchDir dir;
  const std::string parent_path = dir.file("parent.trace");
  const std::string child_path = dir.file("child.trace");
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, parent_path));
  for (int i = 0; i < 10; ++i) w.append(make_record(Op::alloc, 1, static_cast<uint64_t>(i)));
  w.intern_string("parent string");
  const uint32_t parent_tid = current_tid();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    w.abandon();
    if (w.is_open()) _exit(2);
    if (current_tid() == parent_tid) _exit(3);  // the cached tid must be the child's own
    trace::Header h = test_header();
    h.parent_pid = static_cast<uint32_t>(getppid());
    char err[512];
    if (!w.open(child_path.c_str(), h, err, sizeof(err))) _exit(4);
    for (int i = 0; i < 5; ++i) w.append(make_record(Op::free, 2, static_cast<uint64_t>(i)));
    if (w.intern_string("parent string") != 1) _exit(5);  // a fresh table: written again
    w.close();
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (int i = 10; i < 20; ++i) w.append(make_record(Op::alloc, 1, static_cast<uint64_t>(i)));
  w.close();

  ReadResult parent = read_trace(parent_path);
  EXPECT_FALSE(parent.stats.truncated) << parent.stats.reason;
  EXPECT_EQ(parent.header.pid, static_cast<uint32_t>(getpid()));
  ASSERT_EQ(parent.events.size(), 21u);
  uint64_t seq = 0;
  for (const OwnedEvent& e : parent.events) {
    if (e.rec.op == static_cast<uint16_t>(Op::string)) continue;
    EXPECT_EQ(e.rec.op, static_cast<uint16_t>(Op::alloc));
    EXPECT_EQ(e.rec.bytes, seq++);
  }
  ReadResult child = read_trace(child_path);
  EXPECT_FALSE(child.stats.truncated) << child.stats.reason;
  EXPECT_EQ(child.header.pid, static_cast<uint32_t>(pid));
  EXPECT_EQ(child.header.parent_pid, static_cast<uint32_t>(getpid()));
  ASSERT_EQ(child.events.size(), 6u);
  EXPECT_EQ(child.events[0].rec.op, static_cast<uint16_t>(Op::free));
  EXPECT_EQ(child.events[5].payload, "parent string");
}

}  // namespace
}  // namespace gpumem::test
