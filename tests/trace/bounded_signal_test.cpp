// A bounded trace's append is async-signal-safe (docs/trace-format.md, "Bounded traces"): the
// appending thread that seals a chunk also drops the window's oldest chunks and folds them into
// the digest, and that thread may be a signal handler that interrupted malloc. So no append,
// dropping or not, may allocate: this program replaces operator new to count the calls made while
// appending, and runs a handler that appends while its thread does nothing but malloc and free.
// Its own executable: the replaced operator new is the whole program's.
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>
#include <thread>

#include "gpumem/trace/format_v2.h"
#include "trace_test_util.h"

namespace {
thread_local bool t_counting = false;
std::atomic<uint64_t> g_news{0};
}  // namespace

void* operator new(size_t n) {
  if (t_counting) g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n != 0 ? n : 1)) return p;
  throw std::bad_alloc();
}
// Through a function the compiler does not see into: it takes a free() inside operator delete
// for a mismatched pair.
[[gnu::noinline]] void release(void* p) { std::free(p); }
void operator delete(void* p) noexcept { release(p); }
void operator delete(void* p, size_t) noexcept { release(p); }

namespace gpumem::test {
namespace {

using trace::Op;
using trace::Record;
constexpr uint64_t kMax = trace::kMinTraceMax;  // 4 MiB: the window goes round many times

// The n-th record of a stream of alloc/free pairs with random-looking aux (about 18 bytes a
// record, so the window drops chunks after a few hundred thousand).
Record record(uint64_t n) {
  Record r = make_record(n % 2 == 0 ? Op::alloc : Op::free, 0x7f0000000000 + (n / 2 % 512) * 4096,
                         4096);
  r.device = 0;
  r.tid = 7;
  r.t_ns = 1'000'000 + n * 10;
  r.aux = (n * 0x9E3779B97F4A7C15ull) >> 20;
  return r;
}

uint64_t dropped_records(const std::string& path) {
  std::string error;
  auto reader = trace::Reader::open(path, &error);
  if (reader == nullptr) return 0;
  const trace::DroppedSpan* d = reader->dropped();
  return d != nullptr ? d->records : 0;
}

TEST(TraceBoundedSignalSafety, AppendsThatDropChunksNeverAllocate) {
  ScratchDir dir;
  const std::string path = dir.file("b.trace");
  TraceWriter w;
  w.set_max_bytes(kMax);
  ASSERT_TRUE(open_writer(w, path));
  constexpr uint64_t kRecords = 1'200'000;
  g_news.store(0);
  t_counting = true;
  for (uint64_t n = 0; n < kRecords; ++n) w.append(record(n));
  t_counting = false;
  const uint64_t news = g_news.load();
  w.close();
  // Chunks were dropped, folded and digested many times over, all without operator new.
  EXPECT_GT(dropped_records(path), kRecords / 2);
  EXPECT_EQ(news, 0u) << "an append called operator new: not async-signal-safe";
}

// The child: a second thread (so that glibc's malloc takes its locks), a 100 µs timer whose
// handler appends 64 records each time, and a main loop of malloc and free only, so that the
// handler seals chunks, drops and folds them while malloc is interrupted.
TraceWriter* g_writer = nullptr;
std::atomic<uint64_t> g_appended{0};
constexpr uint64_t kHandlerRecords = 1'600'000;

void on_alarm(int) {
  const int saved = errno;
  uint64_t n = g_appended.load(std::memory_order_relaxed);
  for (int i = 0; i < 64 && n < kHandlerRecords; ++i, ++n) g_writer->append(record(n));
  g_appended.store(n, std::memory_order_relaxed);
  errno = saved;
}

[[noreturn]] void child(const std::string& path) {
  // The idle thread blocks SIGALRM: the handler runs on the thread calling malloc.
  sigset_t alarm;
  sigemptyset(&alarm);
  sigaddset(&alarm, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &alarm, nullptr);
  std::thread idle([] { ::pause(); });
  idle.detach();
  pthread_sigmask(SIG_UNBLOCK, &alarm, nullptr);
  static TraceWriter w;
  w.set_max_bytes(kMax);
  char err[256];
  if (!w.open(path.c_str(), test_header(), err, sizeof err)) _exit(3);
  g_writer = &w;
  struct sigaction sa{};
  sa.sa_handler = on_alarm;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, nullptr);
  const itimerval every{{0, 100}, {0, 100}};
  setitimer(ITIMER_REAL, &every, nullptr);
  void* held[64] = {};
  for (uint64_t i = 0; g_appended.load(std::memory_order_relaxed) < kHandlerRecords; ++i) {
    const size_t k = i % 64;
    std::free(held[k]);
    held[k] = std::malloc(32 + (i * 7919) % 4000);
  }
  const itimerval stop{};
  setitimer(ITIMER_REAL, &stop, nullptr);
  signal(SIGALRM, SIG_IGN);
  w.close();
  _exit(0);
}

TEST(TraceBoundedSignalSafety, AHandlerAppendingWhileMallocIsInterruptedNeverHangs) {
  ScratchDir dir;
  const std::string path = dir.file("s.trace");
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) child(path);
  // At most 120 s (it takes a few seconds): a fold calling malloc inside the handler hangs on the
  // lock it interrupted, or crashes on the heap it was changing.
  int status = 0;
  bool ended = false;
  for (int i = 0; i < 1200 && !ended; ++i) {
    const pid_t got = waitpid(pid, &status, WNOHANG);
    ended = got == pid;
    if (!ended) usleep(100'000);
  }
  if (!ended) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  ASSERT_TRUE(ended) << "the child hung: an append inside a signal handler blocked";
  ASSERT_TRUE(WIFEXITED(status)) << "the child died of signal " << WTERMSIG(status);
  ASSERT_EQ(WEXITSTATUS(status), 0);
  // Every record the handler appended is delivered or counted.
  std::string error;
  auto reader = trace::Reader::open(path, &error);
  ASSERT_NE(reader, nullptr) << error;
  const ReadResult got = read_trace(path);
  EXPECT_FALSE(got.stats.truncated) << got.stats.reason;
  const trace::DroppedSpan* d = reader->dropped();
  ASSERT_NE(d, nullptr);
  EXPECT_GT(d->records, kHandlerRecords / 2);
  EXPECT_EQ(got.events.size() + d->records - d->kept, kHandlerRecords);
}

}  // namespace
}  // namespace gpumem::test
