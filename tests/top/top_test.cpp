// `gpumem top` against live processes on the simulated device (prefix top.): its snapshot
// (--json, --prometheus) and its screen, driven through tmux, show exactly the numbers `gpumem
// report` gives for the same traces at the same moment; the view survives a killed process, a
// truncated trace and a new process, and re-lays itself out when the pane is resized. The watched
// program (top_prog.cpp) holds its allocations until told to go on, so "the same moment" is any
// moment while it waits. Every wait polls for what it waits for, with a generous timeout.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "scratch.h"
#include "shell.h"
#include "top_support.h"

namespace {

using gpumem::test::Output;
using gpumem::test::ScratchDir;
using gpumem::test::sh;
using gpumem::test::top::wait_for;
using nlohmann::json;

const std::string kCli = GPUMEM_CLI;
const std::string kProg = TOP_PROG;

// Starts top_prog under `gpumem run` in the background; returns its pid once it is holding.
int start_prog(const ScratchDir& dir, int mib, bool hold) {
  std::vector<std::string> had;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    had.push_back(e.path().filename().string());
  const std::string cmd = "(" + kCli + " run --device sim --trace '" + dir.path() +
                          "/gpumem-%p.trace' -- " + kProg + " '" + dir.path() + "' " +
                          std::to_string(mib) + (hold ? " hold" : "") + ") >>'" + dir.path() +
                          "/run.log' 2>&1 &";
  if (std::system(cmd.c_str()) != 0) return -1;
  int pid = -1;
  wait_for([&] {
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
      const std::string name = e.path().filename().string();
      if (name.rfind("ready.", 0) != 0 || name.find(".tmp") != std::string::npos) continue;
      if (std::find(had.begin(), had.end(), name) != had.end()) continue;
      pid = std::stoi(name.substr(6));
      return true;
    }
    return false;
  });
  return pid;
}

json run_json(const std::string& cmd) {
  Output o = sh(cmd + " 2>/dev/null");
  if (o.status != 0) return json();
  return json::parse(o.out, nullptr, false);
}

json report(const std::string& paths) {
  return run_json(kCli + " report --json - " + paths);
}

const json* report_device(const json& r, uint32_t pid, int device) {
  for (const json& d : r["devices"])
    if (d["pid"] == pid && d["device"] == device) return &d;
  return nullptr;
}

// Every number top's snapshot shows for each process and device is the report's.
void expect_same_numbers(const json& top, const json& rep) {
  ASSERT_TRUE(top.is_object() && rep.is_object());
  ASSERT_EQ(top["processes"].size(), rep["traces"].size());
  size_t devices = 0;
  for (const json& p : top["processes"]) {
    for (const json& d : p["devices"]) {
      const json* r = report_device(rep, p["pid"], d["device"]);
      ASSERT_NE(r, nullptr) << "pid " << p["pid"];
      ++devices;
      EXPECT_EQ(d["allocated_bytes"], (*r)["final"]["allocated_bytes"]);
      EXPECT_EQ(d["reserved_bytes"], (*r)["final"]["reserved_bytes"]);
      EXPECT_EQ(d["peak_allocated_bytes"], (*r)["peak"]["allocated_bytes"]);
      EXPECT_EQ(d["peak_time_ns"], (*r)["peak"]["time_ns"]);
      EXPECT_EQ(d["allocs"], (*r)["counts"]["alloc"]);
      EXPECT_EQ(d["frees"], (*r)["counts"]["free"]);
      EXPECT_EQ(d["alloc_failed"], (*r)["counts"]["alloc_failed"]);
      EXPECT_EQ(d["capacity_bytes"], (*r)["capacity_bytes"]);
      ASSERT_EQ(d["live"].size(), (*r)["leaks"].size());
      for (size_t i = 0; i < d["live"].size(); ++i) {
        EXPECT_EQ(d["live"][i]["bytes"], (*r)["leaks"][i]["bytes"]);
        EXPECT_EQ(d["live"][i]["count"], (*r)["leaks"][i]["count"]);
      }
    }
  }
  EXPECT_EQ(devices, rep["devices"].size());
}

constexpr uint64_t kMiB = 1 << 20;

TEST(Top, OnceJsonEqualsReportOnEndedTraces) {
  ScratchDir dir("gpumem-top");
  ASSERT_GT(start_prog(dir, 16, false), 0);
  ASSERT_GT(start_prog(dir, 32, false), 0);
  // Both ended: their traces are closed.
  ASSERT_TRUE(wait_for([&] {
    const json t = run_json(kCli + " top --json '" + dir.path() + "'");
    if (!t.is_object() || t["processes"].size() != 2) return false;
    for (const json& p : t["processes"])
      if (p["state"] != "ended") return false;
    return true;
  }));
  const json t = run_json(kCli + " top --json '" + dir.path() + "'");
  const json r = report("'" + dir.path() + "'");
  expect_same_numbers(t, r);
  // 16 MiB: 8 + 4 + 2 + 2 allocated, the last 2 freed; the failed 32 GiB counted.
  const json& p = t["processes"][0]["devices"][0];
  const uint64_t mib = p["peak_allocated_bytes"] == 16 * kMiB ? 16 : 32;
  EXPECT_EQ(p["allocated_bytes"], (mib - mib / 8) * kMiB);
  EXPECT_EQ(p["peak_allocated_bytes"], mib * kMiB);
  EXPECT_EQ(p["allocs"], 4);
  EXPECT_EQ(p["alloc_failed"], 1);
}

TEST(Top, OnceJsonAndPrometheusOfALiveProcessEqualTheReport) {
  ScratchDir dir("gpumem-top");
  const int pid = start_prog(dir, 64, true);
  ASSERT_GT(pid, 0);
  const std::string trace = dir / ("gpumem-" + std::to_string(pid) + ".trace");
  const json t = run_json(kCli + " top --json '" + trace + "'");
  const json r = report("'" + trace + "'");
  expect_same_numbers(t, r);
  ASSERT_EQ(t["processes"].size(), 1u);
  EXPECT_EQ(t["processes"][0]["state"], "running");
  const json& d = t["processes"][0]["devices"][0];
  EXPECT_EQ(d["allocated_bytes"], 56 * kMiB);
  EXPECT_EQ(d["phase"], "hold");  // open now
  EXPECT_EQ(d["peak_phase"], "load");
  // The exposition carries the same numbers, labelled by process and device.
  Output prom = sh(kCli + " top --prometheus '" + trace + "'");
  ASSERT_EQ(prom.status, 0) << prom.out;
  const std::string labels = "pid=\"" + std::to_string(pid) + "\",rank=\"-1\",device=\"0\"}";
  EXPECT_NE(prom.out.find("# TYPE gpumem_allocated_bytes gauge\n"), std::string::npos) << prom.out;
  EXPECT_NE(prom.out.find(labels + " " + std::to_string(56 * kMiB) + "\n"), std::string::npos)
      << prom.out;
  EXPECT_NE(prom.out.find("gpumem_failed_allocations_total{"), std::string::npos);
  EXPECT_NE(prom.out.find(labels + " 1\n"), std::string::npos) << prom.out;  // the failed one
  std::ofstream(dir / "go").put('\n');
  ASSERT_TRUE(wait_for([&] {
    const json e = run_json(kCli + " top --json '" + trace + "'");
    return e.is_object() && e["processes"].size() == 1 && e["processes"][0]["state"] == "ended";
  }));
  expect_same_numbers(run_json(kCli + " top --json '" + trace + "'"), report("'" + trace + "'"));
}

TEST(Top, NotATerminalPrintsPlainLines) {
  ScratchDir dir("gpumem-top");
  const int pid = start_prog(dir, 8, false);
  ASSERT_GT(pid, 0);
  const std::string trace = dir / ("gpumem-" + std::to_string(pid) + ".trace");
  ASSERT_TRUE(wait_for([&] {
    return sh(kCli + " top --once '" + trace + "'").out.find("state=ended") != std::string::npos;
  }));
  Output o = sh(kCli + " top --interval 0.05 --iterations 2 '" + trace + "'");
  ASSERT_EQ(o.status, 0) << o.out;
  const std::string line = " pid=" + std::to_string(pid) +
                           " rank=-1 device=0 state=ended allocated=7340032 reserved=7340032 "
                           "peak=8388608 ";
  const size_t first = o.out.find(line);
  ASSERT_NE(first, std::string::npos) << o.out;
  EXPECT_NE(o.out.find(line, first + 1), std::string::npos) << o.out;  // two refreshes
  EXPECT_NE(o.out.find("failed=1 phase=\"\"\n"), std::string::npos) << o.out;
}

TEST(Top, BadTargetsAreSaidAndNothingCrashes) {
  ScratchDir dir("gpumem-top");
  std::ofstream(dir / "junk.trace") << "not a trace at all";
  Output o = sh(kCli + " top --once '" + (dir / "missing.trace") + "'");
  EXPECT_EQ(o.status, 1) << o.out;
  EXPECT_NE(o.out.find("'" + (dir / "missing.trace") + "' does not exist (yet)"), std::string::npos)
      << o.out;
  o = sh(kCli + " top --once '" + dir.path() + "'");
  EXPECT_EQ(o.status, 0) << o.out;
  EXPECT_NE(o.out.find("state=waiting"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("not a gpumem trace (bad magic)"), std::string::npos) << o.out;
  o = sh(kCli + " top --json --prometheus '" + dir.path() + "'");
  EXPECT_EQ(o.status, 2) << o.out;
}

// Refresh settings out of range are refused before anything is read (status 2, the option and the
// accepted range): "nan" passed CLI11's range check and refreshed with no pause at all (a whole
// core, thousands of blocks a second), and a negative --iterations wrapped to a count that never
// ends (the timeout below would stop it with 124).
TEST(Top, NanIntervalAndNegativeIterationsAreRefused) {
  ScratchDir dir("gpumem-top");
  const std::string target = " '" + dir.path() + "'";
  for (const std::string value : {"nan", "NaN", "-nan"}) {
    Output o = sh("timeout 20 " + kCli + " top --interval " + value + " --iterations 3" + target);
    EXPECT_EQ(o.status, 2) << o.out;
    EXPECT_EQ(o.out, "--interval: Value " + value +
                         " is not a number of seconds from 0.05 to 3600\nRun with --help for more "
                         "information.\n");
  }
  Output o = sh("timeout 20 " + kCli + " top --interval 0.05 --iterations -1" + target);
  EXPECT_EQ(o.status, 2) << o.out;
  EXPECT_EQ(o.out.rfind("--iterations: Value -1 not in range 0 to ", 0), 0u) << o.out;
  o = sh("timeout 20 " + kCli + " top --interval 0.05 --iterations 2" + target);
  EXPECT_EQ(o.status, 0) << o.out;
}

// --- The screen, through tmux ---------------------------------------------------------------

class Tmux {
 public:
  explicit Tmux(const std::string& command) : name_("gpumem-top-" + std::to_string(getpid())) {
    sh("tmux kill-session -t " + name_ + " 2>/dev/null");
    ok_ = sh("tmux new-session -d -s " + name_ + " -x 160 -y 40 \"LANG=C.UTF-8 " + command + "\"")
              .status == 0;
    sh("tmux set-option -t " + name_ + " remain-on-exit on");
  }
  ~Tmux() { sh("tmux kill-session -t " + name_ + " 2>/dev/null"); }
  bool ok() const { return ok_; }
  std::string pane() { return sh("tmux capture-pane -p -t " + name_).out; }
  void keys(const std::string& k) { sh("tmux send-keys -t " + name_ + " " + k); }
  void resize(int x, int y) {
    sh("tmux resize-window -t " + name_ + " -x " + std::to_string(x) + " -y " + std::to_string(y));
  }
  bool dead() { return sh("tmux display -p -t " + name_ + " '#{pane_dead}'").out == "1\n"; }
  // Waits until the pane shows `text`; the pane as last seen in *seen.
  bool shows(const std::string& text, std::string* seen = nullptr) {
    std::string last;
    const bool found = wait_for([&] {
      last = pane();
      return last.find(text) != std::string::npos;
    });
    if (seen != nullptr) *seen = last;
    return found;
  }

 private:
  std::string name_;
  bool ok_ = false;
};

// On the screen the messages of the plain output (a target that does not exist) were never shown:
// stderr is behind the view. They are lines under the keys.
TEST(Top, ScreenSaysATargetDoesNotExist) {
  if (sh("tmux -V").status != 0) GTEST_SKIP() << "tmux is not installed";
  ScratchDir dir("gpumem-top");
  const std::string missing = dir / "missing.trace";
  Tmux tmux(kCli + " top --interval 0.2 '" + missing + "'");
  ASSERT_TRUE(tmux.ok());
  std::string seen;
  EXPECT_TRUE(tmux.shows("'" + missing + "' does not exist (yet): watching for it", &seen)) << seen;
  tmux.keys("q");
}

// The table row of `pid` as --bytes prints it: allocated, reserved and peak of the report.
std::string row_of(const json& rep, int pid) {
  const json* d = report_device(rep, static_cast<uint32_t>(pid), 0);
  if (d == nullptr) return "(no device in the report)";
  auto col = [](const json& v, size_t w) {
    std::string s = std::to_string(v.get<uint64_t>());
    return s + std::string(w > s.size() ? w - s.size() : 1, ' ');
  };
  std::string p = std::to_string(pid);
  return p + std::string(8 - p.size(), ' ') + "-    0   " +
         col((*d)["final"]["allocated_bytes"], 14) + col((*d)["final"]["reserved_bytes"], 14) +
         col((*d)["peak"]["allocated_bytes"], 14);
}

// The file offset half-way through the records of a trace (past the header, before its last
// non-zero slot), at a slot boundary.
uint64_t half_of_the_records(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(65536);
  uint64_t slot = 0, last = 0;
  char buf[64];
  while (in.read(buf, sizeof buf)) {
    ++slot;
    for (char c : buf)
      if (c != 0) {
        last = slot;
        break;
      }
  }
  return 65536 + (last / 2) * 64;
}

TEST(Top, ScreenShowsTheReportAndSurvivesKillTruncationNewProcessAndResize) {
  if (sh("tmux -V").status != 0) GTEST_SKIP() << "tmux is not installed";
  ScratchDir dir("gpumem-top");
  const int first = start_prog(dir, 64, true);
  ASSERT_GT(first, 0);
  Tmux tmux(kCli + " top --bytes --interval 0.2 '" + dir.path() + "'");
  ASSERT_TRUE(tmux.ok());
  const std::string first_trace = dir / ("gpumem-" + std::to_string(first) + ".trace");
  std::string seen;
  EXPECT_TRUE(tmux.shows(row_of(report("'" + first_trace + "'"), first), &seen)) << seen;
  EXPECT_NE(seen.find("running hold"), std::string::npos) << seen;  // state, then the open phase
  EXPECT_NE(seen.find("HISTORY"), std::string::npos) << seen;

  // A new process appears.
  const int second = start_prog(dir, 32, true);
  ASSERT_GT(second, 0);
  const std::string second_trace = dir / ("gpumem-" + std::to_string(second) + ".trace");
  EXPECT_TRUE(tmux.shows(row_of(report("'" + second_trace + "'"), second), &seen)) << seen;

  // The first is killed: it stays, marked, with the numbers of its trace as the kill left it.
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  EXPECT_TRUE(tmux.shows(row_of(report("'" + first_trace + "'"), first), &seen)) << seen;
  EXPECT_TRUE(tmux.shows("killed", &seen)) << seen;
  EXPECT_TRUE(tmux.shows("not closed cleanly", &seen)) << seen;

  // Its trace is cut to its first half: read again from the start, the report of the cut file.
  const uint64_t cut = half_of_the_records(first_trace);
  ASSERT_GT(cut, 65536u);
  std::filesystem::resize_file(first_trace, cut);
  EXPECT_TRUE(tmux.shows("the trace file was truncated", &seen)) << seen;
  EXPECT_TRUE(tmux.shows(row_of(report("'" + first_trace + "'"), first), &seen)) << seen;

  // Resizing re-lays the table out: narrower, the history column goes and no line is wider.
  tmux.resize(70, 20);
  ASSERT_TRUE(wait_for([&] {
    seen = tmux.pane();
    return seen.find("HISTORY") == std::string::npos && seen.find("PID") != std::string::npos;
  })) << seen;
  for (size_t at = 0, end; at < seen.size(); at = end + 1) {
    end = seen.find('\n', at);
    if (end == std::string::npos) end = seen.size();
    EXPECT_LE(end - at, 70u) << seen;
  }
  tmux.resize(160, 40);
  EXPECT_TRUE(tmux.shows("HISTORY", &seen)) << seen;

  // Keys: tab shows the live allocations by site of a process, d dismisses the killed one.
  tmux.keys("Tab");
  EXPECT_TRUE(tmux.shows("live by size_class", &seen)) << seen;
  tmux.keys("Tab");
  tmux.keys("Tab");
  EXPECT_TRUE(tmux.shows("HISTORY", &seen)) << seen;
  tmux.keys("d");
  ASSERT_TRUE(wait_for([&] {
    seen = tmux.pane();
    return seen.find("killed") == std::string::npos &&
           seen.find(std::to_string(second) + " ") != std::string::npos;
  })) << seen;
  // The second ends: the analysis that followed it since its start, with snapshots taken all
  // along, ends on the numbers of the report of the whole trace.
  std::ofstream(dir / "go").put('\n');
  EXPECT_TRUE(tmux.shows("ended", &seen)) << seen;
  json final_report;
  ASSERT_TRUE(wait_for([&] {
    final_report = report("'" + second_trace + "'");
    return final_report.is_object() && final_report["traces"][0]["truncated"] == false;
  }));
  EXPECT_TRUE(tmux.shows(row_of(final_report, second), &seen)) << seen;
  tmux.keys("q");
  EXPECT_TRUE(wait_for([&] { return tmux.dead(); }));
}

}  // namespace
