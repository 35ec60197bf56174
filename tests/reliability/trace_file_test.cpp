// The trace file never crashes, hangs or lies (issue 29 items 1, 2, 6, 9, 11): processes racing
// on one path each get their own file with every record; a full disk drops records without
// slowing the program, warns once and writes the count into the trace for every reader; the trace
// keeps its descriptor off stderr; an exit() from a thread reads as a clean close; a mark from a
// signal handler during the open never hangs; bad paths are refused or redirected, and said so.
// The programs run: tests/reliability/trace_child.cpp under the preload, on simcuda.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "gpumem/trace/writer.h"
#include "process.h"
#include "sanitized.h"
#include "support.h"

namespace reliability {
namespace {

namespace tr = gpumem::trace;
using Clock = std::chrono::steady_clock;

struct Counts {
  uint64_t alloc = 0, free = 0;
};
Counts count_pairs(const LoadedTrace& t) {
  Counts c;
  for (const tr::Record& r : t.records) {
    if (r.op == static_cast<uint16_t>(tr::Op::alloc)) ++c.alloc;
    if (r.op == static_cast<uint16_t>(tr::Op::free)) ++c.free;
  }
  return c;
}

size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Waits for pid at most `seconds`; kills it (SIGKILL) past that. Sets *hung when it was killed.
Outcome wait_at_most(pid_t pid, const std::string& out, const std::string& err, int seconds,
                     bool* hung) {
  *hung = false;
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  int st = 0;
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      *hung = true;
      ::kill(pid, SIGKILL);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (*hung) waitpid(pid, &st, 0);
  Outcome o;
  o.signaled = WIFSIGNALED(st);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  o.out = slurp(out);
  o.err = slurp(err);
  return o;
}

std::vector<std::string> child(std::vector<std::string> args) {
  args.insert(args.begin(), RELIABILITY_TRACE_CHILD);
  return args;
}

// Every file in dir whose name starts with `stem`.
std::vector<std::string> files_named(const std::string& dir, const std::string& stem) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().rfind(stem, 0) == 0) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// --- item 1: processes racing on one trace path ----------------------------------------------

// Starts one process per entry of `pairs_each`, all with the same GPUMEM_TRACE (no %p), whose
// first allocations (which open the trace) happen at the same instant; checks that each wrote its
// own complete file.
void race_on_one_path(const std::string& dir, const std::vector<unsigned long long>& pairs_each) {
  const std::string trace = dir + "/same.trace";
  const auto env = child_environment(true, {"GPUMEM_TRACE=" + trace});
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  const unsigned long long at = static_cast<unsigned long long>(now.tv_sec + 1) * 1000000000ull +
                                static_cast<unsigned long long>(now.tv_nsec);
  std::vector<pid_t> pids;
  for (size_t i = 0; i < pairs_each.size(); ++i) {
    const std::string tag = dir + "/p" + std::to_string(i);
    pids.push_back(start(child({"pairs-at", std::to_string(pairs_each[i]), std::to_string(at)}),
                         env, tag + ".out", tag + ".err"));
    ASSERT_GT(pids.back(), 0);
  }
  std::map<uint32_t, unsigned long long> expected;  // pid -> pairs
  for (size_t i = 0; i < pids.size(); ++i) {
    const std::string tag = dir + "/p" + std::to_string(i);
    const Outcome o = wait_for(pids[i], tag + ".out", tag + ".err");
    EXPECT_FALSE(o.signaled) << "process " << i << " died of signal " << o.status - 128;
    EXPECT_EQ(o.status, 0) << o.err;
    expected[static_cast<uint32_t>(pids[i])] = pairs_each[i];
  }
  const std::vector<std::string> traces = files_named(dir, "same.trace");
  ASSERT_EQ(traces.size(), pairs_each.size()) << "one file per process";
  std::set<uint32_t> seen;
  for (const std::string& path : traces) {
    SCOPED_TRACE(path);
    const LoadedTrace t = load_trace(path);
    ASSERT_TRUE(t.opened) << t.error;
    EXPECT_TRUE(seen.insert(t.header.pid).second) << "two files of pid " << t.header.pid;
    ASSERT_EQ(expected.count(t.header.pid), 1u) << "a file of an unknown pid " << t.header.pid;
    const Counts c = count_pairs(t);
    EXPECT_EQ(c.alloc, expected[t.header.pid]);
    EXPECT_EQ(c.free, expected[t.header.pid]);
    EXPECT_EQ(t.stats.torn, 0u);
    EXPECT_FALSE(t.stats.truncated) << t.stats.reason;
    EXPECT_EQ(t.header.records_dropped, 0u);
  }
}

using ConcurrentTraceWriters = ScratchTest;

TEST_F(ConcurrentTraceWriters, FourProcessesOnOnePathEachKeepEveryRecordInTheirOwnFile) {
  race_on_one_path(dir_, {20000, 20000, 20000, 20000});
}

TEST_F(ConcurrentTraceWriters, ShortProcessNeverCutsTheLongOnesFile) {
  // Before: the short one truncated the shared file at exit and the long one died of SIGBUS.
  // Under a sanitizer the long one still runs for seconds after the short one's exit with a
  // quarter of the pairs (100000 took 80 s in the TSan stage).
  race_on_one_path(dir_, {gpumem::test::kSanitized ? 25000u : 100000u, 50});
}

using TraceFileNaming = ScratchTest;

TEST_F(TraceFileNaming, ExistingFileIsNeverTouchedAndStderrSaysWhereTheTraceWent) {
  const std::string trace = dir_ + "/t.trace";
  { std::ofstream(trace) << "someone else's file"; }
  const Outcome o =
      run(child({"pairs", "3"}), child_environment(true, {"GPUMEM_TRACE=" + trace}), dir_);
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(slurp(trace), "someone else's file");
  const LoadedTrace t = load_trace(trace + ".1");
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_EQ(count_pairs(t).alloc, 3u);
  EXPECT_NE(o.err.find(trace + ".1"), std::string::npos) << o.err;
}

TEST_F(TraceFileNaming, SuffixSearchGoesPast999WithoutOverwriting) {
  const std::string trace = dir_ + "/t.trace";
  { std::ofstream(trace) << "0"; }
  for (int i = 1; i <= 999; ++i) std::ofstream(trace + "." + std::to_string(i)) << i;
  const Outcome o =
      run(child({"pairs", "2"}), child_environment(true, {"GPUMEM_TRACE=" + trace}), dir_);
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(slurp(trace + ".999"), "999");
  EXPECT_EQ(slurp(trace + ".1"), "1");
  const LoadedTrace t = load_trace(trace + ".1000");
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_EQ(count_pairs(t).free, 2u);
}

TEST_F(TraceFileNaming, DirectoryGetsAPidNamedTraceInsideAndStderrSaysSo) {
  const std::string folder = dir_ + "/traces";
  ASSERT_EQ(::mkdir(folder.c_str(), 0700), 0);
  const std::string out = dir_ + "/stdout", err = dir_ + "/stderr";
  const pid_t pid =
      start(child({"pairs", "4"}), child_environment(true, {"GPUMEM_TRACE=" + folder}), out, err);
  const Outcome o = wait_for(pid, out, err);
  ASSERT_EQ(o.status, 0) << o.err;
  const std::string expected = folder + "/gpumem-" + std::to_string(pid) + ".trace";
  const LoadedTrace t = load_trace(expected);
  ASSERT_TRUE(t.opened) << t.error << "\n" << o.err;
  EXPECT_EQ(t.header.pid, static_cast<uint32_t>(pid));
  EXPECT_EQ(count_pairs(t).alloc, 4u);
  EXPECT_NE(o.err.find(expected), std::string::npos) << o.err;
  struct stat st;
  EXPECT_NE(::lstat((folder + ".1").c_str(), &st), 0) << "no sibling file beside the folder";
}

TEST_F(TraceFileNaming, NonRegularPathIsRefusedWithAMessageAndNothingIsCreated) {
  const std::string fifo = dir_ + "/pipe", to_device = dir_ + "/null-link";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ASSERT_EQ(::symlink("/dev/null", to_device.c_str()), 0);
  // /dev/stdout resolves to the file the child's stdout goes to here: still a stream, refused.
  for (const std::string& path : {fifo, to_device, std::string("/dev/stdout")}) {
    SCOPED_TRACE(path);
    const Outcome o =
        run(child({"pairs", "2"}), child_environment(true, {"GPUMEM_TRACE=" + path}), dir_);
    EXPECT_EQ(o.status, 0) << o.err;  // the program runs on, without a trace
    EXPECT_NE(o.err.find("not a regular file"), std::string::npos) << o.err;
    EXPECT_NE(o.err.find("GPUMEM_TRACE"), std::string::npos) << o.err;
    struct stat st;
    EXPECT_NE(::lstat((path + ".1").c_str(), &st), 0) << "a trace was written beside it";
  }
}

TEST_F(TraceFileNaming, FailedOpenLeavesNoFile) {
  // 1 MiB file-size limit: the trace's first 4 MiB cannot be reserved, so the open fails.
  const std::string trace = dir_ + "/t.trace";
  const Outcome o = run(child({"pairs", "2", std::to_string(1 << 20)}),
                        child_environment(true, {"GPUMEM_TRACE=" + trace}), dir_);
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_NE(o.err.find("cannot"), std::string::npos) << o.err;
  EXPECT_EQ(files_named(dir_, "t.trace").size(), 0u) << "a failed open left a file behind";
}

// --- item 2: a full disk ---------------------------------------------------------------------

// The runs of 100000 pairs below: without simcuda's default 35 us per call (the child's
// environment drops the suite's SIMCUDA_* settings) each took 22 s instead of a few.
const char* const kNoLatency[] = {"SIMCUDA_ALLOC_LATENCY_US=0", "SIMCUDA_FREE_LATENCY_US=0"};

using TraceFullDisk = ScratchTest;

TEST_F(TraceFullDisk, DroppedRecordsAreCountedWarnedOnceAndReportedByEveryReader) {
  constexpr unsigned long long kPairs = 100000;
  // A 6 MiB tmpfs when we may mount one; else the same limit as RLIMIT_FSIZE in the child.
  const std::string volume = dir_ + "/small";
  ASSERT_EQ(::mkdir(volume.c_str(), 0700), 0);
  const bool mounted = ::mount("tmpfs", volume.c_str(), "tmpfs", 0, "size=6m") == 0;
  std::vector<std::string> argv = child({"pairs", std::to_string(kPairs)});
  if (!mounted) argv.push_back(std::to_string(6 << 20));
  const std::string trace = volume + "/t.trace";
  const auto started = Clock::now();
  const Outcome o = run(
      argv, child_environment(true, {"GPUMEM_TRACE=" + trace, kNoLatency[0], kNoLatency[1]}), dir_);
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  std::string copy = dir_ + "/t.trace";
  std::filesystem::copy_file(trace, copy);
  if (mounted) ::umount(volume.c_str());

  ASSERT_FALSE(o.signaled) << o.status;
  ASSERT_EQ(o.status, 0) << o.err;
  // Warned once, not once per dropped record (each of which retried the disk before).
  EXPECT_EQ(occurrences(o.err, "cannot grow the trace file"), 1u) << o.err;
  EXPECT_NE(o.err.find(mounted ? "free disk space" : "ulimit -f"), std::string::npos) << o.err;
  EXPECT_LT(seconds, 60.0) << "a full disk slowed the program down";

  const LoadedTrace t = load_trace(copy);
  ASSERT_TRUE(t.opened) << t.error;
  const Counts c = count_pairs(t);
  const uint64_t dropped = t.header.records_dropped;
  EXPECT_GT(dropped, 0u);
  EXPECT_LT(c.alloc + c.free, 2 * kPairs);
  EXPECT_EQ(c.alloc + c.free + dropped, 2 * kPairs) << "every call is either kept or counted";
  EXPECT_EQ(t.stats.dropped, dropped);
  EXPECT_TRUE(t.stats.truncated);
  const std::string count = std::to_string(dropped);
  EXPECT_NE(t.stats.reason.find(count + " record(s) dropped"), std::string::npos) << t.stats.reason;

  const auto env = child_environment(false, {});
  const Outcome json = run({GPUMEM_CLI, "report", copy, "--json", "-"}, env, dir_);
  ASSERT_EQ(json.status, 0) << json.err;
  const auto report = nlohmann::json::parse(json.out);
  const auto& tj = report.at("traces").at(0);
  EXPECT_EQ(tj.at("records_dropped").get<uint64_t>(), dropped);
  EXPECT_TRUE(tj.at("truncated").get<bool>());
  EXPECT_NE(tj.at("truncated_reason").get<std::string>().find(count), std::string::npos);

  const Outcome text = run({GPUMEM_CLI, "report", copy, "--text"}, env, dir_);
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("INCOMPLETE: " + count + " records dropped"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("free disk space"), std::string::npos) << text.out;

  const std::string html = dir_ + "/r.html";
  ASSERT_EQ(run({GPUMEM_CLI, "report", copy, "--html", html}, env, dir_).status, 0);
  EXPECT_NE(slurp(html).find("\"records_dropped\":" + count), std::string::npos);

  const Outcome dump = run({GPUMEM_CLI, "dump", copy}, env, dir_);
  ASSERT_EQ(dump.status, 0) << dump.err;
  EXPECT_NE(dump.out.find("\"records_dropped\":" + count), std::string::npos);
  EXPECT_NE(dump.err.find(count + " record(s) dropped"), std::string::npos) << dump.err;
}

// A file system without fallocate: the file must still be backed before the mapping touches it,
// else a full disk is SIGBUS in the program instead of records dropped and counted. Runs `pairs`
// pairs on a tmpfs of `size` where fallocate fails; the trace, if any, is copied to dir/t.trace.
Outcome run_without_fallocate(const std::string& dir, const std::string& format, const char* size,
                              const char* pairs, bool* skipped) {
  const std::string volume = dir + "/small";
  *skipped =
      ::mkdir(volume.c_str(), 0700) != 0 || ::mount("tmpfs", volume.c_str(), "tmpfs", 0, size) != 0;
  if (*skipped) return {};
  const std::string trace = volume + "/t.trace";
  std::vector<std::string> env;
  for (const std::string& kv :
       child_environment(true, {"GPUMEM_TRACE=" + trace, "GPUMEM_TRACE_FORMAT=" + format,
                                kNoLatency[0], kNoLatency[1]}))
    if (kv.rfind("LD_PRELOAD=", 0) != 0) env.push_back(kv);
  env.push_back(std::string("LD_PRELOAD=") + GPUMEM_PRELOAD_PATH + ":" + RELIABILITY_NO_FALLOCATE);
  const Outcome o = run(child({"pairs", pairs}), env, dir);
  if (std::filesystem::exists(trace)) std::filesystem::copy_file(trace, dir + "/t.trace");
  ::umount(volume.c_str());
  return o;
}

TEST_F(TraceFullDisk, WithoutFallocateTheTraceDropsRecordsInsteadOfSigbus) {
  bool skipped = false;
  const Outcome o = run_without_fallocate(dir_, "raw", "size=6m", "100000", &skipped);
  if (skipped) GTEST_SKIP() << "cannot mount a small tmpfs here (needs root)";
  ASSERT_FALSE(o.signaled) << "died of signal " << o.status - 128 << ": " << o.err;
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(occurrences(o.err, "cannot grow the trace file"), 1u) << o.err;
  EXPECT_NE(o.err.find("No space left on device"), std::string::npos) << o.err;
  const LoadedTrace t = load_trace(dir_ + "/t.trace");
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_NE(t.header.flags & tr::kHeaderClosed, 0u);
  const Counts c = count_pairs(t);
  EXPECT_GT(t.header.records_dropped, 0u);
  EXPECT_EQ(c.alloc + c.free + t.header.records_dropped, 200000u)
      << "every call is either kept or counted";
}

TEST_F(TraceFullDisk, WithoutFallocateACompactRingTheDiskCannotHoldMeansNoTraceNotSigbus) {
  bool skipped = false;
  const Outcome o = run_without_fallocate(dir_, "compact", "size=512k", "100", &skipped);
  if (skipped) GTEST_SKIP() << "cannot mount a small tmpfs here (needs root)";
  ASSERT_FALSE(o.signaled) << "died of signal " << o.status - 128 << ": " << o.err;
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(occurrences(o.err, "cannot size trace file"), 1u) << o.err;
  EXPECT_NE(o.err.find("No space left on device"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("the program runs on without a trace"), std::string::npos) << o.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/t.trace")) << "a failed open left a file behind";
}

// A file-size limit (ulimit -f) with SIGXFSZ at its default: a write past it kills the process
// that makes it, so the writer must stop at the limit instead (records dropped and counted).
void file_size_limit_drops_records(const std::string& dir, const std::string& format,
                                   unsigned long long limit) {
  constexpr unsigned long long kPairs = 100000;
  const std::string trace = dir + "/t.trace";
  const Outcome o =
      run(child({"pairs-limited", std::to_string(kPairs), std::to_string(limit)}),
          child_environment(true, {"GPUMEM_TRACE=" + trace, "GPUMEM_TRACE_FORMAT=" + format,
                                   kNoLatency[0], kNoLatency[1]}),
          dir);
  ASSERT_FALSE(o.signaled) << "died of signal " << o.status - 128 << ": " << o.err;
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(occurrences(o.err, "cannot grow the trace file"), 1u) << o.err;
  EXPECT_NE(o.err.find("file-size limit (ulimit -f"), std::string::npos) << o.err;
  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_LE(std::filesystem::file_size(trace), limit);
  EXPECT_NE(t.header.flags & tr::kHeaderClosed, 0u);
  const Counts c = count_pairs(t);
  EXPECT_GT(t.header.records_dropped, 0u);
  EXPECT_EQ(c.alloc + c.free + t.header.records_dropped, 2 * kPairs)
      << "every call is either kept or counted";
}

TEST_F(TraceFullDisk, FileSizeLimitStopsTheRawTraceWithoutKillingTheProgram) {
  file_size_limit_drops_records(dir_, "raw", 6 << 20);
}

TEST_F(TraceFullDisk, FileSizeLimitStopsTheCompactTraceWithoutKillingTheProgram) {
  // The header and the ring, then room for a few sealed chunks only.
  file_size_limit_drops_records(dir_, "compact", tr::kHeaderSize + (1 << 20) + (64 << 10));
}

TEST_F(TraceFullDisk, FileSizeLimitBelowTheFirstSizeMeansNoTraceAndOneMessage) {
  const std::string trace = dir_ + "/t.trace";
  const Outcome o = run(child({"pairs-limited", "100", "65536"}),
                        child_environment(true, {"GPUMEM_TRACE=" + trace}), dir_);
  ASSERT_FALSE(o.signaled) << "died of signal " << o.status - 128 << ": " << o.err;
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(occurrences(o.err, "ulimit -f"), 1u) << o.err;
  EXPECT_NE(o.err.find("the program runs on without a trace"), std::string::npos) << o.err;
  EXPECT_FALSE(std::filesystem::exists(trace));
}

// --- item 6: stderr closed -------------------------------------------------------------------

using TraceFileDescriptor = ScratchTest;

TEST_F(TraceFileDescriptor, StderrClosedTheTraceNeverTakesFd2) {
  const std::string trace = dir_ + "/t.trace";
  // GPUMEM_LOG=info: the preload writes lines to fd 2 (where the trace was before the fix).
  const auto env = child_environment(true, {"GPUMEM_TRACE=" + trace, "GPUMEM_LOG=info"});
  const pid_t pid = start(child({"pairs", "50"}), env, "", "", Stderr::closed);
  ASSERT_GT(pid, 0);
  const Outcome o = wait_for(pid, "", "");
  ASSERT_EQ(o.status, 0);
  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_EQ(count_pairs(t).alloc, 50u);
  EXPECT_EQ(count_pairs(t).free, 50u);
  EXPECT_FALSE(t.stats.truncated) << t.stats.reason;
  EXPECT_EQ(t.stats.torn, 0u);
}

// A daemon closes every descriptor once the trace is open, and its next file takes the trace's
// old number: the writer must neither grow, seal into, truncate nor close that file.
void daemon_keeps_its_file(const std::string& dir, const std::string& format) {
  constexpr unsigned long long kPairs = 40000;  // past the raw file's first growth; many chunks
  const std::string trace = dir + "/t.trace";
  const std::string other = dir + "/daemon.pid";
  const Outcome o =
      run(child({"daemon", std::to_string(kPairs), other}),
          child_environment(true, {"GPUMEM_TRACE=" + trace, "GPUMEM_TRACE_FORMAT=" + format,
                                   kNoLatency[0], kNoLatency[1]}),
          dir);
  ASSERT_FALSE(o.signaled) << "died of signal " << o.status - 128;
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(slurp(other), "precious\n") << "the trace wrote into the daemon's own file";
  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_NE(t.header.flags & tr::kHeaderClosed, 0u);
  EXPECT_EQ(count_pairs(t).alloc, kPairs + 1);
  EXPECT_EQ(count_pairs(t).free, kPairs + 1);
  EXPECT_EQ(t.header.records_dropped, 0u);
  EXPECT_FALSE(t.stats.truncated) << t.stats.reason;
  EXPECT_EQ(t.stats.torn, 0u);
}

TEST_F(TraceFileDescriptor, DaemonClosingEveryDescriptorKeepsItsFileAndTheRawTrace) {
  daemon_keeps_its_file(dir_, "raw");
}

TEST_F(TraceFileDescriptor, DaemonClosingEveryDescriptorKeepsItsFileAndTheCompactTrace) {
  daemon_keeps_its_file(dir_, "compact");
}

// --- item 9: exit() from a thread ------------------------------------------------------------

using ThreadExit = ScratchTest;

TEST_F(ThreadExit, ExitFromAThreadWhileOthersAllocateReadsAsACleanClose) {
  for (int run_index = 0; run_index < 10; ++run_index) {
    SCOPED_TRACE("run " + std::to_string(run_index));
    const std::string trace = dir_ + "/t" + std::to_string(run_index) + ".trace";
    const Outcome o =
        run(child({"thread-exit", "4"}), child_environment(true, {"GPUMEM_TRACE=" + trace}), dir_);
    ASSERT_FALSE(o.signaled) << "died of signal " << o.status - 128 << ": " << o.err;
    ASSERT_EQ(o.status, 0) << o.err;
    const LoadedTrace t = load_trace(trace);
    ASSERT_TRUE(t.opened) << t.error;
    EXPECT_NE(t.header.flags & tr::kHeaderClosed, 0u);
    EXPECT_EQ(t.stats.torn, 0u);
    EXPECT_FALSE(t.stats.truncated) << t.stats.reason;
    EXPECT_GE(count_pairs(t).alloc, 4 * 500u);
  }
}

TEST_F(ThreadExit, QuickExitClosesTheTrace) {
  const std::string trace = dir_ + "/t.trace";
  const Outcome o =
      run(child({"quick-exit", "50"}), child_environment(true, {"GPUMEM_TRACE=" + trace}), dir_);
  ASSERT_FALSE(o.signaled) << "died of signal " << o.status - 128 << ": " << o.err;
  ASSERT_EQ(o.status, 0) << o.err;
  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_NE(t.header.flags & tr::kHeaderClosed, 0u) << "reads as a killed process";
  EXPECT_FALSE(t.stats.truncated) << t.stats.reason;
  EXPECT_EQ(count_pairs(t).alloc, 50u);
  EXPECT_EQ(count_pairs(t).free, 50u);
}

// How the reader takes the kAbandoned commit word that close() gives slots still being written:
// skipped and counted apart, a blob's payload with its head, and the trace is not damaged.
TEST_F(ThreadExit, AbandonedSlotsAreSkippedWithoutCallingTheTraceDamaged) {
  const std::string path = dir_ + "/a.trace";
  {
    gpumem::TraceWriter w;
    char err[512];
    ASSERT_TRUE(w.open(path.c_str(), tr::Header{}, err, sizeof err)) << err;
    for (uint64_t i = 1; i <= 3; ++i) {
      tr::Record r{};
      r.op = static_cast<uint16_t>(tr::Op::alloc);
      r.address = i;
      w.append(r);
    }
    w.intern_string(std::string(100, 'x').c_str());  // a head and 2 payload slots
    tr::Record last{};
    last.op = static_cast<uint16_t>(tr::Op::free);
    w.append(last);
    w.close();
  }
  // As close() leaves slots it found unfinished: the second record and the string's head.
  const int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  for (uint64_t slot : {1u, 3u}) {
    const off_t at = tr::kHeaderSize + slot * tr::kRecordSize + offsetof(tr::Record, commit);
    ASSERT_EQ(::pwrite(fd, &tr::kAbandoned, sizeof tr::kAbandoned, at), 4);
  }
  ::close(fd);
  const LoadedTrace t = load_trace(path);
  ASSERT_TRUE(t.opened) << t.error;
  ASSERT_EQ(t.records.size(), 3u);  // records 1 and 3, and the free
  EXPECT_EQ(t.records[0].address, 1u);
  EXPECT_EQ(t.records[1].address, 3u);
  EXPECT_EQ(t.records[2].op, static_cast<uint16_t>(tr::Op::free));
  EXPECT_EQ(t.stats.abandoned, 4u);  // 1 record + the blob's head and its 2 payload slots
  EXPECT_EQ(t.stats.torn, 0u);
  EXPECT_FALSE(t.stats.truncated) << t.stats.reason;
}

// close() while a thread is stopped in the middle of an append (a signal handler that sleeps
// past close's wait) and another goes on appending: the stopped slot is marked kAbandoned, never
// left torn (before: a torn slot in every round).
void sleep_past_the_close_wait(int) {
  usleep(300000);
}

TEST_F(ThreadExit, AppendStuckInASignalHandlerAtCloseIsMarkedAbandonedNotTorn) {
  struct sigaction sa {
  }, old{};
  sa.sa_handler = sleep_past_the_close_wait;
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  // At least 5 rounds, and more (up to 40) until the signal has caught the thread inside
  // append() once: on a loaded machine the thread may not run in the moment the signal comes.
  int rounds_with_abandoned = 0;
  for (int round = 0; round < 5 || (rounds_with_abandoned == 0 && round < 40); ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string path = dir_ + "/s" + std::to_string(round) + ".trace";
    auto w = std::make_unique<gpumem::TraceWriter>();  // outlives both threads (joined below)
    char err[512];
    ASSERT_TRUE(w->open(path.c_str(), tr::Header{}, err, sizeof err)) << err;
    std::atomic<bool> go{true};
    std::atomic<uint64_t> appended{0};
    std::thread appender([&] {
      for (uint64_t i = 1; go.load(std::memory_order_relaxed); ++i) {
        tr::Record r{};
        r.op = static_cast<uint16_t>(tr::Op::alloc);
        r.address = i;
        w->append(r);
        appended.store(i, std::memory_order_relaxed);
      }
    });
    std::thread other([&] {  // goes on appending: the stopped slot is not the last one
      for (uint64_t i = 1; go.load(std::memory_order_relaxed); ++i) {
        tr::Record r{};
        r.op = static_cast<uint16_t>(tr::Op::free);
        r.address = i;
        w->append(r);
      }
    });
    // The appender is running its loop (nearly all of which is append()) before the signal.
    while (appended.load(std::memory_order_relaxed) < 1000) std::this_thread::yield();
    pthread_kill(appender.native_handle(), SIGUSR1);  // almost always inside append()
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    w->close();
    go = false;
    appender.join();
    other.join();
    const LoadedTrace t = load_trace(path);
    ASSERT_TRUE(t.opened) << t.error;
    EXPECT_GT(t.records.size(), 0u);
    EXPECT_EQ(t.stats.torn, 0u);
    EXPECT_FALSE(t.stats.truncated) << t.stats.reason;
    EXPECT_LE(t.stats.abandoned, 1u);
    rounds_with_abandoned += t.stats.abandoned > 0 ? 1 : 0;
  }
  sigaction(SIGUSR1, &old, nullptr);
#if !defined(__SANITIZE_THREAD__)  // TSan delivers the signal at its interceptors only
  EXPECT_GE(rounds_with_abandoned, 1) << "the signal never caught the thread inside append()";
#endif
}

// --- item 11: a mark from a signal handler while the trace is being opened ------------------

TEST_F(TraceFileNaming, MarkFromASignalHandlerDuringTheOpenNeverHangs) {
  for (int run_index = 0; run_index < 5; ++run_index) {
    SCOPED_TRACE("run " + std::to_string(run_index));
    const std::string trace = dir_ + "/t" + std::to_string(run_index) + ".trace";
    const std::string out = dir_ + "/stdout", err = dir_ + "/stderr";
    const pid_t pid =
        start(child({"mark-signal"}),
              // simcuda's real-GPU latency (35 µs), longer than the timer's 20 µs: its sleep
              // must end however often the signal interrupts it.
              child_environment(true, {"GPUMEM_TRACE=" + trace, "SIMCUDA_ALLOC_LATENCY_US=35",
                                       "SIMCUDA_FREE_LATENCY_US=35"}),
              out, err);
    bool hung = false;
    const Outcome o = wait_at_most(pid, out, err, 20, &hung);
    ASSERT_FALSE(hung) << "the program hung (deadlock in the preload)";
    ASSERT_EQ(o.status, 0) << o.err;
    const LoadedTrace t = load_trace(trace);
    ASSERT_TRUE(t.opened) << t.error;
    EXPECT_EQ(count_pairs(t).alloc, 20u);
    EXPECT_FALSE(t.stats.truncated) << t.stats.reason;
  }
}

// --- exit() from a signal handler that interrupted the writer's own locked I/O ----------------

// Runs `pairs` pairs with a SIGUSR1 handler that calls exit(), the signal raised inside the
// writer's `where` (signal_in_io.cpp: "fallocate:K" or "pwrite:K"). The handler's exit closes the
// trace from the thread that holds the lock of the extension, open or seal it interrupted.
Outcome exit_in_handler(const std::string& dir, const std::string& trace, const std::string& format,
                        const std::string& where, bool* hung) {
  std::vector<std::string> env;
  for (const std::string& kv :
       child_environment(true, {"GPUMEM_TRACE=" + trace, "GPUMEM_TRACE_FORMAT=" + format,
                                "RELIABILITY_SIGNAL_IN=" + where, kNoLatency[0], kNoLatency[1]}))
    if (kv.rfind("LD_PRELOAD=", 0) != 0) env.push_back(kv);
  env.push_back(std::string("LD_PRELOAD=") + GPUMEM_PRELOAD_PATH + ":" + RELIABILITY_SIGNAL_IN_IO);
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  return wait_at_most(start(child({"exit-in-handler", "200000"}), env, out, err), out, err, 20,
                      hung);
}

// The trace that exit closed from the handler: closed and complete, at least `allocs` and fewer
// than the 200000 allocations asked, each but the last followed by its free.
void expect_closed_early(const std::string& trace, uint64_t allocs) {
  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_NE(t.header.flags & tr::kHeaderClosed, 0u);
  EXPECT_FALSE(t.stats.truncated) << t.stats.reason;
  const Counts c = count_pairs(t);
  EXPECT_GE(c.alloc, allocs);
  EXPECT_LT(c.alloc, 200000u);
  EXPECT_LE(c.alloc - c.free, 1u);
}

TEST_F(ThreadExit, ExitFromASignalHandlerInsideTheFilesExtensionClosesTheTrace) {
  const std::string trace = dir_ + "/t.trace";
  bool hung = false;
  // The first fallocate sizes the file at the open, the second is its first extension.
  const Outcome o = exit_in_handler(dir_, trace, "raw", "fallocate:2", &hung);
  ASSERT_FALSE(hung) << "the program hung (the close waited for the lock its thread held)";
  ASSERT_EQ(o.status, 0) << o.err;
  // Everything appended before the extension that the signal interrupted: more than the first
  // size holds cannot be there.
  expect_closed_early(trace, 1000);
}

TEST_F(ThreadExit, ExitFromASignalHandlerInsideTheOpenNeverHangs) {
  const std::string trace = dir_ + "/t.trace";
  bool hung = false;
  const Outcome o = exit_in_handler(dir_, trace, "raw", "fallocate:1", &hung);
  ASSERT_FALSE(hung) << "the program hung (the exit waited for the open its thread was in)";
  ASSERT_EQ(o.status, 0) << o.err;
}

TEST_F(ThreadExit, ExitFromASignalHandlerInsideACompactSealClosesTheTrace) {
  const std::string trace = dir_ + "/t.trace";
  bool hung = false;
  const Outcome o = exit_in_handler(dir_, trace, "compact", "pwrite:2", &hung);
  ASSERT_FALSE(hung) << "the program hung (the close waited for the seal its thread was in)";
  ASSERT_EQ(o.status, 0) << o.err;
  expect_closed_early(trace, 1);
}

TEST_F(ThreadExit, ExitFromASignalHandlerInsideAPoolsGrowthWithTheSummaryLogNeverHangs) {
  // The pool grows under its lock; simcuda's allocation sleeps a second there, and the timer's
  // handler exits at 300 ms. The exit's summary line (GPUMEM_LOG=info) would ask the pool for its
  // statistics, under the lock the interrupted growth holds.
  const std::string trace = dir_ + "/t.trace", out = dir_ + "/stdout", err = dir_ + "/stderr";
  bool hung = false;
  const Outcome o = wait_at_most(
      start(child({"exit-on-timer", "10", "300"}),
            child_environment(true,
                              {"GPUMEM_TRACE=" + trace, "GPUMEM_POOL=growth", "GPUMEM_LOG=info",
                               "SIMCUDA_ALLOC_LATENCY_US=1000000", "SIMCUDA_FREE_LATENCY_US=0"}),
            out, err),
      out, err, 20, &hung);
  ASSERT_FALSE(hung) << "the program hung (the exit's summary waited for the pool's lock)";
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_NE(o.err.find("no device summary: the program exited from inside a CUDA call"),
            std::string::npos)
      << o.err;
  // The first allocation never returned: the trace, opened at the first record, was not begun.
  EXPECT_FALSE(std::filesystem::exists(trace));
}

// --- exec: the image that opened the trace ends there -------------------------------------------

// Runs trace_child `args` with the trace at dir/t.trace; returns its outcome.
Outcome run_traced(const std::string& dir, const std::vector<std::string>& args) {
  return run(
      child(args),
      child_environment(true, {"GPUMEM_TRACE=" + dir + "/t.trace", kNoLatency[0], kNoLatency[1]}),
      dir);
}

void expect_closed_with(const std::string& path, uint64_t allocs) {
  SCOPED_TRACE(path);
  const LoadedTrace t = load_trace(path);
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_NE(t.header.flags & tr::kHeaderClosed, 0u) << "reads as killed or crashed";
  EXPECT_FALSE(t.stats.truncated) << t.stats.reason;
  const Counts c = count_pairs(t);
  EXPECT_EQ(c.alloc, allocs);
  EXPECT_EQ(c.free, allocs);
}

TEST_F(ThreadExit, ExecClosesTheTraceAndTheNewImageWritesItsOwn) {
  for (const std::string how : {"execv", "execl", "execve", "execvp", "execvpe", "execlp", "execle",
                                "fexecve", "execveat"}) {
    SCOPED_TRACE(how);
    std::filesystem::remove(dir_ + "/t.trace");
    std::filesystem::remove(dir_ + "/t.trace.1");
    const Outcome o = run_traced(dir_, {"exec-self", "30", "20", how});
    ASSERT_EQ(o.status, 0) << o.err;
    expect_closed_with(dir_ + "/t.trace", 30);
    expect_closed_with(dir_ + "/t.trace.1", 20);
    const LoadedTrace first = load_trace(dir_ + "/t.trace"),
                      second = load_trace(dir_ + "/t.trace.1");
    EXPECT_EQ(first.header.pid, second.header.pid) << "an exec keeps the pid";
  }
}

TEST_F(ThreadExit, AFailedExecSaysOnceThatTheRestIsNotRecorded) {
  const Outcome o = run_traced(dir_, {"exec-missing", "30", "20"});
  ASSERT_EQ(o.status, 0) << o.err;
  expect_closed_with(dir_ + "/t.trace", 30);
  EXPECT_EQ(occurrences(o.err, "an exec failed after the trace was closed for it"), 1u) << o.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/t.trace.1"));
}

TEST_F(ThreadExit, AVforkChildsExecLeavesTheParentsTraceOpen) {
  const Outcome o = run_traced(dir_, {"vfork-exec", "25"});
  ASSERT_EQ(o.status, 0) << o.err;
  expect_closed_with(dir_ + "/t.trace", 50);
  EXPECT_EQ(o.err.find("exec failed"), std::string::npos) << o.err;
}

// --- an address-space limit (ulimit -v): the trace's reservation leaves the program its room --

// A sanitizer's shadow memory needs far more address space than these limits: no run there.
constexpr const char* kNoRoomForShadow =
    "a sanitizer's shadow memory does not fit an address limit";

TEST_F(TraceFullDisk, UnderAnAddressSpaceLimitTheProgramKeepsSevenEighths) {
  if (gpumem::test::kSanitized) GTEST_SKIP() << kNoRoomForShadow;
  const std::string trace = dir_ + "/t.trace";
  const Outcome o =
      run(child({"pairs-as", "1000", std::to_string(4ull << 30)}),
          child_environment(true, {"GPUMEM_TRACE=" + trace, kNoLatency[0], kNoLatency[1]}), dir_);
  ASSERT_EQ(o.status, 0) << (o.status == 7 ? "the program's own 2.5 GiB mapping failed: " : "")
                         << o.err;
  expect_closed_with(trace, 1000);
}

TEST_F(TraceFullDisk, ARawTraceThatFillsItsReservationDropsRecordsAndSaysWhy) {
  if (gpumem::test::kSanitized) GTEST_SKIP() << kNoRoomForShadow;
  // 2 GiB of address space: the trace reserves 256 MiB, 4 Mi records; 2.2 M pairs overflow it.
  const std::string trace = dir_ + "/t.trace";
  constexpr unsigned long long kPairs = 2'200'000;
  const Outcome o =
      run(child({"pairs-as", std::to_string(kPairs), std::to_string(2ull << 30)}),
          child_environment(true, {"GPUMEM_TRACE=" + trace, kNoLatency[0], kNoLatency[1]}), dir_);
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(occurrences(o.err,
                        "filled the 256 MiB of address space reserved for it (an eighth "
                        "of the address-space limit, ulimit -v)"),
            1u)
      << o.err;
  const LoadedTrace t = load_trace(trace);
  ASSERT_TRUE(t.opened) << t.error;
  EXPECT_NE(t.header.flags & tr::kHeaderClosed, 0u);
  EXPECT_GT(t.header.records_dropped, 0u);
  const Counts c = count_pairs(t);
  EXPECT_EQ(c.alloc + c.free + t.header.records_dropped, 2 * kPairs)
      << "every call is either kept or counted";
}

// --- native stacks in a compact trace: named at exit without reading the sealed file ---------

// With GPUMEM_STACKS=1 the exit names every return address of the stacks written. In a compact
// trace those stack records were sealed into the file long before (only the header and the ring
// are mapped): the exit walked the mapping as a raw trace's and died of SIGSEGV once the trace
// outgrew the ring, or named nothing.
TEST_F(ThreadExit, ACompactTraceWithStacksClosesAndNamesEveryReturnAddress) {
  for (const char* format : {"compact", "raw"}) {
    SCOPED_TRACE(format);
    const std::string trace = dir_ + "/" + format + ".trace";
    const Outcome o =
        run(child({"pairs", "40000"}),
            child_environment(
                true, {"GPUMEM_TRACE=" + trace, std::string("GPUMEM_TRACE_FORMAT=") + format,
                       "GPUMEM_STACKS=1", kNoLatency[0], kNoLatency[1]}),
            dir_);
    ASSERT_FALSE(o.signaled) << "died of signal " << o.status - 128 << ": " << o.err;
    ASSERT_EQ(o.status, 0) << o.err;
    std::string error;
    auto reader = tr::Reader::open(trace, &error);
    ASSERT_NE(reader, nullptr) << error;
    EXPECT_NE(reader->header().flags & tr::kHeaderClosed, 0u);
    std::set<uint64_t> pcs, named;
    uint64_t allocs = 0;
    tr::Event ev;
    while (reader->next(&ev)) {
      const auto op = static_cast<tr::Op>(ev.rec.op);
      if (op == tr::Op::alloc) ++allocs;
      if (op == tr::Op::symbol) {
        EXPECT_TRUE(named.insert(ev.rec.address).second) << "named twice";
      }
      if (op != tr::Op::stack) continue;
      for (size_t i = 0; i + sizeof(uint64_t) <= ev.payload.size(); i += sizeof(uint64_t)) {
        uint64_t pc;
        std::memcpy(&pc, ev.payload.data() + i, sizeof pc);
        if (pc != 0) pcs.insert(pc);
      }
    }
    EXPECT_FALSE(reader->stats().truncated) << reader->stats().reason;
    EXPECT_EQ(allocs, 40000u);
    EXPECT_FALSE(pcs.empty());
    EXPECT_EQ(named, pcs) << "every return address named once, nothing else";
  }
}

}  // namespace
}  // namespace reliability
