// A 2M-event trace (many phases, failures, sites) still makes a page under 2 MB that a browser
// draws without errors: the page holds the downsampled timeline and capped lists, never events.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "browser.h"
#include "render_html.h"
#include "render_perfetto.h"
#include "sample.h"

namespace gpumem::analyzer {
namespace {

namespace fs = std::filesystem;
using namespace gpumem::analyzer::testing;

const Report& big_report() {
  static const Report report = [] {
    const uint64_t n = 2'000'000;
    Analysis a;
    a.begin_trace(make_header(), "big.trace");
    std::mt19937_64 rng(7);
    std::vector<uint64_t> live(4096, 0);
    trace::Event ev;
    static const std::string name = "step";
    ev.payload = name;
    ev.rec = Events::rec(0, trace::Op::string, 1, name.size(), 1, -1);
    a.feed(ev);
    ev.payload = {};
    for (uint64_t i = 0; i < n; ++i) {
      int64_t t = static_cast<int64_t>(i) * 500;
      if (i % 2000 == 0) {  // 1000 phases, each closing the one before
        if (i) a.feed({Events::rec(t, trace::Op::mark_end, 0, 0, 1, -1), {}});
        a.feed({Events::rec(t, trace::Op::mark_begin, 0, 0, 1, -1), {}});
      }
      if (i % 1000 == 999) {  // 2000 failures: more than the anomaly list keeps
        ev.rec = Events::rec(t, trace::Op::alloc_failed, 0, 1ull << 34, 0, 0);
        a.feed(ev);
        continue;
      }
      size_t slot = rng() % live.size();
      uint64_t address = 0x7f0000000000ull + slot * 0x100000;
      if (live[slot]) {
        ev.rec = Events::rec(t, trace::Op::free, address, 0, 0, 0);
        live[slot] = 0;
      } else {
        live[slot] = 1 + rng() % (1 << 20);
        ev.rec = Events::rec(t, trace::Op::alloc, address, live[slot], 0, 0,
                             static_cast<uint32_t>(1 + rng() % 5000));
      }
      a.feed(ev);
    }
    a.end_trace(trace::ReadStats{});
    return a.finish();
  }();
  return report;
}

TEST(Size, PageAndPerfettoOfATwoMillionEventTraceStayUnderTwoMegabytes) {
  const Report& r = big_report();
  ASSERT_EQ(r.devices.size(), 1u);
  EXPECT_GE(r.traces[0].events, 2'000'000u);
  EXPECT_EQ(r.devices[0].phases.size(), 1000u);
  std::string html = render_html(r);
  EXPECT_LT(html.size(), 2'000'000u) << "page is " << html.size() << " bytes";
  RecordProperty("page_bytes", std::to_string(html.size()));
  // Lists are capped, and the page says how much it left out.
  nlohmann::json data = html_data(r);
  const nlohmann::json& d = data["devices"][0];
  EXPECT_LE(d["timeline"]["t"].size(), 2000u);
  EXPECT_EQ(d["phase_rows"].size(), 100u);
  EXPECT_EQ(d["phases_total"], 1000u);
  EXPECT_EQ(d["live"].size(), 50u);
  EXPECT_GT(d["live_rest"]["rows"].get<uint64_t>(), 0u);
  EXPECT_EQ(data["anomalies"].size(), 200u);
  EXPECT_EQ(data["anomalies_total"], 2000u);
  std::ofstream(fs::path(REPORT_HTML_BUILD_DIR) / "big-report.html", std::ios::binary) << html;
  // The Perfetto file is bounded the same way: ~2000 points x 2 counters, 1000 phases, instants.
  EXPECT_LT(render_perfetto(r).size(), 2'000'000u);
}

TEST(Size, PageOfATwoMillionEventTraceDrawsWithoutErrors) {
  if (chromium_path().empty()) GTEST_SKIP() << "no chromium at /usr/bin/chromium";
  fs::path dir = fs::path(REPORT_HTML_BUILD_DIR) / "browser" / "big";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string page = (dir / "big.html").string();
  std::ofstream(page, std::ios::binary) << render_html(big_report());
  BrowserRun run = run_chromium(page, "--dump-dom", dir);
  EXPECT_EQ(run.status, 0);
  EXPECT_EQ(run.stderr_text.find("Uncaught"), std::string::npos) << run.stderr_text;
  EXPECT_NE(run.dom.find("<div id=\"errors\" role=\"alert\"></div>"), std::string::npos);
  EXPECT_NE(run.dom.find("data-rendered=\"true\""), std::string::npos);
  EXPECT_NE(run.dom.find("id=\"timeline-svg\""), std::string::npos);
}

}  // namespace
}  // namespace gpumem::analyzer
