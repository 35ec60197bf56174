// `gpumem report TRACE --html F --perfetto F` end to end, on a trace file written by hand.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "browser.h"
#include "render_html.h"
#include "sample.h"

namespace gpumem::analyzer {
namespace {

namespace fs = std::filesystem;
using namespace gpumem::analyzer::testing;

// A trace file: header, then records; a string record is followed by its payload slots.
class TraceFile {
 public:
  void add(const trace::Record& r) { bytes_.append(reinterpret_cast<const char*>(&r), sizeof r); }
  void string(uint64_t id, const std::string& text) {
    uint64_t slots = (text.size() + trace::kBlobBytesPerSlot - 1) / trace::kBlobBytesPerSlot;
    add(Events::rec(0, trace::Op::string, slots, text.size(), id, -1));
    for (uint64_t s = 0; s < slots; ++s) {
      trace::Record c{};
      size_t at = s * trace::kBlobBytesPerSlot;
      std::memcpy(&c, text.data() + at, std::min(trace::kBlobBytesPerSlot, text.size() - at));
      c.commit = trace::kContinuation;
      add(c);
    }
  }
  void write(const std::string& path, trace::Header header) const {
    header.flags |= trace::kHeaderClosed;
    header.end_offset = trace::kHeaderSize + bytes_.size();
    std::string head(trace::kHeaderSize, '\0');
    std::memcpy(head.data(), &header, sizeof header);
    std::ofstream(path, std::ios::binary) << head << bytes_;
  }

 private:
  std::string bytes_;
};

TEST(Cli, ReportWritesTheHtmlPageAndThePerfettoTrace) {
  fs::path dir = fs::path(REPORT_HTML_BUILD_DIR) / "cli";
  fs::remove_all(dir);
  fs::create_directories(dir);
  TraceFile f;
  f.string(1, "train <b>");
  f.add(Events::rec(0, trace::Op::mark_begin, 0, 0, 1, -1));
  f.add(Events::rec(1 * kMs, trace::Op::alloc, 0x1000, 300 * kMiB, 0, 0));
  f.add(Events::rec(2 * kMs, trace::Op::alloc_failed, 0, 2048 * kMiB, 300 * kMiB, 0));
  f.add(Events::rec(3 * kMs, trace::Op::free, 0x1000, 0, 0, 0));
  f.add(Events::rec(4 * kMs, trace::Op::mark_end, 0, 0, 1, -1));
  std::string trace_path = (dir / "run.trace").string();
  f.write(trace_path, make_header(900));

  std::string html = (dir / "report.html").string(), perfetto = (dir / "perfetto.json").string();
  std::string cmd = std::string("'") + GPUMEM_CLI + "' report '" + trace_path + "' --html '" +
                    html + "' --perfetto '" + perfetto + "' > '" + (dir / "out").string() +
                    "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << slurp(dir / "out");

  std::string page = slurp(html);
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("\"name\":\"train \\u003cb\\u003e\""), std::string::npos);
  EXPECT_NE(page.find("<h1 id=\"command\" title=\"command line of the traced program\">train "
                      "--steps 3</h1>"),
            std::string::npos);

  nlohmann::json trace = nlohmann::json::parse(slurp(perfetto));
  int slices = 0, failures = 0;
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] == "X" && e["name"] == "train <b>") {
      ++slices;
      EXPECT_DOUBLE_EQ(e["dur"].get<double>(), 4000.0);
    }
    if (e["ph"] == "i" && e["name"] == "GPU 0 allocation failed") ++failures;
  }
  EXPECT_EQ(slices, 1);
  EXPECT_EQ(failures, 1);
}

TEST(Cli, UnwritableHtmlPathFailsWithAMessage) {
  fs::path dir = fs::path(REPORT_HTML_BUILD_DIR) / "cli-bad";
  fs::remove_all(dir);
  fs::create_directories(dir);
  TraceFile f;
  f.add(Events::rec(1 * kMs, trace::Op::alloc, 0x1000, 64, 0, 0));
  std::string trace_path = (dir / "run.trace").string();
  f.write(trace_path, make_header(901));
  std::string cmd = std::string("'") + GPUMEM_CLI + "' report '" + trace_path +
                    "' --html /nonexistent-dir/r.html > '" + (dir / "out").string() + "' 2>&1";
  int status = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_NE(slurp(dir / "out").find("cannot write /nonexistent-dir/r.html"), std::string::npos)
      << slurp(dir / "out");
}

}  // namespace
}  // namespace gpumem::analyzer
