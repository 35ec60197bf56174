// The HTML page of a run that ran out of memory: the failure is marked on the timeline and its
// explanation (the text `gpumem report --text` prints, and the advice) is in the OOM panel, drawn
// by a real headless browser (skipped only without Chromium, as report_html.Browser.* are).
#include <gtest/gtest.h>

#include <string>

#include "browser.h"
#include "scratch.h"
#include "shell.h"
#include "programs.h"

namespace {

using gpumem::test::Output;
using gpumem::test::ScratchDir;
using gpumem::test::sh;
namespace t = gpumem::analyzer::testing;

TEST(Page, MarksTheOomAndExplainsIt) {
  if (t::chromium_path().empty()) GTEST_SKIP() << "no chromium: apt-get install -y chromium";
  ScratchDir dir("gpumem-oom");
  Output run = sh(kCli + " run --device sim --pool growth --limit 40MiB --trace " +
                  (dir / "run.trace") + " -- " + kOom + " fragmentation");
  ASSERT_EQ(run.status, 3) << run.out;
  Output rep = sh(kCli + " report " + (dir / "run.trace") + " --html " + (dir / "page.html"));
  ASSERT_EQ(rep.status, 0) << rep.out;
  const t::BrowserRun b = t::run_chromium(dir / "page.html", "--dump-dom", dir.path());
  ASSERT_EQ(b.status, 0) << b.stderr_text;
  const std::string& dom = b.dom;
  ASSERT_NE(dom.find("data-rendered=\"true\""), std::string::npos) << dom.substr(0, 2000);
  EXPECT_NE(dom.find("<section class=\"panel\" id=\"oom-panel\">"), std::string::npos)
      << "the OOM panel is shown";
  EXPECT_NE(dom.find("id=\"oom-mark-0\""), std::string::npos) << "a mark on the timeline";
  EXPECT_NE(dom.find("out of memory (final): cudaMalloc of 8.00 MiB"), std::string::npos);
  EXPECT_NE(dom.find("1 on this device: 1 final, 0 retried and succeeded"), std::string::npos);
  EXPECT_NE(dom.find("<details class=\"oom-item oom-final\" id=\"oom-0\" open=\"\">"),
            std::string::npos);
  EXPECT_NE(dom.find("pool: 20.00 MiB free inside its segments, largest free block 4.00 MiB "
                     "(external fragmentation 80.0%)"),
            std::string::npos);
  EXPECT_NE(dom.find("<code>GPUMEM_POOL=none GPUMEM_LIMIT=40MiB</code>"), std::string::npos);
}

}  // namespace
