// One budget, several processes (issue 20): shared_worker processes under the preload with
// GPUMEM_LIMIT_SCOPE=shared, and on a simulated device they share (SIMCUDA_SHARED). The test
// opens the same ledger and reads it: totals to the byte, the high water within the limit, a
// SIGKILLed process's bytes back (polled, bounded), and a ledger that cannot be opened refusing
// every allocation with the reason.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "gpumem/resources/shared_ledger.h"
#include "process.h"
#include "support.h"

namespace reliability {
namespace {

using gpumem::resources::SharedLedger;
using gpumem::trace::Op;
constexpr uint64_t MiB = 1ull << 20;

class SharedBudget : public ScratchTest {
 protected:
  void SetUp() override {
    ScratchTest::SetUp();
    name_ = "rel" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    budget_shm_ = "/gpumem-budget-" + name_ + "-dev0";
    device_shm_ = "/simcuda-" + name_ + "-dev0";
    shm_unlink(budget_shm_.c_str());
    shm_unlink(device_shm_.c_str());
  }
  void TearDown() override {
    for (pid_t p : pids_) {
      ::kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
    }
    shm_unlink(budget_shm_.c_str());
    shm_unlink(device_shm_.c_str());
    ScratchTest::TearDown();
  }

  std::vector<std::string> budget_env(const std::string& limit, const std::string& trace) const {
    return child_environment(true, {"GPUMEM_LIMIT=" + limit, "GPUMEM_LIMIT_SCOPE=shared",
                                    "GPUMEM_LIMIT_NAME=" + name_, "GPUMEM_TRACE=" + trace});
  }
  // Starts a worker whose output goes to dir_/<tag>.out and .err.
  pid_t spawn(const std::string& tag, const std::vector<std::string>& args,
              const std::vector<std::string>& env) {
    std::vector<std::string> argv{RELIABILITY_SHARED_WORKER};
    argv.insert(argv.end(), args.begin(), args.end());
    const pid_t pid = start(argv, env, out(tag), dir_ + "/" + tag + ".err");
    if (pid > 0) pids_.push_back(pid);
    return pid;
  }
  std::string out(const std::string& tag) const { return dir_ + "/" + tag + ".out"; }
  // Waits (bounded) until the worker printed "ready" or ended; its output.
  std::string ready(const std::string& tag, pid_t pid) {
    for (int i = 0; i < 30000; ++i) {
      const std::string s = slurp(out(tag));
      if (s.find("ready\n") != std::string::npos) return s;
      if (waitpid(pid, nullptr, WNOHANG) == pid) {
        pids_.erase(std::find(pids_.begin(), pids_.end(), pid));
        return slurp(out(tag)) + slurp(dir_ + "/" + tag + ".err");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return "(timed out) " + slurp(out(tag));
  }
  void end(pid_t pid) {
    ::kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pids_.erase(std::find(pids_.begin(), pids_.end(), pid));
  }
  std::unique_ptr<SharedLedger> ledger(const std::string& shm, uint64_t limit) {
    char err[512] = {};
    std::unique_ptr<SharedLedger> l(SharedLedger::open(shm.c_str(), limit, 0600, err, sizeof err));
    EXPECT_NE(l, nullptr) << err;
    return l;
  }
  // Polls (bounded) until the ledger, its dead processes reclaimed, holds `want`.
  static bool comes_back_to(SharedLedger& l, uint64_t want) {
    for (int i = 0; i < 20000; ++i) {
      l.reclaim_dead();
      if (l.total() == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
  // Bytes the trace's process held at its end (successful allocations less frees).
  static uint64_t live_at_end(const LoadedTrace& t) {
    std::map<uint64_t, uint64_t> live;
    for (const auto& r : t.records) {
      if (r.result != 0) continue;
      if (static_cast<Op>(r.op) == Op::alloc) live[r.address] = r.bytes;
      if (static_cast<Op>(r.op) == Op::free) live.erase(r.address);
    }
    uint64_t sum = 0;
    for (const auto& [a, b] : live) sum += b;
    return sum;
  }

  std::string name_, budget_shm_, device_shm_;
  std::vector<pid_t> pids_;
};

TEST_F(SharedBudget, ProcessesHoldOneCapAndAKilledOnesBytesComeBack) {
  const uint64_t kLimit = 64 * MiB;
  auto l = ledger(budget_shm_, kLimit);
  ASSERT_NE(l, nullptr);
  struct Holder {
    std::string tag;
    std::vector<std::string> sizes;
    uint64_t held;
    pid_t pid = -1;
  };
  std::vector<Holder> hs = {{"a", {std::to_string(10 * MiB), std::to_string(5 * MiB)}, 15 * MiB},
                            {"b", {std::to_string(20 * MiB)}, 20 * MiB},
                            {"c", {std::to_string(15 * MiB), "1000"}, 15 * MiB + 1000}};
  for (auto& h : hs) {
    std::vector<std::string> args{"hold"};
    args.insert(args.end(), h.sizes.begin(), h.sizes.end());
    h.pid = spawn(h.tag, args, budget_env("64MiB", dir_ + "/" + h.tag + ".trace"));
    ASSERT_GT(h.pid, 0);
    const std::string s = ready(h.tag, h.pid);
    ASSERT_EQ(s.find("fail"), std::string::npos) << s;
    ASSERT_NE(s.find("ready"), std::string::npos) << s;
  }
  const uint64_t held = 50 * MiB + 1000;
  EXPECT_EQ(l->total(), held);
  // A fourth process: 14 MiB would pass the budget, 13 MiB fits; its capacity query then says
  // what the budget has left, not what its own process holds.
  const pid_t d = spawn("d", {"hold", std::to_string(14 * MiB), std::to_string(13 * MiB)},
                        budget_env("64MiB", dir_ + "/d.trace"));
  const std::string ds = ready("d", d);
  EXPECT_NE(ds.find("alloc 14680064 fail 2\n"), std::string::npos) << ds;  // cudaErrorMemoryAllocation
  EXPECT_NE(ds.find("alloc 13631488 ok\n"), std::string::npos) << ds;
  EXPECT_NE(ds.find("info " + std::to_string(kLimit - held - 13 * MiB) + " " +
                    std::to_string(kLimit) + "\n"),
            std::string::npos)
      << ds;
  EXPECT_EQ(l->total(), held + 13 * MiB);
  EXPECT_LE(l->high_water(), kLimit);

  // SIGKILL b (20 MiB), not reaped: its bytes come back, and a new process can have them.
  ::kill(hs[1].pid, SIGKILL);
  EXPECT_TRUE(comes_back_to(*l, held + 13 * MiB - 20 * MiB)) << l->total();
  std::vector<std::string> env = budget_env("64MiB", dir_ + "/e.trace");
  env.push_back("WORKER_EXIT=1");
  const pid_t e = spawn("e", {"hold", std::to_string(20 * MiB)}, env);
  const std::string es = ready("e", e);
  EXPECT_NE(es.find("alloc 20971520 ok\n"), std::string::npos) << es;
  ASSERT_EQ(wait_for(e, "", "").status, 0);
  pids_.erase(std::find(pids_.begin(), pids_.end(), e));
  EXPECT_EQ(l->total(), held + 13 * MiB - 20 * MiB);  // e freed what it took

  // The traces agree with the ledger: what the live processes hold, to the byte, and each
  // records the budget it belonged to.
  for (auto& h : hs) end(h.pid);
  end(d);
  uint64_t traced = 0;
  for (const std::string tag : {"a", "c", "d", "e"}) {
    const LoadedTrace t = load_trace(dir_ + "/" + tag + ".trace");
    ASSERT_TRUE(t.opened) << t.error;
    EXPECT_NE(std::string(t.header.config).find("GPUMEM_LIMIT_NAME=" + name_ + "\n"),
              std::string::npos)
        << t.header.config;
    EXPECT_NE(std::string(t.header.config).find("GPUMEM_LIMIT_SCOPE=shared\n"), std::string::npos);
    traced += live_at_end(t);
  }
  EXPECT_EQ(traced, held - 20 * MiB + 13 * MiB);
  EXPECT_TRUE(comes_back_to(*l, 0)) << l->total();  // everyone is gone
}

TEST_F(SharedBudget, ChurningProcessesNeverPassTheBudget) {
  const uint64_t kLimit = 24 * MiB;
  auto l = ledger(budget_shm_, kLimit);
  ASSERT_NE(l, nullptr);
  constexpr int kProcs = 4;
  std::vector<pid_t> ps;
  for (int k = 0; k < kProcs; ++k) {
    const std::string tag = "w" + std::to_string(k);
    ps.push_back(spawn(tag, {"churn", "300", std::to_string(k + 1)},
                       budget_env("24MiB", dir_ + "/" + tag + ".trace")));
    ASSERT_GT(ps.back(), 0);
  }
  uint64_t ok = 0, fail = 0;
  for (int k = 0; k < kProcs; ++k) {
    const std::string tag = "w" + std::to_string(k);
    const Outcome o = wait_for(ps[k], out(tag), dir_ + "/" + tag + ".err");
    pids_.erase(std::find(pids_.begin(), pids_.end(), ps[k]));
    ASSERT_EQ(o.status, 0) << o.err;
    unsigned long long n = 0, m = 0;
    ASSERT_EQ(std::sscanf(o.out.c_str(), "ok %llu fail %llu", &n, &m), 2) << o.out;
    const LoadedTrace t = load_trace(dir_ + "/" + tag + ".trace");
    ASSERT_TRUE(t.opened) << t.error;
    uint64_t allocs = 0, refused = 0;
    for (const auto& r : t.records) {
      if (static_cast<Op>(r.op) == Op::alloc && r.result == 0) ++allocs;
      if (static_cast<Op>(r.op) != Op::alloc_failed) continue;
      ++refused;
      // Refused only when it would not fit beside what every process held then (aux: the
      // budget's total the refusal saw).
      EXPECT_LE(r.aux, kLimit);
      EXPECT_GT(r.aux + r.bytes, kLimit) << "a refusal of a request that fitted";
    }
    EXPECT_EQ(allocs, n);
    EXPECT_EQ(refused, m);
    EXPECT_EQ(live_at_end(t), 0u);
    ok += n;
    fail += m;
  }
  // Up to 16 live blocks of up to 8 MiB each: the processes ran into the budget and each other.
  EXPECT_GT(fail, 0u);
  EXPECT_GT(ok, 0u);
  EXPECT_LE(l->high_water(), kLimit);  // kept under the ledger's lock: no instant passed it
  EXPECT_GT(l->high_water(), kLimit / 2);
  EXPECT_EQ(l->total(), 0u);  // no double counting, no lost update
}

TEST_F(SharedBudget, ALedgerThatCannotBeOpenedRefusesEveryAllocation) {
  auto other = ledger(budget_shm_, 32 * MiB);  // the budget already exists with another limit
  ASSERT_NE(other, nullptr);
  std::vector<std::string> env = budget_env("64MiB", dir_ + "/x.trace");
  env.push_back("WORKER_EXIT=1");
  const pid_t x = spawn("x", {"hold", "4096"}, env);
  const std::string s = ready("x", x);
  EXPECT_NE(s.find("alloc 4096 fail 2\n"), std::string::npos) << s;
  ASSERT_EQ(wait_for(x, "", "").status, 0);
  pids_.erase(std::find(pids_.begin(), pids_.end(), x));
  const std::string err = slurp(dir_ + "/x.err");
  EXPECT_NE(err.find("GPUMEM_LIMIT_NAME=" + name_ + ": the shared ledger /dev/shm" + budget_shm_ +
                     " already has a limit of 33554432 bytes (this process asks for 67108864)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("Every allocation on device 0 is refused"), std::string::npos) << err;
  EXPECT_EQ(other->total(), 0u);
}

// simcuda's device shared by processes (no preload): the capacity is the machine's, a killed
// process's memory comes back.
TEST_F(SharedBudget, SimulatedDeviceSharedByProcesses) {
  const uint64_t kMemory = 64 * MiB;
  const std::vector<std::string> env =
      child_environment(false, {"SIMCUDA_SHARED=" + name_, "SIMCUDA_MEMORY=64MiB"});
  const pid_t a = spawn("a", {"hold", std::to_string(40 * MiB)}, env);
  const std::string as = ready("a", a);
  ASSERT_NE(as.find("alloc 41943040 ok\n"), std::string::npos) << as;
  EXPECT_NE(as.find("info " + std::to_string(24 * MiB) + " " + std::to_string(kMemory)),
            std::string::npos)
      << as;
  const pid_t b = spawn("b", {"hold", std::to_string(30 * MiB), std::to_string(20 * MiB)}, env);
  const std::string bs = ready("b", b);
  EXPECT_NE(bs.find("alloc 31457280 fail 2\n"), std::string::npos) << bs;
  EXPECT_NE(bs.find("alloc 20971520 ok\n"), std::string::npos) << bs;
  EXPECT_NE(bs.find("info " + std::to_string(4 * MiB) + " "), std::string::npos) << bs;
  auto device = ledger(device_shm_, kMemory);
  ASSERT_NE(device, nullptr);
  EXPECT_EQ(device->total(), 60 * MiB);
  ::kill(a, SIGKILL);
  EXPECT_TRUE(comes_back_to(*device, 20 * MiB)) << device->total();
  std::vector<std::string> env_c = env;
  env_c.push_back("WORKER_EXIT=1");
  const pid_t c = spawn("c", {"hold", std::to_string(40 * MiB)}, env_c);
  const std::string cs = ready("c", c);
  EXPECT_NE(cs.find("alloc 41943040 ok\n"), std::string::npos) << cs;
  ASSERT_EQ(wait_for(c, "", "").status, 0);
  pids_.erase(std::find(pids_.begin(), pids_.end(), c));
  EXPECT_EQ(device->total(), 20 * MiB);
}

// GPUMEM_LIMIT_GROUP: the budget's ledger is created 0660 for that group (by name or number)
// instead of 0600, and the trace's header records the setting.
TEST_F(SharedBudget, AGroupSharedBudgetsLedgerIsItsGroups) {
  const std::string gid = std::to_string(getgid());
  std::vector<std::string> env = budget_env("64MiB", dir_ + "/group.trace");
  env.push_back("GPUMEM_LIMIT_GROUP=" + gid);
  const pid_t a = spawn("group", {"hold", "4096"}, env);
  const std::string as = ready("group", a);
  ASSERT_NE(as.find("alloc 4096 ok\n"), std::string::npos) << as;
  struct stat st {};
  ASSERT_EQ(stat(("/dev/shm" + budget_shm_).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, getgid());
  end(a);
  const LoadedTrace tr = load_trace(dir_ + "/group.trace");
  ASSERT_TRUE(tr.opened) << tr.error;
  EXPECT_NE(std::string(tr.header.config).find("GPUMEM_LIMIT_GROUP=" + gid + "\n"),
            std::string::npos)
      << tr.header.config;
  shm_unlink(budget_shm_.c_str());
  const pid_t b = spawn("plain", {"hold", "4096"}, budget_env("64MiB", dir_ + "/plain.trace"));
  const std::string bs = ready("plain", b);
  ASSERT_NE(bs.find("alloc 4096 ok\n"), std::string::npos) << bs;
  ASSERT_EQ(stat(("/dev/shm" + budget_shm_).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  end(b);
}

// Settings the preload (and `gpumem run`) refuse before the program runs: status 2, one line.
TEST_F(SharedBudget, BadSettingsExitTwoWithOneLine) {
  struct Case {
    std::vector<std::string> env;
    std::string said;
  };
  const std::vector<Case> cases = {
      {{"GPUMEM_LIMIT=1GiB", "GPUMEM_LIMIT_SCOPE=global"},
       "GPUMEM_LIMIT_SCOPE='global' is not valid; accepted: process"},
      {{"GPUMEM_LIMIT=1GiB", "GPUMEM_LIMIT_SCOPE=shared"}, "GPUMEM_LIMIT_NAME='' is not valid"},
      {{"GPUMEM_LIMIT=1GiB", "GPUMEM_LIMIT_SCOPE=shared", "GPUMEM_LIMIT_NAME=a/b"},
       "GPUMEM_LIMIT_NAME='a/b' is not valid; accepted: the shared budget's name"},
      {{"GPUMEM_LIMIT_SCOPE=shared", "GPUMEM_LIMIT_NAME=x"},
       "GPUMEM_LIMIT_SCOPE='shared' is not valid; accepted: shared together with GPUMEM_LIMIT"},
      {{"GPUMEM_LIMIT=1GiB", "GPUMEM_LIMIT_NAME=x"},
       "GPUMEM_LIMIT_NAME='x' is not valid; accepted: a name only together with "
       "GPUMEM_LIMIT_SCOPE=shared"},
      {{"GPUMEM_LIMIT=1GiB", "GPUMEM_LIMIT_GROUP=0"},
       "GPUMEM_LIMIT_GROUP='0' is not valid; accepted: a group only together with "
       "GPUMEM_LIMIT_SCOPE=shared"},
      {{"GPUMEM_LIMIT=1GiB", "GPUMEM_LIMIT_SCOPE=shared", "GPUMEM_LIMIT_NAME=x",
        "GPUMEM_LIMIT_GROUP=no-such-group-gpumem"},
       "GPUMEM_LIMIT_GROUP='no-such-group-gpumem' is not valid; accepted: a group name from "
       "/etc/group or a numeric group id"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.said);
    std::vector<std::string> env = c.env;
    env.push_back("GPUMEM_TRACE=" + dir_ + "/bad.trace");
    const Outcome o = run({RELIABILITY_SHARED_WORKER, "hold", "4096"}, child_environment(true, env),
                          dir_);
    EXPECT_EQ(o.status, 2) << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    EXPECT_NE(o.err.find(c.said), std::string::npos) << o.err;
  }
  const Outcome cli = run({GPUMEM_CLI, "run", "--device", "sim", "--trace", dir_ + "/cli.trace",
                           "--limit", "1GiB", "--shared-limit", "a b", "--",
                           RELIABILITY_SHARED_WORKER, "hold", "4096"},
                          child_environment(false, {}), dir_);
  EXPECT_EQ(cli.status, 2) << cli.err;
  EXPECT_NE(cli.err.find("gpumem run: --shared-limit: GPUMEM_LIMIT_NAME='a b' is not valid"),
            std::string::npos)
      << cli.err;
  const Outcome sim = run({RELIABILITY_SHARED_WORKER, "hold", "4096"},
                          child_environment(false, {"SIMCUDA_SHARED=../x"}), dir_);
  EXPECT_EQ(sim.status, 2) << sim.err;
  EXPECT_NE(sim.err.find("simcuda: SIMCUDA_SHARED='../x' is not valid"), std::string::npos)
      << sim.err;
}

// `gpumem run --shared-limit NAME --limit L`: the program's allocations charge budget NAME.
TEST_F(SharedBudget, GpumemRunSharesTheLimit) {
  auto l = ledger(budget_shm_, 64 * MiB);
  ASSERT_NE(l, nullptr);
  ASSERT_TRUE(l->charge_as_for_testing(getppid(), SharedLedger::start_time_of(getppid()),
                                       60 * MiB));
  const Outcome o = run({GPUMEM_CLI, "run", "--device", "sim", "--trace", dir_ + "/run.trace",
                         "--limit", "64MiB", "--shared-limit", name_, "--",
                         RELIABILITY_SHARED_WORKER, "hold", std::to_string(5 * MiB),
                         std::to_string(4 * MiB)},
                        child_environment(false, {"WORKER_EXIT=1"}), dir_);
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_NE(o.out.find("alloc 5242880 fail 2\nalloc 4194304 ok\ninfo 0 67108864\n"),
            std::string::npos)
      << o.out;
  EXPECT_EQ(l->total(), 60 * MiB);
}

// The seed's scenario: a process that takes 90 % of one 16 GiB device at start (a fixed pool
// sized by GPUMEM_LIMIT=90%, TensorFlow's preallocation) leaves a trainer beside it no room: it
// stops with out-of-memory (status 3) at its first allocation. With growth pools both fit and the
// trainer trains to the end. The trainer's trace says why (its pool's first segment was refused),
// and so does `gpumem report` over both traces (the holder's 14.4 GiB reserved for 4 KiB, the
// trainer's request refused by the device).
TEST_F(SharedBudget, TwoProcessesOnOneDeviceFixedPoolStarvesGrowthFits) {
  for (const std::string pool : {"fixed", "growth"}) {
    SCOPED_TRACE(pool);
    shm_unlink(device_shm_.c_str());
    const std::vector<std::string> sim = {"SIMCUDA_SHARED=" + name_, "SIMCUDA_MEMORY=16GiB",
                                          "GPUMEM_POOL=" + pool, "GPUMEM_LIMIT=90%"};
    std::vector<std::string> first = sim;
    first.push_back("GPUMEM_TRACE=" + dir_ + "/first-" + pool + ".trace");
    const pid_t a = spawn("first-" + pool, {"hold", "4096"}, child_environment(true, first));
    const std::string as = ready("first-" + pool, a);
    ASSERT_NE(as.find("alloc 4096 ok\n"), std::string::npos) << as;
    std::vector<std::string> second = sim;
    second.push_back("GPUMEM_TRACE=" + dir_ + "/train-" + pool + ".trace");
    const Outcome t = run({GPUMEM_TRAIN, "--epochs", "1", "--samples", "256"},
                          child_environment(true, second), dir_);
    const LoadedTrace tr = load_trace(dir_ + "/train-" + pool + ".trace");
    ASSERT_TRUE(tr.opened) << tr.error;
    uint64_t refused = 0, first_refused_bytes = 0;
    for (const auto& r : tr.records)
      if (static_cast<Op>(r.op) == Op::alloc_failed && refused++ == 0)
        first_refused_bytes = r.bytes;
    if (pool == "fixed") {
      EXPECT_EQ(t.status, 3) << t.out << t.err;  // the trainer's out-of-memory status
      EXPECT_GT(refused, 0u);
    } else {
      EXPECT_EQ(t.status, 0) << t.out << t.err;
      EXPECT_EQ(refused, 0u);
    }
    end(a);
    // `gpumem report` over both traces shows why: under the fixed pool the first process holds
    // 90 % of the device (its pool, the 90 % cap rounded down to 512 B) for 4 KiB, and the
    // trainer's first request is refused by the device itself; under the growth pool neither
    // holds more than it uses, and nothing is refused.
    const std::string json_path = dir_ + "/report-" + pool + ".json";
    const Outcome rep =
        run({GPUMEM_CLI, "report", "--json", json_path, dir_ + "/first-" + pool + ".trace",
             dir_ + "/train-" + pool + ".trace"},
            child_environment(false, {}), dir_);
    ASSERT_EQ(rep.status, 0) << rep.out << rep.err;
    const nlohmann::json doc = nlohmann::json::parse(slurp(json_path), nullptr, false);
    ASSERT_TRUE(doc.is_object());
    ASSERT_EQ(doc["traces"].size(), 2u);
    ASSERT_EQ(doc["devices"].size(), 2u);
    const nlohmann::json& holder = doc["devices"][0];
    const uint64_t cap = 16ull * 1024 * MiB * 90 / 100;  // 90 % of 16 GiB, resolved
    EXPECT_EQ(holder["limit_bytes"], cap);
    EXPECT_EQ(holder["peak"]["allocated_bytes"], 4096);
    if (pool == "fixed") {
      EXPECT_EQ(holder["peak"]["reserved_bytes"], cap / 512 * 512);
      ASSERT_EQ(doc["ooms"].size(), refused > 100 ? 100u : refused);
      const nlohmann::json& o = doc["ooms"][0];
      EXPECT_EQ(o["trace_index"], 1);
      EXPECT_EQ(o["refused_by"], "device");
      EXPECT_EQ(o["requested_bytes"], first_refused_bytes);
      EXPECT_EQ(o["capacity_bytes"], 16ull * 1024 * MiB);
    } else {
      EXPECT_EQ(holder["peak"]["reserved_bytes"], 2 * MiB);  // one small segment
      EXPECT_EQ(doc["ooms"].size(), 0u);
      EXPECT_LT(doc["devices"][1]["peak"]["reserved_bytes"].get<uint64_t>(), 64 * MiB);
    }
  }
}

}  // namespace
}  // namespace reliability
