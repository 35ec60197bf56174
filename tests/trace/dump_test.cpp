// `gpumem dump` end to end: the CLI reads traces written by the real writer.
#include <sys/wait.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "trace_test_util.h"

namespace gpumem::test {
namespace {

using nlohmann::json;
using trace::Op;

struct DumpResult {
  int exit_code = -1;
  std::vector<json> lines;
  std::string err;
};

DumpResult run_dump(const ScratchDir& dir, const std::string& trace_path) {
  DumpResult out;
  const std::string err_path = dir.file("stderr.txt");
  const std::string command =
      std::string(GPUMEM_CLI) + " dump '" + trace_path + "' 2>'" + err_path + "'";
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return out;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) text.append(buf, n);
  const int status = pclose(p);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    out.lines.push_back(json::parse(text.substr(start, nl - start)));
  std::ifstream in(err_path);
  out.err.assign((std::istreambuf_iterator<char>(in)), {});
  return out;
}

void write_example(const std::string& path, bool close_cleanly) {
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, path));
  w.set_device(0, 80ull << 30, 8ull << 30, "Simulated H100");
  trace::Record mark{};
  mark.op = static_cast<uint16_t>(Op::mark_begin);
  mark.api = static_cast<uint16_t>(trace::Api::gpumem);
  mark.aux = w.intern_string("forward");
  w.append(mark);
  const uint64_t pcs[2] = {0x401000, 0x402abc};
  trace::Record a = make_record(Op::alloc, 0xdead0000, 4096);
  a.site = w.intern_stack(pcs, 2);
  a.stream = 0x77;
  a.flags = static_cast<uint16_t>(trace::MemKind::pinned_host) |
            (static_cast<uint16_t>(trace::Lookup::dlsym) << trace::kFlagLookupShift) |
            trace::kFlagAsync;
  w.append(a);
  trace::Record bad = make_record(Op::anomaly, 0xbeef, 0);
  bad.api = static_cast<uint16_t>(trace::Api::cudaFree);
  bad.aux = static_cast<uint64_t>(trace::AnomalyKind::free_unknown);
  w.append(bad);
  if (close_cleanly) {
    w.close();
  } else {
    w.abandon();  // as if killed: no end mark
  }
}

TEST(TraceDump, PrintsHeaderEveryRecordAndSummary) {
  ScratchDir dir;
  const std::string path = dir.file("example.trace");
  write_example(path, true);
  DumpResult d = run_dump(dir, path);
  EXPECT_EQ(d.exit_code, 0);
  EXPECT_EQ(d.err, "");
  // header, device_info, string, mark_begin, stack, alloc, anomaly, summary
  ASSERT_EQ(d.lines.size(), 8u);
  const json& h = d.lines[0].at("header");
  EXPECT_EQ(h.at("magic"), "GPUMEMTR");
  EXPECT_EQ(h.at("version"), 1);
  EXPECT_EQ(h.at("rank"), 3);
  EXPECT_EQ(h.at("host"), "testhost");
  EXPECT_EQ(h.at("closed"), true);
  ASSERT_EQ(h.at("devices").size(), 1u);
  EXPECT_EQ(h.at("devices")[0].at("name"), "Simulated H100");
  EXPECT_EQ(h.at("devices")[0].at("capacity"), 80ull << 30);
  EXPECT_EQ(h.at("devices")[0].at("limit"), 8ull << 30);

  EXPECT_EQ(d.lines[1].at("op"), "device_info");
  EXPECT_EQ(d.lines[2].at("op"), "string");
  EXPECT_EQ(d.lines[2].at("text"), "forward");
  const json& mark = d.lines[3];
  EXPECT_EQ(mark.at("op"), "mark_begin");
  EXPECT_EQ(mark.at("api"), "gpumem");
  EXPECT_EQ(mark.at("text"), "forward");
  const json& stack = d.lines[4];
  EXPECT_EQ(stack.at("op"), "stack");
  EXPECT_EQ(stack.at("frames"), json::array({"0x401000", "0x402abc"}));
  const json& alloc = d.lines[5];
  for (const char* key : {"op", "api", "device", "stream", "tid", "t_ns", "address", "bytes",
                          "result", "kind", "lookup", "site", "aux"})
    EXPECT_TRUE(alloc.contains(key)) << key;
  EXPECT_EQ(alloc.at("op"), "alloc");
  EXPECT_EQ(alloc.at("api"), "cudaMalloc");
  EXPECT_EQ(alloc.at("address"), "0xdead0000");
  EXPECT_EQ(alloc.at("stream"), "0x77");
  EXPECT_EQ(alloc.at("bytes"), 4096);
  EXPECT_EQ(alloc.at("kind"), "pinned_host");
  EXPECT_EQ(alloc.at("lookup"), "dlsym");
  EXPECT_EQ(alloc.at("async"), true);
  EXPECT_EQ(alloc.at("site"), stack.at("aux"));
  EXPECT_EQ(d.lines[6].at("anomaly"), "free_unknown");
  const json& s = d.lines[7].at("summary");
  EXPECT_EQ(s.at("records"), 6);
  EXPECT_EQ(s.at("torn"), 0);
  EXPECT_EQ(s.at("truncated"), false);
}

TEST(TraceDump, TruncatedTraceExitsZeroWithNote) {
  ScratchDir dir;
  const std::string path = dir.file("killed.trace");
  write_example(path, false);
  DumpResult d = run_dump(dir, path);
  EXPECT_EQ(d.exit_code, 0);
  ASSERT_EQ(d.lines.size(), 8u);
  const json& s = d.lines.back().at("summary");
  EXPECT_EQ(s.at("records"), 6);
  EXPECT_EQ(s.at("truncated"), true);
  EXPECT_EQ(s.at("reason"), "not closed cleanly (process killed or crashed?)");
  EXPECT_NE(d.err.find("note: '" + path + "' is truncated"), std::string::npos) << d.err;
}

TEST(TraceDump, UnreadableFileExitsOneWithMessage) {
  ScratchDir dir;
  const std::string path = dir.file("notes.txt");
  std::ofstream(path) << "not a trace";
  DumpResult d = run_dump(dir, path);
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_TRUE(d.lines.empty());
  EXPECT_NE(d.err.find("gpumem dump: '" + path + "' is not a gpumem trace (bad magic)"),
            std::string::npos)
      << d.err;
  DumpResult missing = run_dump(dir, dir.file("absent.trace"));
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("cannot open trace"), std::string::npos) << missing.err;
}

// A file name is outside text: its control characters are shown escaped, so a name cannot clear
// the terminal or split the message into two lines.
TEST(TraceDump, MessagesShowControlCharactersOfTheNameEscaped) {
  ScratchDir dir;
  const std::string path = dir.file("a\x1b[2Jb\nc.trace");
  const std::string shown = dir.file("a\\x1b[2Jb\\nc.trace");
  std::ofstream(path) << "not a trace";
  DumpResult bad = run_dump(dir, path);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err, "gpumem dump: '" + shown +
                         "' is not a gpumem trace (bad magic): was it written by gpumem run?\n");
  ::unlink(path.c_str());
  write_example(path, false);
  DumpResult killed = run_dump(dir, path);
  EXPECT_EQ(killed.exit_code, 0);
  EXPECT_EQ(killed.err, "gpumem dump: note: '" + shown +
                            "' is truncated (not closed cleanly (process killed or crashed?)); "
                            "every complete record before the damage was printed\n");
}

TEST(TraceDump, InvalidUtf8TextIsReplacedNotFatal) {
  ScratchDir dir;
  const std::string path = dir.file("utf8.trace");
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, path));
  w.intern_string("bad \xff\xfe bytes");
  w.close();
  DumpResult d = run_dump(dir, path);
  EXPECT_EQ(d.exit_code, 0);
  ASSERT_EQ(d.lines.size(), 3u);
  EXPECT_EQ(d.lines[1].at("text"), "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");  // U+FFFD twice
}

}  // namespace
}  // namespace gpumem::test
