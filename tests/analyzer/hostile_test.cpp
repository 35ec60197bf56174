// Hostile input for the report renderers: names that are not UTF-8 or hold markup, times that go
// anywhere, counts near 2^64, one timeline point. Every output must still be whole.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdio_ext.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "events.h"
#include "gpumem/analyzer/render_json.h"
#include "gpumem/analyzer/render_text.h"
#include "gpumem/analyzer/report.h"
#include "gpumem/visible_text.h"
#include "metrics.h"
#include "render_html.h"
#include "render_perfetto.h"

namespace gpumem::analyzer {
namespace {

using testing::Events;
using testing::make_header;

void render_all(const Report& r) {
  EXPECT_TRUE(nlohmann::json::accept(render_json(r)));
  EXPECT_TRUE(nlohmann::json::accept(render_perfetto(r)));
  EXPECT_FALSE(render_html(r).empty());
  EXPECT_FALSE(render_text(r).empty());
}

// --points 1 over a span of 2^63 ns or more (a corrupt trace's times): the box width doubled
// until it wrapped to 0 and the next division killed the report (SIGFPE).
TEST(Hostile, OnePointOverTheWidestSpan) {
  Events e;
  trace::Record first = Events::rec(0, trace::Op::alloc, 0xA000, 100, 0, 0);
  first.t_ns = 0;  // 1 s before the clock base
  trace::Record last = first;
  last.address = 0xB000;
  last.t_ns = testing::kBase + static_cast<uint64_t>(INT64_MAX);
  e.add(first).add(last);
  AnalysisOptions o;
  o.max_points = 1;
  Report r = e.analyze(make_header(), o);
  ASSERT_EQ(r.devices.size(), 1u);
  const Timeline& t = r.devices[0].timeline;
  ASSERT_EQ(t.t_ns.size(), 1u);
  EXPECT_EQ(t.t_ns[0], INT64_MAX);
  EXPECT_EQ(t.allocated[0], 200u);
  render_all(r);
}

// Every string a trace carries, each one hostile at once: bytes that are not UTF-8, control
// characters, quotes, markup that ends a script block or a comment.
const std::string kHostile = std::string("\xff\xfe bad \xc3(") +
                             "\x1b[2J\x07\x9b\r\n\t\"'\\ </script><!-- ]]> <b>x</b> \xe2\x80\xa8" +
                             std::string(1, '\0') + "end";

Report hostile_report() {
  constexpr uint64_t kPy = trace::kPythonFrameTag;
  Events e;
  e.string(1, "phase " + kHostile).string(2, "sym " + kHostile).string(3, "py " + kHostile);
  e.string(4, "mark " + kHostile);
  e.stack(1, {0x1000, kPy | 7}).symbol(0x1000, 2).symbol(kPy | 7, 3);
  e.begin(10, 1).alloc(20, 0xA000, 100, 1).failed(25, 1 << 20, 100);
  e.add(Events::rec(30, trace::Op::mark, 0, 0, 4, -1)).end(40, 1);
  static trace::Header h;
  h = make_header();
  const std::string text = kHostile;
  std::memcpy(h.command, text.data(), std::min(text.size(), sizeof h.command - 1));
  std::memcpy(h.host, text.data(), std::min(text.size(), sizeof h.host - 1));
  std::memcpy(h.devices[0].name, text.data(), std::min(text.size(), sizeof h.devices[0].name - 1));
  return e.analyze(h);
}

// Each output stays whole with every string hostile: the JSON and Perfetto files parse, the page
// holds its two script blocks only, the terminal text holds no raw control character.
TEST(Hostile, StringsLeaveEveryOutputWhole) {
  const Report r = hostile_report();
  ASSERT_EQ(r.devices.size(), 1u);
  ASSERT_EQ(r.devices[0].phases.size(), 1u);
  render_all(r);
  const std::string html = render_html(r);
  size_t scripts = 0;
  for (size_t at = 0; (at = html.find("</script", at)) != std::string::npos; ++at) ++scripts;
  EXPECT_EQ(scripts, 2u);
  EXPECT_EQ(html.find("<!-- ]]>"), std::string::npos);
  const std::string text = render_text(r);
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    EXPECT_TRUE(u == '\n' || (u >= 0x20 && u != 0x7F && u != 0x9B && u != 0xFF)) << int(u);
  }
  EXPECT_NE(text.find("phase \\xff\\xfe bad \\xc3(\\x1b[2J\\x07\\x9b"), std::string::npos) << text;
}

// `gpumem report run.trace --json run.trace` read the trace, then wrote the report over it: the
// recorded run was gone. Any output naming an input (a directory's trace, another spelling) is
// refused before anything is read or written.
TEST(Hostile, OutputNamingAnInputTraceIsRefused) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("gpumem-hostile-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  Events e;
  e.alloc(10, 0xA000, 100);
  const std::string bytes = e.file_bytes(make_header());
  const fs::path trace = dir / "run.trace";
  std::ofstream(trace, std::ios::binary) << bytes;
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{trace.string()}, trace.string()},
      {{dir.string()}, (dir / "." / "run.trace").string()},
  };
  for (const auto& [inputs, output] : cases) {
    for (int which = 0; which < 3; ++which) {
      ReportOptions o;
      o.inputs = inputs;
      o.progress = false;
      (which == 0 ? o.json_path : which == 1 ? o.html_path : o.perfetto_path) = output;
      ::testing::internal::CaptureStderr();
      EXPECT_EQ(report_main(o), 1);
      const std::string err = ::testing::internal::GetCapturedStderr();
      EXPECT_NE(err.find(std::string(which == 0   ? "--json "
                                     : which == 1 ? "--html "
                                                  : "--perfetto ") +
                         output + " names a file this report reads"),
                std::string::npos)
          << err;
      std::ifstream in(trace, std::ios::binary);
      EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), bytes);
    }
  }
  // Another file next to it is written as before.
  ReportOptions o;
  o.inputs = {trace.string()};
  o.progress = false;
  o.json_path = (dir / "report.json").string();
  EXPECT_EQ(report_main(o), 0);
  EXPECT_TRUE(fs::exists(o.json_path));
  fs::remove_all(dir);
}

// Two traces with one pid (ranks on two hosts, or in two containers): each device's page data
// holds its own trace's out-of-memory failures only (they were matched by pid, so both devices
// showed both).
TEST(Hostile, PageOomsBelongToTheirOwnTraceWhenPidsRepeat) {
  Analysis a;
  for (uint64_t bytes : {1000u, 2000u}) {
    Events e;
    e.alloc(10, 0xA000, 100);
    trace::Record failed = Events::rec(20, trace::Op::alloc_failed, 0, bytes, 100, 0);
    failed.result = 2;
    trace::Record oom = Events::rec(21, trace::Op::oom, 100, bytes, 0, 0);
    oom.stream = 100;
    oom.result = 2;
    e.add(failed).add(oom);
    a.begin_trace(make_header(100, -1), "host" + std::to_string(bytes) + ".trace");
    e.feed(a);
    a.end_trace(trace::ReadStats{});
  }
  const Report r = a.finish();
  ASSERT_EQ(r.devices.size(), 2u);
  ASSERT_EQ(r.ooms.size(), 2u);
  const nlohmann::json page = html_data(r);
  for (size_t d = 0; d < 2; ++d) {
    const nlohmann::json& ooms = page["devices"][d]["ooms"];
    ASSERT_EQ(ooms.size(), 1u) << ooms.dump();
    EXPECT_EQ(ooms[0]["requested"], d == 0 ? 1000u : 2000u);
    // The failed-allocation marks too (anomalies carry their trace, not only its pid).
    const nlohmann::json& failed = page["devices"][d]["failed"];
    ASSERT_EQ(failed.size(), 1u) << failed.dump();
    EXPECT_EQ(failed[0]["bytes"], d == 0 ? 1000u : 2000u);
  }
  // In the Perfetto file each failure is an instant on its own trace's process track.
  const nlohmann::json p = nlohmann::json::parse(render_perfetto(r));
  std::vector<std::pair<uint64_t, uint64_t>> instants;  // (process track, requested bytes)
  for (const nlohmann::json& ev : p["traceEvents"])
    if (ev.value("cat", "") == "alloc_failed")
      instants.emplace_back(ev["pid"], ev["args"]["requested_bytes"]);
  ASSERT_EQ(instants.size(), 2u) << p.dump();
  EXPECT_NE(instants[0].first, instants[1].first);
  EXPECT_EQ(instants[0].second + instants[1].second, 3000u);
}

// Times that span more than 2^63 ns (a corrupt trace): the Perfetto file's times wrapped, so the
// latest events came out before the start of the timeline (negative ts, out of order).
TEST(Hostile, PerfettoTimesNeverWrap) {
  Events e;
  e.begin(5, 1).alloc(10, 0xA000, 100).end(20, 1);
  trace::Record early = Events::rec(0, trace::Op::alloc, 0xB000, 100, 0, 0);
  early.t_ns = 0;  // 1 s before the clock base
  trace::Record late = early;
  late.address = 0xC000;
  late.t_ns = testing::kBase + static_cast<uint64_t>(INT64_MAX);
  e.add(early).add(late);
  const nlohmann::json p = nlohmann::json::parse(render_perfetto(e.analyze()));
  double last = 0;
  size_t timed = 0;
  for (const nlohmann::json& ev : p["traceEvents"]) {
    if (!ev.contains("ts")) continue;
    ++timed;
    const double ts = ev["ts"];
    EXPECT_GE(ts, last) << ev.dump();
    last = ts;
  }
  EXPECT_GE(timed, 4u);
  EXPECT_GT(last, 9e15);  // INT64_MAX ns after the earliest, in microseconds
}

// Whether every byte of `text` is part of valid UTF-8 and none is a control other than \t \n \r.
bool clean_utf8(const std::string& text, size_t* bad_at) {
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t n = c < 0x80 ? 1 : visible_detail::utf8_length(text, i);
    if (n == 0 || (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) {
      *bad_at = i;
      return false;
    }
    i += n;
  }
  return true;
}

// The page's title and header (command line, host) took the trace's bytes as they were: a page
// that is not UTF-8 (a tool reading it as UTF-8 fails) with raw control characters. Now shown
// as the terminal shows them; a long command is cut between characters, never inside one.
TEST(Hostile, PageIsValidUtf8WithEveryHeaderStringHostile) {
  size_t at = 0;
  const std::string html = render_html(hostile_report());
  EXPECT_TRUE(clean_utf8(html, &at)) << html.substr(at > 60 ? at - 60 : 0, 120);
  EXPECT_NE(html.find("<h1 id=\"command\" title=\"command line of the traced program\">"
                      "\\xff\\xfe bad \\xc3(\\x1b[2J\\x07\\x9b\\r\\n\\t&quot;&#39;\\ "
                      "&lt;/script&gt;&lt;!-- ]]&gt; &lt;b&gt;x&lt;/b&gt;"),
            std::string::npos);
  Events e;
  e.alloc(10, 0xA000, 100);
  static trace::Header h;
  h = make_header();
  std::string command;
  for (int i = 0; i < 60; ++i) command += "\xc3\xa9";  // é: the cut at 77 bytes falls inside one
  std::memcpy(h.command, command.data(), command.size());
  const std::string page = render_html(e.analyze(h));
  EXPECT_TRUE(clean_utf8(page, &at)) << page.substr(at > 60 ? at - 60 : 0, 120);
  EXPECT_NE(page.find("<title>gpumem report: " + command.substr(0, 76) + "...</title>"),
            std::string::npos);
}

// Two processes whose peaks are near 2^64 bytes (a corrupt trace): their mean, a double, rounds
// to 2^64, which does not convert to uint64 (undefined; on x86 it came out as "mean 0 B").
TEST(Hostile, RanksMeanNearTwoToThe64) {
  Analysis a;
  for (int rank = 0; rank < 2; ++rank) {
    Events e;
    e.alloc(10, 0xA000, UINT64_MAX - 1);
    a.begin_trace(make_header(300 + static_cast<uint32_t>(rank), rank), "rank.trace");
    e.feed(a);
    a.end_trace(trace::ReadStats{});
  }
  Report r = a.finish();
  r.ranks = summarize_ranks(r);
  const std::string text = render_text(r);
  EXPECT_NE(text.find("mean 16384.00 PiB, imbalance 0.0%"), std::string::npos) << text;
}

// An out-of-memory failure retried more than 2^63 ns later (a corrupt trace's times): the delay
// overflowed (undefined) and the text said it succeeded a negative time later.
TEST(Hostile, OomRetryDelayNeverWraps) {
  Events e;
  trace::Record failed = Events::rec(0, trace::Op::alloc_failed, 0, 4096, 0, 0);
  failed.t_ns = 0;  // 1 s before the clock base
  failed.result = 2;
  trace::Record oom = Events::rec(0, trace::Op::oom, 0, 4096, 0, 0);
  oom.t_ns = 0;
  oom.result = 2;
  trace::Record retry = Events::rec(0, trace::Op::alloc, 0xA000, 4096, 0, 0);
  retry.t_ns = testing::kBase + static_cast<uint64_t>(INT64_MAX);
  e.add(failed).add(oom).add(retry);
  const Report r = e.analyze();
  ASSERT_EQ(r.ooms.size(), 1u);
  ASSERT_TRUE(r.ooms[0].retried);
  const std::string text = render_oom_text(r.ooms[0]);
  EXPECT_NE(text.find("succeeded 9223372036.855 s later"), std::string::npos) << text;
}

// A phase whose end was recorded before its begin (two threads' records slightly out of order)
// took its negative length off the phase name's total time.
TEST(Hostile, PhaseEndedBeforeItBeganAddsNoTime) {
  Events e;
  e.alloc(500, 0xA000, 100).string(1, "step");
  e.begin(1000, 1).end(3000, 1).begin(5000, 1).end(4000, 1);
  const std::string text = render_text(e.analyze());
  EXPECT_NE(text.find("100 B  step                  2x    2.000 us in all"), std::string::npos)
      << text;
}

// `gpumem report t.trace > /dev/full` (and with --json -): the write failed and the command exited
// 0 (1 with --json -) without a word. Now it says what went wrong and exits 1.
TEST(Hostile, ReportToAFullStdoutSaysSo) {
  namespace fs = std::filesystem;
  const fs::path trace =
      fs::temp_directory_path() / ("gpumem-full-" + std::to_string(getpid()) + ".trace");
  Events e;
  e.alloc(10, 0xA000, 100);
  std::ofstream(trace, std::ios::binary) << e.file_bytes(make_header());
  for (const char* what : {"report", "summary"}) {
    ReportOptions o;
    o.inputs = {trace.string()};
    o.progress = false;
    if (what == std::string("report")) o.json_path = "-";
    std::fflush(stdout);
    const int saved = dup(STDOUT_FILENO);
    const int full = open("/dev/full", O_WRONLY);
    ASSERT_GE(full, 0);
    dup2(full, STDOUT_FILENO);
    ::testing::internal::CaptureStderr();
    const int status = report_main(o);
    const std::string err = ::testing::internal::GetCapturedStderr();
    __fpurge(stdout);
    clearerr(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(full);
    EXPECT_EQ(status, 1) << what;
    EXPECT_NE(err.find(std::string("gpumem report: cannot write the ") + what +
                       " to standard output (No space left on device)"),
              std::string::npos)
        << err;
  }
  fs::remove(trace);
}

// `gpumem report t.trace --html out/` (a directory): the message said to check that the file's
// directory exists and is writable, which it was. Now it says the path is a directory.
TEST(Hostile, ReportIntoADirectorySaysItIsOne) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("gpumem-outdir-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "out");
  Events e;
  e.alloc(10, 0xA000, 100);
  std::ofstream(dir / "t.trace", std::ios::binary) << e.file_bytes(make_header());
  ReportOptions o;
  o.inputs = {(dir / "t.trace").string()};
  o.progress = false;
  o.html_path = (dir / "out").string();
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(report_main(o), 1);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("gpumem report: cannot write " + o.html_path +
                     ": it is a directory; name a file in it"),
            std::string::npos)
      << err;
  fs::remove_all(dir);
}

// A damaged trace whose records name every device ordinal a record can hold: each device met
// made a DeviceState of about 14 KiB, so 65535 ordinals took about 0.9 GiB. Records naming a
// device outside -1..63 (the writer never writes one) are skipped, counted and said; the rest of
// the trace is analysed as if they were not there, one record at a time or in runs.
TEST(Hostile, RecordsNamingImpossibleDevicesAreSkippedAndSaid) {
  Events e;
  e.alloc(10, 0xA000, 100).alloc(20, 0xB000, 50, 0, -1);
  uint64_t bad = 0;
  for (int dev = INT16_MIN; dev <= INT16_MAX; ++dev) {
    if (dev >= -1 && dev < trace::kMaxDevices) continue;
    // Far in the future: a skipped record's time must not stretch the trace's span either.
    trace::Record r = Events::rec(1'000'000'000, trace::Op::alloc,
                                  0x100000 + static_cast<uint64_t>(dev + 40000) * 256, 64, 0, dev);
    e.add(r);
    ++bad;
    if (dev % 7 == 0) {
      e.add(Events::rec(30, trace::Op::segment_reserve, 0x9000000, 1 << 21, 0, dev));
      e.add(Events::rec(30, trace::Op::alloc_failed, 0, 1 << 30, 0, dev));
      e.anomaly(30, trace::AnomalyKind::free_unknown, 0xdead, dev);
      bad += 3;
    }
  }
  // A free naming an impossible device is damaged too; a mark naming one names no device.
  e.add(Events::rec(40, trace::Op::free, 0xA000, 0, 0, 5000));
  ++bad;
  e.add(Events::rec(50, trace::Op::mark, 0, 0, 0, 30000));
  e.free(60, 0xB000, -1);
  // The same right after an allocation on the device the run is on (found by fuzz_analysis: the
  // runs' fast path took the free as its allocation's device's, one by one it was skipped).
  e.alloc(70, 0xC000, 30);
  e.add(Events::rec(80, trace::Op::free, 0xC000, 0, 0, 5000));
  ++bad;

  auto check = [&](const Report& r) {
    ASSERT_EQ(r.devices.size(), 2u);
    EXPECT_EQ(r.devices[0].device, -1);
    EXPECT_EQ(r.devices[1].device, 0);
    EXPECT_EQ(r.devices[0].counts.alloc, 1u);
    EXPECT_EQ(r.devices[0].counts.free, 1u);
    EXPECT_EQ(r.devices[1].counts.alloc, 2u);
    EXPECT_EQ(r.devices[1].counts.free, 0u);  // the damaged frees were not taken
    EXPECT_EQ(r.devices[1].final.allocated_bytes, 130u);
    EXPECT_TRUE(r.anomalies.empty());
    ASSERT_EQ(r.traces.size(), 1u);
    const TraceSummary& t = r.traces[0];
    EXPECT_EQ(t.events, e.records().size() - bad);
    EXPECT_EQ(t.last_ns, 70);
    EXPECT_TRUE(t.truncated);
    EXPECT_EQ(t.truncated_reason, std::to_string(bad) +
                                      " damaged record(s) skipped: they name a device outside "
                                      "-1..63");
    render_all(r);
  };
  check(e.analyze());
  Analysis a;
  a.begin_trace(make_header(), "test.trace");
  for (size_t i = 0; i < e.records().size(); i += 100) {
    trace::Batch b;
    b.records = e.records().data() + i;
    b.count = std::min<size_t>(100, e.records().size() - i);
    a.feed(b);
  }
  a.end_trace(trace::ReadStats{});
  check(a.finish());
}

// Sizes whose sum wraps past 2^64 (a damaged trace): the live set at the peak is copied at the
// next change that may lower allocated, and an allocation that wraps the sum is one. Before, the
// 7-byte allocation after the peak was counted in the peak's live set by size class, and only
// when no snapshot (gpumem top) came between the two records.
TEST(Hostile, AnAllocationThatWrapsTheSumTakesThePeaksLiveSetFirst) {
  Events e;
  e.alloc(10, 0xA000, UINT64_MAX).alloc(20, 0xB000, 7);
  const Report r = e.analyze();
  ASSERT_EQ(r.devices.size(), 1u);
  const Peak& p = r.devices[0].peak;
  EXPECT_EQ(p.allocated_bytes, UINT64_MAX);
  ASSERT_EQ(p.live_at_peak_by_size_class.size(), 1u);
  EXPECT_EQ(p.live_at_peak_by_size_class[0].bytes, UINT64_MAX);
  ASSERT_EQ(p.live_at_peak.size(), 1u);
  EXPECT_EQ(p.live_at_peak[0].bytes, UINT64_MAX);
  EXPECT_EQ(r.devices[0].final.allocated_bytes, 6u);  // the sum wrapped
  render_all(r);
}

// The same wrap when an NVTX heap ends and its allocation is counted again (a heap id registered
// a second time ends the first heap): the peak's live set was copied after it, so it held the
// 1-byte allocation that was a heap's segment at the peak, unless a snapshot came between (found
// by fuzz_analysis).
TEST(Hostile, AHeapsAllocationCountedAgainPastTwoToThe64TakesThePeaksLiveSetFirst) {
  auto nvtx = [](int64_t t, trace::Op op, uint64_t heap, uint64_t address, uint64_t bytes) {
    trace::Record r = Events::rec(t, op, address, bytes, heap, -1);
    r.api = static_cast<uint16_t>(trace::Api::nvtx);
    return r;
  };
  Events e;
  e.alloc(10, 0xA000, 1);
  e.add(nvtx(20, trace::Op::heap_register, 1, 0xA000, 1));  // the 1 byte is a segment now
  e.alloc(30, 0xB000, UINT64_MAX);                          // the peak
  e.add(nvtx(40, trace::Op::heap_register, 1, 0xC000, 64));  // ends heap 1: the byte is back
  e.alloc(50, 0xD000, 7);
  auto report = [&](bool snapshot) {
    Analysis a;
    a.begin_trace(make_header(), "test.trace");
    for (size_t i = 0; i < e.records().size(); ++i) {
      if (snapshot && i == 4) (void)a.snapshot(trace::ReadStats{});
      e.feed_one(a, i);
    }
    a.end_trace(trace::ReadStats{});
    return a.finish();
  };
  const Report r = report(false);
  ASSERT_EQ(r.devices.size(), 1u);
  const Peak& p = r.devices[0].peak;
  EXPECT_EQ(p.allocated_bytes, UINT64_MAX);
  ASSERT_EQ(p.live_at_peak_by_size_class.size(), 1u);
  EXPECT_EQ(p.live_at_peak_by_size_class[0].bytes, UINT64_MAX);
  EXPECT_EQ(render_json(r), render_json(report(true)));
}
}  // namespace
}  // namespace gpumem::analyzer
