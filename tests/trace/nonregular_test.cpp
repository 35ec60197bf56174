// Inputs that are not regular files (issue 27, item 4): a FIFO named as a trace, snapshot or CSV
// would block open() for ever. Every reader refuses it at once, and a directory scan skips it
// with a message and reads the rest. Each command runs under `timeout`, so a regression fails
// the test (exit 124) instead of hanging it.
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <iterator>

#include "trace_test_util.h"

namespace gpumem::test {
namespace {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

CliResult run_cli(const ScratchDir& dir, const std::string& args) {
  CliResult r;
  const std::string err_path = dir.file("stderr.txt");
  const std::string command = "cd '" + dir.path() + "' && timeout 20 " + GPUMEM_CLI + " " + args +
                              " </dev/null 2>'" + err_path + "'";
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_path);
  r.err.assign(std::istreambuf_iterator<char>(in), {});
  return r;
}

const char* const kFifoMessage =
    "'x.trace' is a FIFO (named pipe), not a regular file: pass the path of a .trace file (copy "
    "the trace to a file and read that)\n";

TEST(NonRegularInput, EveryReaderRefusesAFifoWithoutBlocking) {
  ScratchDir dir;
  ASSERT_EQ(::mkfifo(dir.file("x.trace").c_str(), 0600), 0);
  for (const char* command : {"dump", "report", "replay"}) {
    const CliResult r = run_cli(dir, std::string(command) + " x.trace");
    EXPECT_EQ(r.exit_code, 1) << command;
    EXPECT_EQ(r.err.substr(0, r.err.find('\n') + 1),
              std::string("gpumem ") + command + ": " + kFifoMessage)
        << command;
  }
  const CliResult e = run_cli(dir, "export x.trace --rmm-csv out.csv");
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_EQ(e.err, std::string("gpumem export: ") + kFifoMessage);
}

// The foreign-format importers (snapshot, RMM CSV) are asked first by report and replay: a FIFO
// with their extensions is left to the trace reader's refusal, never read.
TEST(NonRegularInput, ImportersDoNotReadAFifo) {
  ScratchDir dir;
  ASSERT_EQ(::mkfifo(dir.file("snap.pickle").c_str(), 0600), 0);
  ASSERT_EQ(::mkfifo(dir.file("log.csv").c_str(), 0600), 0);
  for (const char* input : {"snap.pickle", "log.csv"}) {
    const CliResult r = run_cli(dir, std::string("replay ") + input);
    EXPECT_EQ(r.exit_code, 1) << input;
    EXPECT_EQ(r.err, std::string("gpumem replay: '") + input +
                         "' is a FIFO (named pipe), not a regular file: pass the path of a .trace "
                         "file (copy the trace to a file and read that)\n");
  }
}

TEST(NonRegularInput, DirectoryScanSkipsAFifoAndReadsTheRest) {
  ScratchDir dir;
  ASSERT_EQ(::mkdir(dir.file("traces").c_str(), 0700), 0);
  ASSERT_EQ(::mkfifo(dir.file("traces/a.trace").c_str(), 0600), 0);
  {
    TraceWriter w;
    ASSERT_TRUE(open_writer(w, dir.file("traces/b.trace")));
    w.set_device(0, 1ull << 30, 0, "Simulated");
    w.append(make_record(trace::Op::alloc, 0x1000, 3 << 20));
    w.close();
  }
  const CliResult r = run_cli(dir, "report traces --json -");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.err,
            "gpumem report: traces/a.trace: skipped: a FIFO (named pipe), not a regular file; "
            "only regular *.trace files are read\n");
  EXPECT_NE(r.out.find("\"traces\""), std::string::npos);
  EXPECT_NE(r.out.find("\"allocated_bytes\": 3145728"), std::string::npos);

  // Only the FIFO: the skip, then the usual "nothing to read" messages, exit status 1.
  ASSERT_EQ(::unlink(dir.file("traces/b.trace").c_str()), 0);
  const CliResult only = run_cli(dir, "report traces");
  EXPECT_EQ(only.exit_code, 1);
  EXPECT_EQ(only.err.substr(0, only.err.find('\n') + 1),
            "gpumem report: traces/a.trace: skipped: a FIFO (named pipe), not a regular file; "
            "only regular *.trace files are read\n");
}

}  // namespace
}  // namespace gpumem::test
