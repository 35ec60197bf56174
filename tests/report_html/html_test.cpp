// The HTML page: self-contained, escaped, and (in a real headless browser) drawn without errors
// with the exact numbers of the hand-built sample trace (sample.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "browser.h"
#include "render_html.h"
#include "sample.h"

namespace gpumem::analyzer {
namespace {

namespace fs = std::filesystem;
using namespace gpumem::analyzer::testing;

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The text of the first element after `anchor` that starts with `open` (up to the next '<').
std::string text_after(const std::string& dom, const std::string& anchor, const std::string& open) {
  size_t a = dom.find(anchor);
  if (a == std::string::npos) return "<anchor " + anchor + " not found>";
  size_t o = dom.find(open, a);
  if (o == std::string::npos) return "<" + open + " not found>";
  o += open.size();
  return dom.substr(o, dom.find('<', o) - o);
}

// The serialized element with this id, up to its closing tag (tables and svgs here never nest
// another element of their own kind).
std::string element(const std::string& dom, const std::string& tag, const std::string& id) {
  size_t a = dom.find("<" + tag + " id=\"" + id + "\"");
  if (a == std::string::npos) return "";
  size_t b = dom.find("</" + tag + ">", a);
  return dom.substr(a, b == std::string::npos ? std::string::npos : b - a);
}

TEST(Sample, ModelHoldsTheNumbersThePageShows) {
  Report r = sample_report();
  ASSERT_EQ(r.devices.size(), 1u);
  const DeviceReport& d = r.devices[0];
  EXPECT_EQ(d.peak.allocated_bytes, 576 * kMiB);
  EXPECT_EQ(d.peak.time_ns, 10 * kMs);
  EXPECT_EQ(d.peak.phase.value_or(""), "step 2");
  EXPECT_EQ(d.peak.reserved_bytes, 768 * kMiB);
  EXPECT_EQ(d.limit_bytes, 1ull << 30);
  EXPECT_DOUBLE_EQ(*d.fragmentation.utilization, 0.75);
  EXPECT_NEAR(d.fragmentation.external_at_peak, 1.0 / 3.0, 1e-12);
  EXPECT_EQ(d.final.leaked_bytes, 64 * kMiB);
  EXPECT_EQ(d.final.leaked_allocations, 1u);
  EXPECT_EQ(d.counts.alloc_failed, 1u);
  ASSERT_EQ(d.phases.size(), 3u);
  EXPECT_EQ(r.traces[0].last_ns - r.traces[0].first_ns, 16 * kMs);
}

TEST(Escaping, HtmlEscapeCoversTextAndAttributes) {
  EXPECT_EQ(html_escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(html_escape("plain text"), "plain text");
}

TEST(Escaping, JsonForScriptCannotCloseTheScriptAndRoundTrips) {
  nlohmann::json v = {{"s", std::string("</script><!-- & \xE2\x80\xA8 \xE2\x80\xA9 >")}};
  std::string text = json_for_script(v);
  EXPECT_EQ(text, "{\"s\":\"\\u003c/script\\u003e\\u003c!-- \\u0026 \\u2028 \\u2029 \\u003e\"}");
  EXPECT_EQ(nlohmann::json::parse(text), v);
  // Invalid UTF-8 from a trace is replaced, never thrown on.
  EXPECT_NO_THROW(json_for_script({{"s", std::string("bad \xFF\xFE bytes")}}));
}

TEST(Page, IsOneSelfContainedFile) {
  std::string html = render_html(sample_report());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(count(html, "<script"), 2u);  // the data block and the inline JS
  EXPECT_EQ(count(html, "<style>"), 1u);
  EXPECT_EQ(count(html, "<link"), 0u);
  EXPECT_EQ(count(html, " src="), 0u);
  // The only URL is the SVG namespace name, which browsers never fetch.
  std::regex url("https?://[^\"' )]*");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), url); it != std::sregex_iterator();
       ++it)
    EXPECT_EQ(it->str(), "http://www.w3.org/2000/svg");
  EXPECT_EQ(count(html, "{{"), 0u) << "a template slot was left unfilled";
}

TEST(Page, TraceStringsAreEscapedInTheSource) {
  std::string html = render_html(sample_report(/*evil=*/true));
  EXPECT_EQ(count(html, kEvilMarker), 0u);
  EXPECT_EQ(count(html, "<img"), 0u);
  EXPECT_EQ(count(html, "<script"), 2u);
  EXPECT_NE(html.find("\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"), std::string::npos);
  EXPECT_NE(html.find("--tag &quot;&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;&quot; "
                      "--note &#39;a &amp; b&#39;"),
            std::string::npos);
}

TEST(Page, PhaseRowsKeepTheOuterPhaseAmongEqualPeaks) {
  Events e;
  e.string(1, "epoch").string(2, "step").alloc(0, 0x10, 4096).begin(1, 1);
  for (int i = 0; i < 149; ++i) e.begin(10 + 10 * i, 2).end(15 + 10 * i, 2);
  e.end(2000, 1);
  nlohmann::json data = html_data(e.analyze());
  const nlohmann::json& rows = data["devices"][0]["phase_rows"];
  ASSERT_EQ(rows.size(), 100u);
  EXPECT_EQ(rows[0]["name"], "epoch");  // time order: the epoch begins first
  EXPECT_EQ(rows[0]["depth"], 0);
  EXPECT_EQ(rows[1]["name"], "step");
  EXPECT_EQ(rows[1]["depth"], 1);
  EXPECT_EQ(data["devices"][0]["phases_total"], 150u);
  ASSERT_EQ(data["devices"][0]["bands"].size(), 1u);  // only the outermost phase is a band
  EXPECT_EQ(data["devices"][0]["bands"][0]["name"], "epoch");
}

class Browser : public ::testing::Test {
 protected:
  void SetUp() override {
    if (chromium_path().empty())
      GTEST_SKIP() << "no chromium at /usr/bin/chromium (scripts/setup installs Debian's "
                      "chromium; or set GPUMEM_CHROMIUM)";
    dir_ = fs::path(REPORT_HTML_BUILD_DIR) / "browser" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }

  std::string write_page(const Report& r, const std::string& name) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << render_html(r);
    return path;
  }

  // Loads the page and fails the test on any script error.
  std::string dom_of(const std::string& page) {
    BrowserRun run = run_chromium(page, "--dump-dom", dir_);
    EXPECT_EQ(run.status, 0) << run.stderr_text;
    EXPECT_EQ(run.stderr_text.find("Uncaught"), std::string::npos) << run.stderr_text;
    EXPECT_NE(run.dom.find("<div id=\"errors\" role=\"alert\"></div>"), std::string::npos)
        << "the page reported errors:\n"
        << text_after(run.dom, "id=\"errors\"", ">");
    EXPECT_NE(run.dom.find("data-rendered=\"true\""), std::string::npos)
        << "scripts did not finish";
    return run.dom;
  }

  // Appends a probe script to the page: `body` runs after the page's own scripts and fills
  // `out`, which comes back parsed. *dom receives the page's DOM for further checks.
  nlohmann::json probe(const std::string& page, const std::string& body, std::string* dom) {
    std::ofstream(page, std::ios::app)
        << "<script>\n(function () {\n  const out = {};\n"
        << body
        << "  const pre = document.createElement(\"pre\");\n  pre.id = \"probe\";\n"
           "  pre.textContent = JSON.stringify(out);\n  document.body.appendChild(pre);\n"
           "})();\n</script>";
    *dom = dom_of(page);
    const std::string text = text_after(*dom, "<pre id=\"probe\"", ">");
    EXPECT_NE(text.find('{'), std::string::npos) << "the probe did not run";
    // The DOM dump escapes quotes only in attributes; this is a text node.
    return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  }

  fs::path dir_;
};

TEST_F(Browser, DrawsTheTimelineCardsAndTablesWithTheExactNumbers) {
  std::string dom = dom_of(write_page(sample_report(), "report.html"));

  std::string svg = element(dom, "svg", "timeline-svg");
  ASSERT_FALSE(svg.empty()) << "no timeline chart";
  for (const char* id : {"allocated-line", "reserved-line", "frag-line", "limit-line", "peak-dot"})
    EXPECT_NE(svg.find(std::string("id=\"") + id + "\""), std::string::npos) << id;
  EXPECT_EQ(count(svg, "class=\"fail-mark\""), 1u);
  EXPECT_EQ(count(svg, "class=\"band\"") + count(svg, "class=\"band odd\""), 1u);  // the epoch
  EXPECT_NE(svg.find(">epoch 0</text>"), std::string::npos);
  EXPECT_NE(svg.find(">peak 576.00 MiB</text>"), std::string::npos);
  EXPECT_NE(svg.find(">limit 1.00 GiB</text>"), std::string::npos);

  auto value = [&](const char* id) {
    return text_after(dom, std::string("id=\"") + id + "\"", "class=\"value\">");
  };
  auto detail = [&](const char* id) {
    return text_after(dom, std::string("id=\"") + id + "\"", "class=\"detail\">");
  };
  EXPECT_EQ(value("card-peak-allocated"), "576.00 MiB");
  EXPECT_EQ(detail("card-peak-allocated"), "at 10.00 ms in step 2");
  EXPECT_EQ(value("card-peak-reserved"), "768.00 MiB");
  EXPECT_EQ(value("card-capacity"), "1.00 GiB");
  EXPECT_EQ(detail("card-capacity"), "capacity 16.00 GiB; peak reserved = 75.0%");
  EXPECT_EQ(value("card-utilization"), "75.0%");
  EXPECT_EQ(detail("card-utilization"), "waste at peak 192.00 MiB");
  EXPECT_EQ(value("card-fragmentation"), "33.3%");
  EXPECT_EQ(value("card-leaks"), "64.00 MiB");
  EXPECT_EQ(detail("card-leaks"), "1 allocation live at exit");
  EXPECT_EQ(value("card-failed"), "1");
  // Each headline number carries its formula.
  EXPECT_NE(dom.find("1 − largest free block / total free"), std::string::npos);
  EXPECT_NE(dom.find("peak allocated / peak reserved"), std::string::npos);

  EXPECT_NE(dom.find(">python train.py --epochs 1 --batch 64</h1>"), std::string::npos);
  EXPECT_EQ(text_after(dom, "data-key=\"duration\"", "<b>"), "16.00 ms");

  // Live at the peak, by call site: site 1 = C + D, site 2 = B.
  std::string live = element(dom, "table", "live-table");
  EXPECT_NE(live.find("<td><div class=\"frames\">forward (libtrain.so+0x1a2b)"), std::string::npos);
  EXPECT_NE(live.find("<td class=\"num\">2</td><td class=\"num\">320.00 MiB</td>"
                      "<td class=\"num\">55.6%</td>"),
            std::string::npos)
      << live;
  EXPECT_NE(live.find("<td><div class=\"frames\">optimizer_init (libtrain.so+0x3300)"),
            std::string::npos);
  EXPECT_NE(live.find("<td class=\"num\">1</td><td class=\"num\">256.00 MiB</td>"
                      "<td class=\"num\">44.4%</td>"),
            std::string::npos);
  EXPECT_NE(live.find("<td>total</td><td class=\"num\">3</td><td class=\"num\">576.00 MiB</td>"),
            std::string::npos);
  EXPECT_FALSE(element(dom, "svg", "live-svg").empty());

  std::string hist = element(dom, "table", "hist-table");
  EXPECT_NE(hist.find("<td>256.00 MiB – 512.00 MiB</td><td class=\"num\">2</td>"
                      "<td class=\"num\">512.00 MiB</td><td class=\"num\">50.0%</td>"),
            std::string::npos)
      << hist;
  EXPECT_FALSE(element(dom, "svg", "hist-svg").empty());

  std::string phases = element(dom, "table", "phase-table");
  EXPECT_EQ(count(phases, "<tr>"), 4u);  // header + 3 phases
  EXPECT_NE(phases.find("step 2</span></td><td class=\"num\">8.00 ms</td><td class=\"num\">5.00 "
                        "ms</td><td class=\"num\">576.00 MiB</td>"),
            std::string::npos)
      << phases;
  EXPECT_NE(phases.find("epoch 0</span></td><td class=\"num\">0 ns</td><td class=\"num\">15.00 "
                        "ms</td><td class=\"num\">576.00 MiB</td>"),
            std::string::npos);

  std::string leaks = element(dom, "table", "leak-table");
  EXPECT_NE(leaks.find("<td class=\"num\">1</td><td class=\"num\">64.00 MiB</td>"),
            std::string::npos)
      << leaks;

  std::string anomalies = element(dom, "table", "anomaly-table");
  EXPECT_NE(anomalies.find(">alloc_failed</span></td><td class=\"num\">11.00 ms</td><td "
                           "class=\"num\">0</td><td class=\"num\">1.00 GiB</td><td "
                           "class=\"num\">576.00 MiB</td>"),
            std::string::npos)
      << anomalies;
  // One process: no rank comparison.
  EXPECT_NE(dom.find("id=\"ranks-panel\" hidden"), std::string::npos);
}

// Hover, drag-zoom and double-click reset, driven by synthetic mouse events from a probe script
// appended to the page; the probe writes what it saw into <pre id="probe">.
TEST_F(Browser, HoverShowsValuesDragZoomsDoubleClickResets) {
  std::string page = write_page(sample_report(), "interactive.html");
  std::string dom;
  nlohmann::json out = probe(page, R"(
  const svg = () => document.getElementById("timeline-svg");
  const overlay = () => svg().lastElementChild;
  const W = () => svg().viewBox.baseVal.width;
  // clientX of a point given in the chart's own (viewBox) coordinates
  const at = (vx) => { const b = svg().getBoundingClientRect();
    return { clientX: b.left + (vx / W()) * b.width, clientY: b.top + b.height / 2, bubbles: true }; };
  const xLabels = () => [...svg().querySelectorAll('text[text-anchor="middle"]')].map((t) => t.textContent).join("|");
  const peakX = () => Number(document.getElementById("peak-dot").getAttribute("cx"));
  out.before = xLabels();
  overlay().dispatchEvent(new MouseEvent("mousemove", at(peakX() + 1)));
  const tip = document.getElementById("tooltip");
  out.tip = tip.hidden ? "" : [...tip.children].map((d) => d.textContent).join("|");
  const p = peakX();
  overlay().dispatchEvent(new MouseEvent("mousedown", at(p - 60)));
  overlay().dispatchEvent(new MouseEvent("mousemove", at(p + 60)));
  window.dispatchEvent(new MouseEvent("mouseup", at(p + 60)));
  out.zoomed = xLabels();
  out.peakAfterZoom = !!document.getElementById("peak-dot");
  overlay().dispatchEvent(new MouseEvent("dblclick", at(p)));
  out.reset = xLabels();
)", &dom);
  ASSERT_TRUE(out.is_object());
  EXPECT_EQ(out["tip"].get<std::string>().find("time10."), 0u) << out["tip"];
  EXPECT_NE(out["tip"].get<std::string>().find("|allocated576.00 MiB|reserved768.00 MiB|"
                                               "fragmentation33.3%|phasestep 2"),
            std::string::npos)
      << out["tip"];
  EXPECT_EQ(out["before"].get<std::string>().find("0 ms|"), 0u) << out["before"];
  EXPECT_NE(out["zoomed"], out["before"]);
  EXPECT_NE(out["zoomed"].get<std::string>().find("0 ms|"), 0u) << out["zoomed"];
  EXPECT_TRUE(out["peakAfterZoom"].get<bool>());
  EXPECT_EQ(out["reset"], out["before"]);
}

TEST_F(Browser, TraceStringsShowAsTextAndInjectNothing) {
  std::string dom = dom_of(write_page(sample_report(/*evil=*/true), "evil.html"));
  EXPECT_EQ(count(dom, "<img"), 0u);
  EXPECT_EQ(count(dom, "<script"), 2u);
  std::string phases = element(dom, "table", "phase-table");
  EXPECT_NE(phases.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos) << phases;
  EXPECT_NE(text_after(dom, "id=\"card-peak-allocated\"", "class=\"detail\">")
                .find("&lt;script&gt;alert(1)&lt;/script&gt;"),
            std::string::npos);
  EXPECT_NE(dom.find("<h1 id=\"command\" title=\"command line of the traced program\">python "
                     "train.py --tag \"&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;\" "
                     "--note 'a &amp; b'</h1>"),
            std::string::npos);
}

// Two processes, ranks 0 and 1, whose peaks are 100 and 200 MiB.
Report two_ranks_report() {
  Analysis a;
  for (int rank = 0; rank < 2; ++rank) {
    Events e;
    e.alloc(1 * kMs, 0x1000, (rank + 1) * 100 * kMiB).free(2 * kMs, 0x1000);
    a.begin_trace(make_header(500 + static_cast<uint32_t>(rank), rank), "rank.trace");
    e.feed(a);
    a.end_trace(trace::ReadStats{});
  }
  return a.finish();
}

TEST_F(Browser, ComparesRanksWhenThereAreSeveralProcesses) {
  std::string dom = dom_of(write_page(two_ranks_report(), "ranks.html"));
  EXPECT_EQ(dom.find("id=\"ranks-panel\" hidden"), std::string::npos);
  std::string ranks = element(dom, "table", "rank-table");
  EXPECT_NE(ranks.find("<td>rank 0 · GPU 0</td><td>testhost</td><td class=\"num\">100.00 MiB</td>"),
            std::string::npos)
      << ranks;
  EXPECT_NE(ranks.find("<td>rank 1 · GPU 0</td><td>testhost</td><td class=\"num\">200.00 MiB</td>"),
            std::string::npos);
  EXPECT_FALSE(element(dom, "svg", "ranks-svg").empty());
  // No call sites in these traces: no view by site.
  EXPECT_NE(dom.find("id=\"sites-panel\" hidden"), std::string::npos);
  // The page opens on the device with the largest peak.
  EXPECT_EQ(text_after(dom, "id=\"card-peak-allocated\"", "class=\"value\">"), "200.00 MiB");
}

// A training-shaped trace with Python frames: weights (train.py:10), activations
// (model.py:21, two per step), gradients (model.py:35) and a native library's workspace, three
// steps of 10 ms. The peak, 208 MiB at 5 ms, is 100 + 80 + 20 + 8 MiB.
Report python_sites_report() {
  constexpr uint64_t kPy = trace::kPythonFrameTag;
  Events e;
  e.string(1, "Model.__init__ (train.py:10)")
      .string(2, "forward (model.py:21)")
      .string(3, "backward (model.py:35)")
      .string(4, "main (train.py:50)")
      .string(5, "cublasCreate (libcublas.so+0x10)")
      .stack(1, {0x1000, kPy | 1, kPy | 4})
      .stack(2, {0x1000, kPy | 2, kPy | 4})
      .stack(3, {0x1000, kPy | 3, kPy | 4})
      .stack(4, {0x5000})
      .symbol(kPy | 1, 1)
      .symbol(kPy | 2, 2)
      .symbol(kPy | 3, 3)
      .symbol(kPy | 4, 4)
      .symbol(0x5000, 5);
  e.alloc(kMs / 2, 0x900000000, 8 * kMiB, 4).alloc(1 * kMs, 0x100000000, 100 * kMiB, 1);
  for (int64_t step = 0; step < 3; ++step) {
    const int64_t t = step * 10 * kMs;
    e.alloc(t + 2 * kMs, 0x200000000, 40 * kMiB, 2)
        .alloc(t + 3 * kMs, 0x300000000, 40 * kMiB, 2)
        .alloc(t + 5 * kMs, 0x400000000, 20 * kMiB, 3)
        .free(t + 6 * kMs, 0x300000000)
        .free(t + 7 * kMs, 0x200000000)
        .free(t + 8 * kMs, 0x400000000);
  }
  return e.analyze(sample_header(false));
}

// The stacked view by Python line: one band per line and one for every other site, the peak's
// breakdown beside it, and the breakdown at the cursor when hovering (then back to the peak).
TEST_F(Browser, MemoryBySiteStacksPythonLinesAndShowsTheBreakdown) {
  const Report report = python_sites_report();
  ASSERT_TRUE(report.devices[0].timeline_by_site);
  ASSERT_EQ(report.devices[0].timeline_by_site->sites.size(), 4u);
  std::string page = write_page(report, "sites.html");
  std::string dom;
  nlohmann::json out = probe(page, R"(
  const svg = document.getElementById("sites-svg");
  const overlay = svg.lastElementChild;
  const data = JSON.parse(document.getElementById("report-data").textContent).devices[0];
  const rows = () => [...document.querySelectorAll("#sites-table tbody tr")].map(
    (tr) => [...tr.children].slice(1).map((td) => td.textContent).join("|"));
  out.peakRows = rows();
  out.peakAt = document.getElementById("sites-at").textContent;
  // clientX of time t: the overlay spans the plot, whose window is [0, last] before any zoom
  const at = (t) => { const b = svg.getBoundingClientRect(), W = svg.viewBox.baseVal.width;
    const x0 = Number(overlay.getAttribute("x")), pw = Number(overlay.getAttribute("width"));
    const vx = x0 + (t / data.last) * pw;
    return { clientX: b.left + (vx / W) * b.width, clientY: b.top + b.height / 2, bubbles: true }; };
  overlay.dispatchEvent(new MouseEvent("mousemove", at(13.5e6)));
  out.hoverRows = rows();
  out.hoverAt = document.getElementById("sites-at").textContent;
  const tip = document.getElementById("tooltip");
  out.tip = tip.hidden ? "" : [...tip.children].map((d) => d.textContent).join("|");
  overlay.dispatchEvent(new MouseEvent("mouseleave", at(13.5e6)));
  out.leftRows = rows();
  document.querySelector("#sites-table tbody tr").dispatchEvent(new MouseEvent("click", { bubbles: true }));
  out.opened = document.querySelector("#sites-table tbody tr div.where").textContent;
  out.liveSub = document.getElementById("live-sub").textContent;
  out.liveFirst = document.querySelector("#live-table tbody tr").children[1].textContent;
)", &dom);
  ASSERT_TRUE(out.is_object());
  EXPECT_EQ(dom.find("id=\"sites-panel\" hidden"), std::string::npos);
  std::string svg = element(dom, "svg", "sites-svg");
  ASSERT_FALSE(svg.empty()) << "no chart by site";
  EXPECT_EQ(count(svg, "class=\"site-area\""), 5u);  // four lines and other
  const std::vector<std::string> at_peak = {"Model.__init__ (train.py:10)|100.00 MiB|48.1%",
                                            "forward (model.py:21)|80.00 MiB|38.5%",
                                            "backward (model.py:35)|20.00 MiB|9.6%",
                                            "cublasCreate (libcublas.so+0x10)|8.00 MiB|3.8%",
                                            "other sites|0 B|0.0%",
                                            "total|208.00 MiB|100.0%"};
  EXPECT_EQ(out["peakRows"].get<std::vector<std::string>>(), at_peak) << out["peakRows"];
  EXPECT_EQ(out["peakAt"], "at the peak, 5.00 ms · allocated 208.00 MiB");
  // At 13.5 ms the last point is 13 ms: weights, both activations of step 1, the workspace.
  const std::vector<std::string> at_hover = {"Model.__init__ (train.py:10)|100.00 MiB|53.2%",
                                             "forward (model.py:21)|80.00 MiB|42.6%",
                                             "backward (model.py:35)|0 B|0.0%",
                                             "cublasCreate (libcublas.so+0x10)|8.00 MiB|4.3%",
                                             "other sites|0 B|0.0%",
                                             "total|188.00 MiB|100.0%"};
  EXPECT_EQ(out["hoverRows"].get<std::vector<std::string>>(), at_hover) << out["hoverRows"];
  EXPECT_EQ(out["hoverAt"], "at 13.00 ms · allocated 188.00 MiB");
  EXPECT_EQ(out["tip"],
            "time13.50 ms|allocated188.00 MiB|Model.__init__ (train.py:10)100.00 MiB|"
            "forward (model.py:21)80.00 MiB|cublasCreate (libcublas.so+0x10)8.00 MiB");
  EXPECT_EQ(out["leftRows"], out["peakRows"]);
  EXPECT_EQ(out["opened"],
            "Model.__init__ (train.py:10)\n  0x1000\n  Model.__init__ (train.py:10)\n"
            "  main (train.py:50)");
  // The live-at-peak table is grouped by Python line too: the line, then its callers.
  EXPECT_EQ(out["liveSub"].get<std::string>().rfind("grouped by Python source line;", 0), 0u)
      << out["liveSub"];
  EXPECT_EQ(out["liveFirst"], "Model.__init__ (train.py:10)\n  from main (train.py:50)");
}

// Every field of the page's data as a path: "devices[].peak.allocated", "devices[].timeline.t[]";
// a null names the field itself ("ranks"). Empty arrays name nothing (another report fills them).
void data_paths(const nlohmann::json& j, const std::string& at, std::set<std::string>* out) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items())
      data_paths(value, at.empty() ? key : at + "." + key, out);
  } else if (j.is_array()) {
    for (const nlohmann::json& v : j) data_paths(v, at + "[]", out);
  } else {
    out->insert(at);
  }
}

// The page reads its own shape, gpumem.report-page/1: the fields of three reports that between
// them fill every one (size classes; sites with Python lines; two ranks) are exactly the fields
// docs/report-html.md lists, so the document cannot miss a field or keep a stale one.
TEST(Page, DataIsTheDocumentedReportPageSchema) {
  std::set<std::string> fields;
  // One out-of-memory failure (docs/oom.md) on the sample's device, with advice.
  Report with_oom = sample_report();
  Oom oom;
  oom.pid = with_oom.devices[0].pid;
  oom.device = with_oom.devices[0].device;
  oom.api = "cudaMalloc";
  oom.refused_by = "gpumem";
  oom.advice.push_back({"gpumem", "GPUMEM_POOL=none", "the numbers"});
  with_oom.ooms.push_back(oom);
  for (const Report& r : {with_oom, python_sites_report(), two_ranks_report()}) {
    nlohmann::json data = html_data(r);
    EXPECT_EQ(data["schema"], "gpumem.report-page/1");
    data_paths(data, "", &fields);
  }
  std::set<std::string> documented;
  std::ifstream doc(REPORT_HTML_DOC);
  ASSERT_TRUE(doc) << REPORT_HTML_DOC;
  std::string line;
  bool in_schema = false;
  const std::regex row("^\\| `([^`]+)` \\|");
  while (std::getline(doc, line)) {
    if (line.rfind("## ", 0) == 0)
      in_schema = line.find("gpumem.report-page/1") != std::string::npos;
    std::smatch m;
    if (in_schema && std::regex_search(line, m, row)) documented.insert(m[1]);
  }
  for (const std::string& f : fields) EXPECT_TRUE(documented.count(f)) << "undocumented: " << f;
  for (const std::string& f : documented) EXPECT_TRUE(fields.count(f)) << "not in the data: " << f;
}

TEST_F(Browser, SavesAScreenshot) {
  std::string page = write_page(sample_report(), "report.html");
  fs::path png = fs::path(REPORT_HTML_BUILD_DIR) / "report.png";
  fs::remove(png);
  BrowserRun run = run_chromium(page, "--screenshot='" + png.string() + "'", dir_,
                                "--window-size=1400,2000 --hide-scrollbars");
  EXPECT_EQ(run.status, 0) << run.stderr_text;
  EXPECT_EQ(run.stderr_text.find("Uncaught"), std::string::npos) << run.stderr_text;
  ASSERT_TRUE(fs::exists(png)) << run.stderr_text;
  EXPECT_GT(fs::file_size(png), 20'000u);
  EXPECT_EQ(slurp(png).substr(1, 3), "PNG");
}

// Header strings (command line, host, device name) and a phase name holding bytes that are not
// UTF-8, control characters and markup: the page loads without a script error, the header shows
// them escaped as the terminal does (it took them raw: a page that was not UTF-8), and the phase
// row shows its name as text.
TEST_F(Browser, HostileHeaderAndPhaseNamesShowAsEscapedText) {
  const std::string bad = "\xff\x1b[2J </script><!-- <marquee>x</marquee>";
  Events e;
  e.string(1, "phase " + bad).begin(10, 1).alloc(20, 0xA000, 100).end(40, 1);
  trace::Header h = make_header();
  std::memcpy(h.command, bad.data(), bad.size());
  std::memcpy(h.host, bad.data(), bad.size());
  const std::string dom = dom_of(write_page(e.analyze(h), "hostile.html"));
  EXPECT_EQ(count(dom, "<script"), 2u);
  EXPECT_EQ(count(dom, "<marquee"), 0u);
  const std::string shown = "\\xff\\x1b[2J &lt;/script&gt;&lt;!-- &lt;marquee&gt;x&lt;/marquee&gt;";
  EXPECT_NE(dom.find("<title>gpumem report: " + shown + "</title>"), std::string::npos) << dom;
  EXPECT_NE(dom.find("program\">" + shown + "</h1>"), std::string::npos);
  EXPECT_NE(dom.find("<span id=\"host\">" + shown + "</span>"), std::string::npos);
  const std::string phases = element(dom, "table", "phase-table");
  EXPECT_NE(
      phases.find(
          "phase \xef\xbf\xbd\x1b[2J &lt;/script&gt;&lt;!-- &lt;marquee&gt;x&lt;/marquee&gt;"),
      std::string::npos)
      << phases;
}

}  // namespace
}  // namespace gpumem::analyzer
