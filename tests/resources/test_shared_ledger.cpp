// The shared-memory ledger behind GPUMEM_LIMIT_SCOPE=shared and SIMCUDA_SHARED, with real
// processes: forked children charge one ledger; the parent checks the totals to the byte, kills
// a child and waits (polling, no fixed sleep) for its charge to come back.
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gpumem/resources/device_resource.h"
#include "gpumem/resources/limit_resource.h"
#include "gpumem/resources/shared_ledger.h"
#include "gpumem/resources/simulated_upstream.h"
#include "test_support.h"

namespace gpumem::resources::testing {
namespace {

// A name of its own per test and run; removed at the end.
struct LedgerName {
  std::string path;
  explicit LedgerName(const char* test) {
    path = "/gpumem-test-" + std::to_string(getpid()) + "-" + test;
    shm_unlink(path.c_str());
  }
  ~LedgerName() { shm_unlink(path.c_str()); }
};

std::unique_ptr<SharedLedger> open_ledger(const LedgerName& n, uint64_t limit,
                                          unsigned mode = 0600) {
  char err[512] = {};
  std::unique_ptr<SharedLedger> l(SharedLedger::open(n.path.c_str(), limit, mode, err, sizeof err));
  EXPECT_NE(l, nullptr) << err;
  return l;
}

// Children that charge a ledger, report on a pipe, and wait to be killed.
struct Children {
  std::vector<pid_t> pids;
  ~Children() {
    for (pid_t p : pids) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
    }
  }
};

bool read_all(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Polls `done` up to 20 s (a loaded sanitizer run is slow); true when it became true.
template <class F>
bool eventually(F done) {
  for (int i = 0; i < 20000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

TEST(SharedLedger, ProcessesChargeOneBudgetExactlyAndNeverPassIt) {
  LedgerName name("exact");
  constexpr uint64_t kLimit = 100 * MiB;
  auto parent = open_ledger(name, kLimit);
  ASSERT_NE(parent, nullptr);
  constexpr int kProcs = 6;
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  Children kids;
  for (int k = 0; k < kProcs; ++k) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(pipefd[0]);
      char err[512];
      SharedLedger* l = SharedLedger::open(name.path.c_str(), kLimit, 0600, err, sizeof err);
      if (l == nullptr) _exit(3);
      // Each child races the others for a third of the budget many times; what it holds at the
      // end is (k + 1) MiB + k bytes, a number of its own.
      // A child that lost every try goes on trying, yielding, for up to 20 s: on a loaded machine
      // two others can be descheduled while holding their thirds for the whole of its 400 tries.
      uint64_t won = 0;
      for (int i = 0; i < 400 || (won == 0 && i < 400 + 200'000); ++i) {
        const uint64_t b = kLimit / 3 + static_cast<uint64_t>(i % 7) * KiB;
        if (l->charge(b)) {
          ++won;
          l->uncharge(b);
        } else if (i >= 400) {
          usleep(100);
        }
      }
      const uint64_t keep = (static_cast<uint64_t>(k) + 1) * MiB + static_cast<uint64_t>(k);
      // Three others may hold a third each for a moment (3 * (kLimit / 3) < kLimit): retry.
      bool charged = false;
      for (int i = 0; i < 200'000 && !(charged = l->charge(keep)); ++i) usleep(100);
      const bool ok = charged && l->mine() == keep;
      const uint64_t msg[2] = {ok ? keep : 0, won};
      if (write(pipefd[1], msg, sizeof msg) != static_cast<ssize_t>(sizeof msg)) _exit(4);
      pause();
      _exit(0);
    }
    kids.pids.push_back(pid);
  }
  close(pipefd[1]);
  uint64_t sum = 0;
  for (int k = 0; k < kProcs; ++k) {
    uint64_t msg[2];
    ASSERT_TRUE(read_all(pipefd[0], msg, sizeof msg));
    ASSERT_NE(msg[0], 0u) << "a child could not charge its share";
    EXPECT_GT(msg[1], 0u);
    sum += msg[0];
  }
  close(pipefd[0]);
  // 6 MiB * 7 / 2 + 15 bytes, charged by six processes.
  EXPECT_EQ(sum, 21 * MiB + 15);
  EXPECT_EQ(parent->total(), sum);
  EXPECT_LE(parent->high_water(), kLimit);  // recorded under the lock: nobody ever passed it
  EXPECT_GT(parent->high_water(), kLimit / 3);
  SharedLedger::Slot slots[16];
  ASSERT_EQ(parent->slots(slots, 16), kProcs);  // the parent charged nothing: it has no slot
  uint64_t by_slots = 0;
  for (int i = 0; i < kProcs; ++i) by_slots += slots[i].charge;
  EXPECT_EQ(by_slots, sum);

  // SIGKILL the child holding 3 MiB + 2 B; not reaped (a zombie): its charge comes back.
  kill(kids.pids[2], SIGKILL);
  EXPECT_TRUE(eventually([&] {
    parent->reclaim_dead();
    return parent->total() == sum - (3 * MiB + 2);
  })) << parent->total();
  // A charge that needs the dead child's bytes fits without anyone reclaiming first.
  kill(kids.pids[5], SIGKILL);
  waitpid(kids.pids[5], nullptr, 0);  // reaped: no /proc entry at all
  // Fits only with the reaped child's 6 MiB + 5 B, reclaimed inside the charge.
  const uint64_t room = kLimit - (sum - (3 * MiB + 2)) + (6 * MiB + 5);
  EXPECT_FALSE(parent->charge(room + 1));
  EXPECT_TRUE(parent->charge(room));
  EXPECT_EQ(parent->total(), kLimit);
  EXPECT_EQ(parent->mine(), room);
  parent->uncharge(room);
}

TEST(SharedLedger, APidReusedByAnotherProcessDoesNotKeepItsCharge) {
  LedgerName name("reuse");
  auto l = open_ledger(name, 64 * MiB);
  ASSERT_NE(l, nullptr);
  const pid_t live = getppid();  // alive for the whole test
  const uint64_t start = SharedLedger::start_time_of(live);
  ASSERT_NE(start, 0u);
  EXPECT_TRUE(SharedLedger::slot_alive(live, start));
  EXPECT_FALSE(SharedLedger::slot_alive(live, start + 1));
  // A slot of a process that had the live pid before (another start time): dead, reclaimed.
  ASSERT_TRUE(l->charge_as_for_testing(live, start + 1, 5 * MiB));
  // The live process's own slot (its start time): kept.
  ASSERT_TRUE(l->charge_as_for_testing(live, start, 7 * MiB));
  EXPECT_EQ(l->total(), 12 * MiB);
  EXPECT_EQ(l->reclaim_dead(), 5 * MiB);
  EXPECT_EQ(l->total(), 7 * MiB);
  SharedLedger::Slot s[4];
  ASSERT_EQ(l->slots(s, 4), 1);
  EXPECT_EQ(s[0].pid, live);
  EXPECT_EQ(s[0].charge, 7 * MiB);
}

TEST(SharedLedger, AnotherLimitOrAnotherUserIsRefusedWithTheReason) {
  LedgerName name("refuse");
  auto l = open_ledger(name, 64 * MiB);
  ASSERT_NE(l, nullptr);
  char err[512] = {};
  EXPECT_EQ(SharedLedger::open(name.path.c_str(), 32 * MiB, 0600, err, sizeof err), nullptr);
  EXPECT_NE(std::string(err).find("already has a limit of 67108864 bytes (this process asks for "
                                  "33554432)"),
            std::string::npos)
      << err;
  struct stat st {};
  const std::string file = "/dev/shm" + name.path;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  if (geteuid() != 0) GTEST_SKIP() << "another user needs root to become";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(5);
    char e[512] = {};
    SharedLedger* other = SharedLedger::open(name.path.c_str(), 64 * MiB, 0600, e, sizeof e);
    const bool said = std::string(e).find("Permission denied") != std::string::npos &&
                      std::string(e).find("another user") != std::string::npos;
    _exit(other == nullptr && said ? 0 : 6);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// A group-shared budget (GPUMEM_LIMIT_GROUP): the ledger is created 0660 and owned by the group
// asked for, so another user of that group opens it; a group the process may not give a file to
// is refused with the reason and leaves no ledger behind.
TEST(SharedLedger, AGroupSharedLedgerIsItsGroupsToOpen) {
  LedgerName name("group");
  char err[512] = {};
  std::unique_ptr<SharedLedger> l(SharedLedger::open(name.path.c_str(), 64 * MiB, 0660, err,
                                                     sizeof err, static_cast<long>(getgid())));
  ASSERT_NE(l, nullptr) << err;
  struct stat st {};
  const std::string file = "/dev/shm" + name.path;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, getgid());
  if (geteuid() != 0) GTEST_SKIP() << "another user, and a group not ours, need root";
  // As root any group will do: 4242 here; a user of that group (not its owner) opens it.
  LedgerName shared("group2");
  std::unique_ptr<SharedLedger> g(
      SharedLedger::open(shared.path.c_str(), 64 * MiB, 0660, err, sizeof err, 4242));
  ASSERT_NE(g, nullptr) << err;
  ASSERT_TRUE(g->charge(3 * MiB));
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  LedgerName foreign("group3");
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(4242) != 0 || setuid(65534) != 0) _exit(5);
    char e[512] = {};
    SharedLedger* member = SharedLedger::open(shared.path.c_str(), 64 * MiB, 0660, e, sizeof e);
    if (member == nullptr || member->total() != 3 * MiB) _exit(6);
    // A group it is not in: refused, with the reason, and no ledger left behind.
    SharedLedger* other =
        SharedLedger::open(foreign.path.c_str(), 64 * MiB, 0660, e, sizeof e, 4243);
    const bool said = std::string(e).find("to the group asked for") != std::string::npos;
    struct stat gone {};
    const bool removed = stat(("/dev/shm" + foreign.path).c_str(), &gone) != 0;
    _exit(other == nullptr && said && removed ? 0 : 7);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(SharedLedger, ASharedLimitChargesTheLedgerAndRefusesWithoutOne) {
  LedgerName name("limit");
  auto l = open_ledger(name, 10 * MiB);
  ASSERT_NE(l, nullptr);
  SimulatedUpstream up;
  DeviceResource dev(up);
  LimitResource shared(dev, 10 * MiB, l.get());
  ASSERT_TRUE(l->charge_as_for_testing(getppid(), SharedLedger::start_time_of(getppid()), 6 * MiB));
  Result a = shared.allocate(req(4 * MiB));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(shared.used_bytes(), 10 * MiB);  // the budget's total, not this process's 4 MiB
  Result b = shared.allocate(req(1));
  EXPECT_EQ(b.status, Status::out_of_memory);
  EXPECT_EQ(b.in_use, 10 * MiB);
  ASSERT_TRUE(shared.deallocate(a.ptr, sync_free(4 * MiB)).ok());
  EXPECT_EQ(l->total(), 6 * MiB);
  EXPECT_EQ(l->mine(), 0u);

  LimitResource broken(dev, 10 * MiB, nullptr);  // the ledger could not be opened
  Result c = broken.allocate(req(1));
  EXPECT_EQ(c.status, Status::out_of_memory);
  EXPECT_EQ(up.in_use(0), 0u);
  EXPECT_EQ(up.alloc_calls(), 1u);  // only the shared one's 4 MiB reached the device
}

}  // namespace
}  // namespace gpumem::resources::testing
