// `gpumem report` over the traces of the processes of one shared budget: the budget's total over
// time, its peak and when, and what each process held at that peak. Three budget_worker processes
// under GPUMEM_LIMIT_SCOPE=shared (64 MiB, no pool: each holds exactly what it asked for) take
// turns as this test tells them, so the total at every step is known:
//
//   a: +20 MiB (20)   b: +30 MiB (50)   a: -20 MiB (30)   c: +25 MiB (55)
//   a: +10 MiB refused (65 > 64)        a: +9 MiB (64, the peak: a 9, b 30, c 25)
//   b: -30 MiB (34)   c: -25 MiB (9)    a: -9 MiB (0), then all three end.
// A process holds its bytes until it ends (its trace's last write, its exit), not only until its
// last record: OneEndingWhileHoldingHoldsUntilItsEnd sets that time to show it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scratch.h"
#include "shell.h"

extern char** environ;

namespace {

using gpumem::test::ScratchDir;
using gpumem::test::sh;
using nlohmann::json;

constexpr uint64_t kMiB = 1ull << 20;

// One worker: its stdin and stdout are pipes; each command waits for the worker's answer.
class Worker {
 public:
  Worker(const std::vector<std::string>& env) {
    int in[2], out[2];
    // Close-on-exec: a later worker must not keep this one's stdin open (it would never end).
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    std::vector<char*> argv{const_cast<char*>(BUDGET_WORKER), nullptr}, envp;
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    if (posix_spawn(&pid_, BUDGET_WORKER, &fa, nullptr, argv.data(), envp.data()) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    to_ = in[1];
    from_ = out[0];
  }
  ~Worker() { end(); }
  // Sends one command; returns the answer line ("ok", "fail 2"), or "" when the worker is gone.
  std::string say(const std::string& command) {
    const std::string line = command + "\n";
    if (to_ < 0 || write(to_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
      return "";
    std::string answer;
    char c = 0;
    while (read(from_, &c, 1) == 1 && c != '\n') answer += c;
    return answer;
  }
  // Ends its input and waits for it: its exit status (-1 when it did not exit normally).
  int end() {
    if (to_ >= 0) close(to_);
    to_ = -1;
    if (from_ >= 0) close(from_);
    from_ = -1;
    int status = 0;
    if (pid_ <= 0 || waitpid(pid_, &status, 0) != pid_) return -1;
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
};

class BudgetReport : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = "report-test-" + std::to_string(getpid());
    shm_unlink(shm().c_str());
  }
  void TearDown() override { shm_unlink(shm().c_str()); }
  std::string shm() const { return "/gpumem-budget-" + name_ + "-dev0"; }

  std::vector<std::string> env(const std::string& trace) const {
    std::vector<std::string> e;
    for (char** p = environ; *p != nullptr; ++p) {
      const std::string kv = *p;
      if (kv.rfind("GPUMEM_", 0) == 0 || kv.rfind("LD_PRELOAD=", 0) == 0 ||
          kv.rfind("LD_LIBRARY_PATH=", 0) == 0 || kv.rfind("SIMCUDA_", 0) == 0)
        continue;
      e.push_back(kv);
    }
    e.push_back("LD_PRELOAD=" GPUMEM_PRELOAD_PATH);
    e.push_back("LD_LIBRARY_PATH=" GPUMEM_SIMCUDA_DIR);
    e.push_back("GPUMEM_TRACE=" + trace);
    e.push_back("GPUMEM_LIMIT=64MiB");
    e.push_back("GPUMEM_LIMIT_SCOPE=shared");
    e.push_back("GPUMEM_LIMIT_NAME=" + name_);
    return e;
  }

  std::string name_;
};

// The absolute time (monotonic ns) of the first record of `trace` with this op and bytes.
uint64_t record_time(const std::string& trace, const std::string& op, uint64_t bytes) {
  const auto dump = sh(GPUMEM_CLI " dump " + trace);
  std::istringstream lines(dump.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("{\"op\"", 0) != 0) continue;
    const json r = json::parse(line, nullptr, false);
    if (r.is_object() && r["op"] == op && r["bytes"] == bytes) return r["t_ns"].get<uint64_t>();
  }
  return 0;
}

TEST_F(BudgetReport, ThreeProcessesTotalPeakAndSharesExact) {
  ScratchDir dir("gpumem-budget");
  const std::string ta = dir / "a.trace", tb = dir / "b.trace", tc = dir / "c.trace";
  {
    Worker a(env(ta)), b(env(tb)), c(env(tc));
    ASSERT_EQ(a.say("a " + std::to_string(20 * kMiB)), "ok");
    ASSERT_EQ(b.say("a " + std::to_string(30 * kMiB)), "ok");
    ASSERT_EQ(a.say("f 0"), "ok");
    ASSERT_EQ(c.say("a " + std::to_string(25 * kMiB)), "ok");
    ASSERT_EQ(a.say("a " + std::to_string(10 * kMiB)), "fail 2");  // 65 MiB > the 64 MiB budget
    ASSERT_EQ(a.say("a " + std::to_string(9 * kMiB)), "ok");
    ASSERT_EQ(b.say("f 0"), "ok");
    ASSERT_EQ(c.say("f 0"), "ok");
    ASSERT_EQ(a.say("f 1"), "ok");
    EXPECT_EQ(a.end(), 0);
    EXPECT_EQ(b.end(), 0);
    EXPECT_EQ(c.end(), 0);
  }
  const auto rep = sh(GPUMEM_CLI " report --json " + (dir / "r.json") + " --html " +
                      (dir / "r.html") + " " + ta + " " + tb + " " + tc);
  ASSERT_EQ(rep.status, 0) << rep.out;
  std::ifstream in(dir / "r.json");
  const json r = json::parse(in, nullptr, false);
  ASSERT_TRUE(r.is_object());
  ASSERT_EQ(r["budgets"].size(), 1u);
  const json& b = r["budgets"][0];
  EXPECT_EQ(b["name"], name_);
  EXPECT_EQ(b["device"], 0);
  EXPECT_EQ(b["limit_bytes"], 64 * kMiB);
  EXPECT_EQ(b["peak_bytes"], 64 * kMiB);
  EXPECT_EQ(b["exact"], true);
  ASSERT_EQ(b["processes"].size(), 3u);
  const uint64_t expect_at[] = {9 * kMiB, 30 * kMiB, 25 * kMiB};
  const uint64_t expect_peak[] = {20 * kMiB, 30 * kMiB, 25 * kMiB};
  for (size_t k = 0; k < 3; ++k) {
    const json& p = b["processes"][k];
    EXPECT_EQ(p["trace_index"], k);
    EXPECT_EQ(p["pid"], r["traces"][k]["pid"]);
    EXPECT_EQ(p["bytes_at_peak"], expect_at[k]) << k;
    EXPECT_EQ(p["peak_bytes"], expect_peak[k]) << k;
  }
  // When: a's 9 MiB allocation, on the clock of the budget's first trace (the earliest start).
  uint64_t first = UINT64_MAX;
  for (const json& t : r["traces"]) first = std::min(first, t["clock_base_ns"].get<uint64_t>());
  const uint64_t at = record_time(ta, "alloc", 9 * kMiB);
  ASSERT_NE(at, 0u);
  EXPECT_EQ(b["peak_time_ns"], at - first);
  // The total over time: every step above, in order.
  std::vector<uint64_t> totals = b["timeline"]["total_bytes"];
  std::vector<uint64_t> steps;
  for (uint64_t v : totals)
    if (steps.empty() || steps.back() != v) steps.push_back(v);
  EXPECT_EQ(steps, (std::vector<uint64_t>{20 * kMiB, 50 * kMiB, 30 * kMiB, 55 * kMiB, 64 * kMiB,
                                          34 * kMiB, 9 * kMiB, 0}))
      << b["timeline"].dump();
  // a's refused 10 MiB names the budget: its "what would fit" replays a alone.
  ASSERT_EQ(r["ooms"].size(), 1u);
  EXPECT_EQ(r["ooms"][0]["trace_index"], 0);
  EXPECT_EQ(r["ooms"][0]["refused_by"], "gpumem");
  EXPECT_EQ(r["ooms"][0]["requested_bytes"], 10 * kMiB);
  EXPECT_EQ(r["ooms"][0]["budget"], name_);

  // The same in the terminal summary and the HTML report.
  const auto text = sh(GPUMEM_CLI " report --text " + ta + " " + tb + " " + tc);
  ASSERT_EQ(text.status, 0) << text.out;
  EXPECT_NE(text.out.find("shared budget " + name_ + " on device 0: limit 64.00 MiB, 3 processes\n"
                          "  peak of the total: 64.00 MiB at "),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("  what would fit (replay of this process alone, up to this request; its "
                          "cap is the budget " + name_ + " shared with other processes"),
            std::string::npos)
      << text.out;
  const std::string pid_a = std::to_string(r["traces"][0]["pid"].get<uint32_t>());
  EXPECT_NE(text.out.find("    pid " + pid_a + std::string(8 - pid_a.size(), ' ') +
                          "     9.00 MiB at that peak (14.1% of it), its own peak 20.00 MiB\n"),
            std::string::npos)
      << text.out;
  std::ifstream html_in(dir / "r.html");
  const std::string html((std::istreambuf_iterator<char>(html_in)), std::istreambuf_iterator<char>());
  EXPECT_NE(html.find("\"budgets\":[{\"device\":0,\"exact\":true,\"limit\":67108864,\"name\":\"" +
                      name_ + "\",\"peak\":67108864,"),
            std::string::npos);
  EXPECT_NE(html.find("{\"at_peak\":9437184,\"peak\":20971520,\"pid\":" + pid_a + "}"),
            std::string::npos);
  EXPECT_NE(html.find("id=\"budgets-panel\""), std::string::npos);
}

// b allocates while a, idle since its allocation, still holds 3 MiB: a's trace has no record
// then, and what says a was alive is when its trace was written last (its close at exit). The
// test sets that time (the file system's clock is a few ms coarse) a minute after a began: a then
// holds its 3 MiB until the budget's last record, b's free (not a minute: the timeline ends there).
TEST_F(BudgetReport, OneEndingWhileHoldingHoldsUntilItsEnd) {
  ScratchDir dir("gpumem-budget");
  const std::string ta = dir / "a.trace", tb = dir / "b.trace";
  {
    Worker a(env(ta)), b(env(tb));
    ASSERT_EQ(a.say("a " + std::to_string(3 * kMiB)), "ok");
    ASSERT_EQ(b.say("a " + std::to_string(5 * kMiB)), "ok");
    ASSERT_EQ(b.say("f 0"), "ok");
    EXPECT_EQ(b.end(), 0);
    EXPECT_EQ(a.end(), 0);
  }
  auto report = [&]() {
    const auto rep = sh(GPUMEM_CLI " report --json - " + ta + " " + tb);
    EXPECT_EQ(rep.status, 0) << rep.out;
    return json::parse(rep.out.substr(rep.out.find('{')), nullptr, false);
  };
  json r = report();
  ASSERT_TRUE(r.is_object());
  const uint64_t a_start = r["traces"][0]["start_unix_ns"];
  const timespec times[2] = {{0, UTIME_OMIT},
                             {static_cast<time_t>(a_start / 1000000000 + 60),
                              static_cast<long>(a_start % 1000000000)}};
  ASSERT_EQ(utimensat(AT_FDCWD, ta.c_str(), times, 0), 0);
  r = report();
  ASSERT_TRUE(r.is_object());
  ASSERT_EQ(r["budgets"].size(), 1u);
  const json& b = r["budgets"][0];
  EXPECT_EQ(b["peak_bytes"], 8 * kMiB);
  EXPECT_EQ(b["processes"][0]["bytes_at_peak"], 3 * kMiB);
  EXPECT_EQ(b["processes"][1]["bytes_at_peak"], 5 * kMiB);
  std::vector<uint64_t> totals = b["timeline"]["total_bytes"];
  std::vector<uint64_t> steps;
  for (uint64_t v : totals)
    if (steps.empty() || steps.back() != v) steps.push_back(v);
  EXPECT_EQ(steps, (std::vector<uint64_t>{3 * kMiB, 8 * kMiB, 3 * kMiB}))
      << b["timeline"].dump();
  // a ends 1 ns after b's free, the budget's last record, in the box of that free.
  const uint64_t first = std::min(r["traces"][0]["clock_base_ns"].get<uint64_t>(),
                                  r["traces"][1]["clock_base_ns"].get<uint64_t>());
  const uint64_t b_free = record_time(tb, "free", 5 * kMiB);
  EXPECT_LE(b["timeline"]["t_ns"].back().get<uint64_t>(), b_free + 1 - first);
}

// Traces without a shared budget have none in the report; one process of a budget alone has its
// own section (its total is its own reserved).
TEST_F(BudgetReport, OnlyTracesOfABudgetMakeOne) {
  ScratchDir dir("gpumem-budget");
  const std::string ta = dir / "a.trace", tp = dir / "p.trace";
  {
    Worker a(env(ta));
    ASSERT_EQ(a.say("a " + std::to_string(3 * kMiB)), "ok");
    EXPECT_EQ(a.end(), 0);
    std::vector<std::string> plain = env(tp);
    plain.resize(plain.size() - 2);  // no GPUMEM_LIMIT_SCOPE / NAME: a cap of its own
    Worker p(plain);
    ASSERT_EQ(p.say("a " + std::to_string(5 * kMiB)), "ok");
    EXPECT_EQ(p.end(), 0);
  }
  auto report = [&](const std::string& traces) {
    const auto rep = sh(GPUMEM_CLI " report --json - " + traces);
    EXPECT_EQ(rep.status, 0) << rep.out;
    return json::parse(rep.out.substr(rep.out.find('{')), nullptr, false);
  };
  const json plain = report(tp);
  ASSERT_TRUE(plain.is_object());
  EXPECT_EQ(plain["budgets"], json::array());
  const json both = report(ta + " " + tp);
  ASSERT_TRUE(both.is_object());
  ASSERT_EQ(both["budgets"].size(), 1u);
  EXPECT_EQ(both["budgets"][0]["processes"].size(), 1u);
  EXPECT_EQ(both["budgets"][0]["peak_bytes"], 3 * kMiB);
}

}  // namespace
