// `gpumem top` following a trace this test writes itself with the real writer (prefix top.), so
// that the test decides exactly when each record lands: a slot left zero while later records are
// committed, a clean close while top follows, and what top skips when nothing was appended. The
// writer lives in this process, so top sees a live writer until the test closes the trace.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gpumem/trace/format.h"
#include "gpumem/trace/writer.h"
#include "scratch.h"
#include "shell.h"
#include "top_support.h"

namespace {

using gpumem::TraceWriter;
using gpumem::test::Output;
using gpumem::test::ScratchDir;
using gpumem::test::sh;
using gpumem::test::top::read_file;
using gpumem::test::top::start_plain_top;
using gpumem::test::top::stop_top;
using gpumem::test::top::wait_for;
namespace tr = gpumem::trace;

const std::string kCli = GPUMEM_CLI;
constexpr uint64_t kMiB = 1 << 20;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// A raw (version 1) trace with device 0, written by this process.
struct LiveTrace {
  explicit LiveTrace(const std::string& path) {
    w.set_format(TraceWriter::Format::raw);
    char err[512];
    ok = w.open(path.c_str(), tr::Header{}, err, sizeof err);
    w.set_device(0, 16ull << 30, 0, "test device");
  }
  // Appends an allocation of `bytes` at `address`; returns the file offset of its slot.
  uint64_t alloc(uint64_t address, uint64_t bytes) {
    const uint64_t slot = w.records_written();
    tr::Record r{};
    r.op = static_cast<uint16_t>(tr::Op::alloc);
    r.api = static_cast<uint16_t>(tr::Api::cudaMalloc);
    r.address = address;
    r.bytes = bytes;
    w.append(r);
    return tr::kHeaderSize + slot * tr::kRecordSize;
  }
  TraceWriter w;
  bool ok = false;
};

// A slot the writer reserved and never filled (zero) with a committed record after it: top holds
// before it while it may still be in flight, and reads past it after three looks that found it
// zero, as `gpumem report` reads it; skipping looks while nothing is appended must not stop that.
// Allocations of 1, 2 and 4 MiB, the middle one's slot made zero again: that record never
// happened (through the file: the writer's shared mapping sees the same page).
void three_allocations_the_middle_one_zero(LiveTrace& t, const std::string& path) {
  t.alloc(0x10000000, 1 * kMiB);
  const uint64_t hole = t.alloc(0x20000000, 2 * kMiB);
  t.alloc(0x30000000, 4 * kMiB);
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const char zero[tr::kRecordSize] = {};
  ASSERT_EQ(::pwrite(fd, zero, sizeof zero, static_cast<off_t>(hole)),
            static_cast<ssize_t>(sizeof zero));
  ::close(fd);
}

TEST(TopFollow, ASlotLeftZeroIsReadPastAfterThreeLooks) {
  ScratchDir dir("gpumem-top-follow");
  const std::string path = dir / "hole.trace";
  LiveTrace t(path);
  ASSERT_TRUE(t.ok);
  ASSERT_NO_FATAL_FAILURE(three_allocations_the_middle_one_zero(t, path));

  // Not a terminal: one line per refresh. Refreshes are counted, not timed.
  Output o = sh(kCli + " top --interval 0.05 --iterations 8 '" + path + "'");
  ASSERT_EQ(o.status, 0) << o.out;
  const std::vector<std::string> lines = lines_of(o.out);
  ASSERT_EQ(lines.size(), 8u) << o.out;
  // Held before the zero slot at first...
  EXPECT_NE(lines[0].find(" state=running allocated=1048576 "), std::string::npos) << o.out;
  EXPECT_NE(lines[0].find(" allocs=1 "), std::string::npos) << o.out;
  EXPECT_NE(lines[3].find(" allocs=1 "), std::string::npos) << o.out;
  // ...read past on the fifth refresh (three looks found it zero), and from then on.
  for (size_t i = 4; i < lines.size(); ++i) {
    EXPECT_NE(lines[i].find(" allocated=5242880 "), std::string::npos) << o.out;
    EXPECT_NE(lines[i].find(" allocs=2 "), std::string::npos) << o.out;
  }
  t.w.close();
  // The report of the same trace: the same two allocations, the zero slot a torn one.
  Output r = sh(kCli + " report --json - '" + path + "'");
  ASSERT_EQ(r.status, 0) << r.out;
  const nlohmann::json rep = nlohmann::json::parse(r.out);
  EXPECT_EQ(rep["devices"][0]["final"]["allocated_bytes"], 5 * kMiB);
  EXPECT_EQ(rep["devices"][0]["counts"]["alloc"], 2);
}

// The same zero slot, but the trace closes cleanly while top still holds before it (fewer than
// three looks found it zero): a clean close leaves nothing in flight, so the rest is read past
// it at the look that sees the close. Before, top saw the close, stopped following and showed
// the process ended with one allocation for good, where `gpumem report` counts two (found by
// fuzz_top).
TEST(TopFollow, ATraceClosedWhileTopHoldsBeforeAZeroSlotIsReadPastIt) {
  ScratchDir dir("gpumem-top-follow");
  const std::string path = dir / "hole.trace";
  const std::string out = dir / "top.out";
  LiveTrace t(path);
  ASSERT_TRUE(t.ok);
  ASSERT_NO_FATAL_FAILURE(three_allocations_the_middle_one_zero(t, path));
  // Looks 3 s apart: the close comes between the first and the second.
  const pid_t top = start_plain_top(kCli, path, out, dir / "top.pid", "3");
  ASSERT_GT(top, 0);
  ASSERT_TRUE(wait_for([&] {
    return read_file(out).find("state=running allocated=1048576 ") != std::string::npos;
  })) << read_file(out);
  t.w.close();
  const bool ended =
      wait_for([&] { return read_file(out).find("state=ended ") != std::string::npos; });
  stop_top(top);
  const std::string seen = read_file(out);
  ASSERT_TRUE(ended) << seen;
  const size_t at = seen.find("state=ended ");
  EXPECT_EQ(seen.find("state=ended allocated=5242880 "), at) << seen;
  EXPECT_NE(seen.find(" allocs=2 ", at), std::string::npos) << seen;
}

// The writer trims the unused end of its file at a clean close: the file shrinks, but not below
// what top has read, so top goes on from where it was (no "truncated: read again" note) and
// shows the process ended with the numbers of the whole trace.
TEST(TopFollow, ACleanCloseWhileFollowedIsNotATruncation) {
  ScratchDir dir("gpumem-top-follow");
  const std::string path = dir / "live.trace";
  const std::string out = dir / "top.out";
  LiveTrace t(path);
  ASSERT_TRUE(t.ok);
  t.alloc(0x10000000, 3 * kMiB);
  const pid_t top = start_plain_top(kCli, path, out, dir / "top.pid");
  ASSERT_GT(top, 0);
  ASSERT_TRUE(wait_for([&] {
    return read_file(out).find("state=running allocated=3145728 ") != std::string::npos;
  })) << read_file(out);
  t.alloc(0x20000000, 1 * kMiB);
  t.w.close();
  const bool ended = wait_for(
      [&] { return read_file(out).find("state=ended allocated=4194304 ") != std::string::npos; });
  stop_top(top);
  const std::string seen = read_file(out);
  EXPECT_TRUE(ended) << seen;
  EXPECT_EQ(seen.find("note="), std::string::npos) << seen;  // no truncation, no re-read
  const size_t at = seen.find("state=ended allocated=4194304 ");
  ASSERT_NE(at, std::string::npos) << seen;
  EXPECT_NE(seen.find(" allocs=2 ", at), std::string::npos) << seen;
}

// A clean close with nothing appended since top's last look: top sees the trace ended (its header
// says so), though no slot after what it read changed.
TEST(TopFollow, ACloseWithNothingAppendedShowsEnded) {
  ScratchDir dir("gpumem-top-follow");
  const std::string path = dir / "quiet.trace";
  const std::string out = dir / "top.out";
  LiveTrace t(path);
  ASSERT_TRUE(t.ok);
  t.alloc(0x10000000, 3 * kMiB);
  const pid_t top = start_plain_top(kCli, path, out, dir / "top.pid");
  ASSERT_GT(top, 0);
  // Two refreshes of the idle trace, so that top is looking, not reading, when it closes.
  ASSERT_TRUE(wait_for([&] {
    const std::string seen = read_file(out);
    const size_t first = seen.find("state=running allocated=3145728 ");
    return first != std::string::npos &&
           seen.find("state=running allocated=3145728 ", first + 1) != std::string::npos;
  })) << read_file(out);
  t.w.close();
  const bool ended = wait_for(
      [&] { return read_file(out).find("state=ended allocated=3145728 ") != std::string::npos; });
  stop_top(top);
  EXPECT_TRUE(ended) << read_file(out);
}

// A trace removed while top follows it shows as gone, and top holds it open no longer (the
// disk space of a removed file is freed only when nothing holds it).
TEST(TopFollow, ARemovedTraceIsNotHeldOpen) {
  ScratchDir dir("gpumem-top-follow");
  const std::string path = dir / "removed.trace";
  const std::string out = dir / "top.out";
  LiveTrace t(path);
  ASSERT_TRUE(t.ok);
  t.alloc(0x10000000, 3 * kMiB);
  const pid_t top = start_plain_top(kCli, path, out, dir / "top.pid");
  ASSERT_GT(top, 0);
  const std::string fds = "/proc/" + std::to_string(top) + "/fd";
  auto holds_trace = [&] {
    return sh("ls -l " + fds + " 2>/dev/null").out.find("removed.trace") != std::string::npos;
  };
  // Running and idle: top looks at the file at every refresh through a descriptor it keeps.
  EXPECT_TRUE(wait_for([&] {
    return read_file(out).find("state=running allocated=3145728 ") != std::string::npos &&
           holds_trace();
  })) << read_file(out);
  ASSERT_EQ(::unlink(path.c_str()), 0);
  const bool gone =
      wait_for([&] { return read_file(out).find("state=gone") != std::string::npos; });
  const bool held = holds_trace();
  stop_top(top);
  EXPECT_TRUE(gone) << read_file(out);
  EXPECT_FALSE(held) << sh("ls -l " + fds).out;
}

// `fragmentation` is the last point of the timeline top keeps: 240 boxes, each the maximum over
// its time (docs/top.md). A pool segment with three 4 MiB blocks; for 2 s near the end the middle
// one is free (free space in two 4 MiB pieces: fragmentation 0.5), then taken again. The last of
// 240 boxes over the 1000 s holds those 2 s; the last of the report's default 2000 does not.
TEST(TopFollow, FragmentationIsTheLastPointOfA240PointTimeline) {
  ScratchDir dir("gpumem-top-follow");
  const std::string path = dir / "pool.trace";
  {
    TraceWriter w;
    w.set_format(TraceWriter::Format::raw);
    tr::Header h{};
    h.clock_base_ns = 1'000'000'000;
    char err[512];
    ASSERT_TRUE(w.open(path.c_str(), h, err, sizeof err)) << err;
    w.set_device(0, 16ull << 30, 0, "test device");
    const uint64_t base = 0x40000000, s = 1'000'000'000;
    auto put = [&](tr::Op op, uint64_t address, uint64_t bytes, uint64_t t_s10) {
      tr::Record r{};
      r.op = static_cast<uint16_t>(op);
      r.api = static_cast<uint16_t>(op == tr::Op::free ? tr::Api::cudaFree : tr::Api::cudaMalloc);
      r.flags = op == tr::Op::segment_reserve ? 0 : tr::kFlagPooled;
      r.aux = op == tr::Op::segment_reserve ? 1 : 0;
      r.address = address;
      r.bytes = bytes;
      r.t_ns = s + t_s10 * s / 10;  // tenths of a second after the trace's start
      w.append(r);
    };
    put(tr::Op::segment_reserve, base, 16 * kMiB, 1);
    for (uint64_t i = 0; i < 3; ++i) put(tr::Op::alloc, base + i * 4 * kMiB, 4 * kMiB, 2);
    put(tr::Op::free, base + 4 * kMiB, 4 * kMiB, 9975);
    put(tr::Op::alloc, base + 4 * kMiB, 4 * kMiB, 9995);
    put(tr::Op::alloc, 0x90000000, 0, 10000);  // the end of the run: 1000 s
    w.close();
  }
  Output t = sh(kCli + " top --json '" + path + "'");
  ASSERT_EQ(t.status, 0) << t.out;
  const nlohmann::json top = nlohmann::json::parse(t.out);
  ASSERT_EQ(top["processes"].size(), 1u) << t.out;
  EXPECT_EQ(top["processes"][0]["devices"][0]["fragmentation"], 0.5) << t.out;
  Output r = sh(kCli + " report --json - --points 240 '" + path + "'");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["devices"][0]["timeline"]["fragmentation"].back(), 0.5);
  r = sh(kCli + " report --json - '" + path + "'");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["devices"][0]["timeline"]["fragmentation"].back(), 0.0);
}

// Strings of a trace that are not UTF-8 (a device name, a phase) leave --json whole: written as
// U+FFFD, as the report writes them (top aborted on nlohmann's type_error 316).
TEST(TopFollow, JsonOfStringsThatAreNotUtf8IsWhole) {
  ScratchDir dir("gpumem-top-follow");
  const std::string path = dir / "utf.trace";
  {
    TraceWriter w;
    w.set_format(TraceWriter::Format::raw);
    char err[512];
    ASSERT_TRUE(w.open(path.c_str(), tr::Header{}, err, sizeof err)) << err;
    w.set_device(0, 16ull << 30, 0, "dev \xff\xfe");
    tr::Record r{};
    r.op = static_cast<uint16_t>(tr::Op::alloc);
    r.api = static_cast<uint16_t>(tr::Api::cudaMalloc);
    r.address = 0x40000000;
    r.bytes = 4 * kMiB;
    w.append(r);
    w.close();
  }
  Output t = sh(kCli + " top --json '" + path + "'");
  ASSERT_EQ(t.status, 0) << t.out;
  const nlohmann::json top = nlohmann::json::parse(t.out);
  ASSERT_EQ(top["processes"].size(), 1u) << t.out;
  EXPECT_EQ(top["processes"][0]["devices"][0]["name"], "dev \uFFFD\uFFFD") << t.out;
  EXPECT_EQ(top["processes"][0]["devices"][0]["allocated_bytes"], 4 * kMiB) << t.out;
}

// A killed writer's reason is on its plain line (scripts read it there).
TEST(TopFollow, ANotCleanlyClosedTraceOfAGoneWriterSaysWhyOnItsLine) {
  ScratchDir dir("gpumem-top-follow");
  const std::string path = dir / "killed.trace";
  // A child writes and dies without closing: its pid is gone, its trace not closed.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    LiveTrace t(path);
    t.alloc(0x10000000, 2 * kMiB);
    ::_exit(t.ok ? 0 : 1);  // no close(): as if killed
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  Output o = sh(kCli + " top --interval 0.05 --iterations 3 '" + path + "'");
  ASSERT_EQ(o.status, 0) << o.out;
  const std::vector<std::string> lines = lines_of(o.out);
  ASSERT_EQ(lines.size(), 3u) << o.out;
  for (const std::string& line : lines) {
    EXPECT_NE(line.find(" state=killed allocated=2097152 "), std::string::npos) << o.out;
    EXPECT_NE(line.find(" note=\"not closed cleanly (process killed or crashed?)\""),
              std::string::npos)
        << o.out;
  }
}

}  // namespace
