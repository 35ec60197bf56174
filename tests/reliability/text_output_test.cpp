// Text output and command-line input (issue 29, items 10 and 11): a trace's strings never reach a
// terminal raw (`gpumem report --text`, `gpumem replay`), an option without its value is refused,
// `gpumem run` names the file the child really wrote, and `gpumem fit` does not recommend from
// measurements that say nothing.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "gpumem/trace/writer.h"
#include "gpumem/visible_text.h"
#include "process.h"
#include "support.h"

namespace reliability {
namespace {

namespace tr = gpumem::trace;
using TextOutput = ScratchTest;

// Clears the screen, moves the cursor home, returns to column 0, backspaces, rings the bell,
// and an 8-bit CSI (0x9b) both raw and as UTF-8 (U+009B), plus DEL.
const std::string kHostile =
    "A\x1b[2J\x1b[H\r\b\x07\x9b"
    "31m\xc2\x9b"
    "0m\x7f"
    "Z";

// The bytes a terminal could act on: C0 controls except the newline that ends each line, DEL,
// the raw 8-bit CSI, and the C1 controls as UTF-8 (0xC2 0x80..0x9F).
std::string raw_controls(const std::string& text) {
  std::string found;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool c1 = c == 0xC2 && i + 1 < text.size() &&
                    static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(text[i + 1]) <= 0x9F;
    if ((c < 0x20 && c != '\n') || c == 0x7F || c == 0x9B || c1)
      found += std::to_string(c) + "@" + std::to_string(i) + " ";
  }
  return found;
}

// A trace whose every string is hostile: host, command, device name and a phase name (open at
// the peak, so the peak line names it too).
std::string make_hostile_trace(const std::string& dir, const std::string& name) {
  const std::string trace = dir + "/" + name;
  gpumem::TraceWriter w;
  tr::Header header{};
  std::snprintf(header.host, sizeof header.host, "host%s", kHostile.c_str());
  std::snprintf(header.command, sizeof header.command, "train.py --name %s", kHostile.c_str());
  std::snprintf(header.pool, sizeof header.pool, "none");
  char err[512];
  EXPECT_TRUE(w.open(trace.c_str(), header, err, sizeof err)) << err;
  w.set_device(0, 16ull << 30, 0, ("gpu" + kHostile).c_str());
  tr::Record r{};
  r.op = static_cast<uint16_t>(tr::Op::mark_begin);
  r.aux = w.intern_string(("phase" + kHostile).c_str());
  w.append(r);
  for (uint64_t i = 0; i < 3; ++i) {
    r = {};
    r.op = static_cast<uint16_t>(tr::Op::alloc);
    r.api = static_cast<uint16_t>(tr::Api::cudaMalloc);
    r.address = 0x7f0000000000ull + i * 4096;
    r.bytes = 4096;
    w.append(r);
  }
  r = {};
  r.op = static_cast<uint16_t>(tr::Op::mark_end);
  w.append(r);
  r = {};
  r.op = static_cast<uint16_t>(tr::Op::free);
  r.api = static_cast<uint16_t>(tr::Api::cudaFree);
  r.address = 0x7f0000000000ull;
  r.bytes = 4096;
  w.append(r);
  w.close();
  return trace;
}

// The one escaping helper, byte by byte: printable ASCII and valid UTF-8 pass; controls, C1 as
// UTF-8, and bytes that are not UTF-8 (lone, cut, overlong, surrogate) become escapes.
TEST(VisibleText, EscapesControlsAndInvalidBytesOnly) {
  using gpumem::visible;
  EXPECT_EQ(visible("plain / path-1.trace"), "plain / path-1.trace");
  EXPECT_EQ(visible("a\tb\nc\rd"), "a\\tb\\nc\\rd");
  EXPECT_EQ(visible(std::string("\0\x01\x1b\x7f", 4)), "\\x00\\x01\\x1b\\x7f");
  EXPECT_EQ(visible("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(visible("\xc2\x9b\xc2\x85\xc2\xa0"),
            "\\xc2\\x9b\\xc2\\x85\xc2\xa0");  // C1 escaped, NBSP kept
  EXPECT_EQ(visible("\x9b"), "\\x9b");
  EXPECT_EQ(visible("\xe2\x82"), "\\xe2\\x82");                    // cut sequence
  EXPECT_EQ(visible("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(visible("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // surrogate
  EXPECT_EQ(visible("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
}

TEST_F(TextOutput, ReportTextEscapesEveryTraceString) {
  // The file name carries the escapes too: it is printed as the trace's path.
  const std::string trace = make_hostile_trace(dir_, "hostile" + kHostile + ".trace");
  const Outcome o =
      run({GPUMEM_CLI, "report", "--text", trace}, child_environment(false, {}), dir_);
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(raw_controls(o.out), "") << o.out;
  EXPECT_EQ(raw_controls(o.err), "") << o.err;
  // Every hostile string is there, escaped: host, command, device, phase (table and peak line).
  const std::string shown = "A\\x1b[2J\\x1b[H\\r\\x08\\x07\\x9b31m\\xc2\\x9b0m\\x7fZ";
  EXPECT_NE(o.out.find("on host" + shown), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("command: train.py --name " + shown), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("(gpu" + shown + ")"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("in phase \"phase" + shown + "\""), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("trace " + dir_ + "/hostile" + shown + ".trace"), std::string::npos)
      << o.out;

  // `gpumem replay` prints the same strings (path, device name).
  const Outcome r =
      run({GPUMEM_CLI, "replay", trace, "--no-search"}, child_environment(false, {}), dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(raw_controls(r.out), "") << r.out;
  EXPECT_NE(r.out.find("(gpu" + shown + ", capacity"), std::string::npos) << r.out;

  // An unreadable file with a hostile name: the error line is escaped as well.
  const std::string bad = dir_ + "/bad" + kHostile + ".trace";
  std::ofstream(bad) << "not a trace";
  const Outcome e = run({GPUMEM_CLI, "report", "--text", bad}, child_environment(false, {}), dir_);
  EXPECT_EQ(e.status, 1) << e.err;
  EXPECT_EQ(raw_controls(e.err), "") << e.err;
  const Outcome re = run({GPUMEM_CLI, "replay", bad}, child_environment(false, {}), dir_);
  EXPECT_EQ(re.status, 1) << re.err;
  EXPECT_EQ(raw_controls(re.err), "") << re.err;
}

// CLI11 would take `--` as --trace's value and run with a trace named "--": refused, the program
// never starts, and the message says what to write.
TEST_F(TextOutput, OptionWithoutValueIsRefused) {
  const std::string marker = dir_ + "/started";
  for (const char* option : {"--trace", "--limit", "--pool", "--report"}) {
    SCOPED_TRACE(option);
    const Outcome o = run({GPUMEM_CLI, "run", "--device", "sim", option, "--", "touch", marker},
                          child_environment(false, {}), dir_);
    EXPECT_EQ(o.status, 2) << o.err;
    EXPECT_NE(o.err.find(std::string(option) + ": no value given"), std::string::npos) << o.err;
    EXPECT_NE(o.err.find(std::string("write ") + option + " VALUE before -- CMD"),
              std::string::npos)
        << o.err;
    struct stat st;
    EXPECT_NE(::stat(marker.c_str(), &st), 0) << "the program ran";
    EXPECT_NE(::stat((dir_ + "/--").c_str(), &st), 0) << "a trace named -- was written";
  }
}

// The trace path exists already (an earlier run, another process): the preload writes PATH.1 (or
// the next free suffix) and `gpumem run` names that file, found by the pid in its header.
TEST_F(TextOutput, RunNamesTheSuffixedTraceTheChildWrote) {
  const std::string path = dir_ + "/same.trace";
  std::vector<std::string> said;
  for (int i = 0; i < 3; ++i) {
    const Outcome o = run(
        {GPUMEM_CLI, "run", "--device", "sim", "--trace", path, "--", RELIABILITY_WORKLOAD, "one"},
        child_environment(false, {}), dir_);
    ASSERT_EQ(o.status, 0) << o.err;
    const std::string prefix = "gpumem run: trace: ";
    const size_t at = o.err.find(prefix);
    ASSERT_NE(at, std::string::npos) << o.err;
    said.push_back(o.err.substr(at + prefix.size(), o.err.find('\n', at) - at - prefix.size()));
  }
  EXPECT_EQ(said, (std::vector<std::string>{path, path + ".1", path + ".2"}));
  // Each named file is that run's: three different pids.
  std::set<uint32_t> pids;
  for (const std::string& p : said) {
    const LoadedTrace t = load_trace(p);
    ASSERT_TRUE(t.opened) << t.error;
    pids.insert(t.header.pid);
  }
  EXPECT_EQ(pids.size(), 3u);
}

// --pool-size sizes the fixed pool only: under another policy (none by default) it was ignored
// without a word. Refused (status 2) naming the policy; with --pool fixed it is taken.
TEST_F(TextOutput, ReplayRefusesAPoolSizeWithoutTheFixedPool) {
  const std::string trace = dir_ + "/one.trace";
  ASSERT_EQ(run({GPUMEM_CLI, "run", "--device", "sim", "--trace", trace, "--", RELIABILITY_WORKLOAD,
                 "one"},
                child_environment(false, {}), dir_)
                .status,
            0);
  for (const std::vector<std::string>& pool :
       {std::vector<std::string>{}, std::vector<std::string>{"--pool", "growth"}}) {
    std::vector<std::string> argv = {GPUMEM_CLI,    "replay",      trace,
                                     "--no-search", "--pool-size", "1MiB"};
    argv.insert(argv.end(), pool.begin(), pool.end());
    const Outcome o = run(argv, child_environment(false, {}), dir_);
    EXPECT_EQ(o.status, 2) << o.err;
    EXPECT_EQ(o.err,
              "gpumem replay: --pool-size sizes the fixed pool only, and the policy replayed "
              "is " +
                  (pool.empty() ? std::string("none") : pool[1]) +
                  "; add --pool fixed or drop --pool-size\n");
    EXPECT_EQ(o.out, "");
  }
  const Outcome fixed = run({GPUMEM_CLI, "replay", trace, "--no-search", "--pool", "fixed",
                             "--pool-size", "1MiB", "--json", "-"},
                            child_environment(false, {}), dir_);
  ASSERT_EQ(fixed.status, 0) << fixed.err;
  EXPECT_EQ(nlohmann::json::parse(fixed.out)["policy"], "fixed") << fixed.out;
}

// The same trace named twice (as is, spelt another way, through its folder) was read twice and
// reported as two processes of the run. Read once, with a note for each name dropped.
TEST_F(TextOutput, ReportReadsATraceNamedTwiceOnce) {
  const std::string folder = dir_ + "/traces";
  ASSERT_EQ(::mkdir(folder.c_str(), 0700), 0);
  const std::string trace = folder + "/one.trace";
  ASSERT_EQ(run({GPUMEM_CLI, "run", "--device", "sim", "--trace", trace, "--", RELIABILITY_WORKLOAD,
                 "one"},
                child_environment(false, {}), dir_)
                .status,
            0);
  const std::string spelt = folder + "/./one.trace";
  const Outcome o = run({GPUMEM_CLI, "report", "--json", "-", trace, spelt, folder},
                        child_environment(false, {}), dir_);
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.err, "gpumem report: " + trace +
                       " is named with its folder: read once\n"
                       "gpumem report: " +
                       spelt + " is named with its folder: read once\n");
  const nlohmann::json doc = nlohmann::json::parse(o.out);
  ASSERT_EQ(doc["traces"].size(), 1u) << doc["traces"].dump();
  EXPECT_EQ(doc["devices"].size(), 1u);
  const Outcome twice =
      run({GPUMEM_CLI, "report", "--json", "-", trace, spelt}, child_environment(false, {}), dir_);
  ASSERT_EQ(twice.status, 0) << twice.err;
  EXPECT_EQ(twice.err, "gpumem report: " + spelt + " is named more than once: read once\n");
  EXPECT_EQ(nlohmann::json::parse(twice.out)["traces"].size(), 1u);
}

// Two outputs named into one file: the second overwrote the first without a word. Refused (2).
TEST_F(TextOutput, ReportRefusesTwoOutputsIntoOneFile) {
  const std::string out = dir_ + "/out";
  const Outcome o = run({GPUMEM_CLI, "report", dir_, "--json", out, "--perfetto", out},
                        child_environment(false, {}), dir_);
  EXPECT_EQ(o.status, 2) << o.err;
  EXPECT_EQ(o.err, "gpumem report: --json and --perfetto both name " + out +
                       "; give each output its own file\n");
  struct stat st;
  EXPECT_NE(::stat(out.c_str(), &st), 0);
}

// A command that allocates nothing: every peak is 0, the line has no slope, and "the largest
// micro-batch fits" would be a guess. fit warns (stderr and its output), recommends nothing and
// exits 4.
TEST_F(TextOutput, FitWarnsWhenTheCommandAllocatesNothing) {
  const std::string json = dir_ + "/fit.json";
  const Outcome o = run({GPUMEM_CLI, "fit", "--limit", "1GiB", "--effective-batch", "8", "--device",
                         "sim", "--json", json, "--", "true", "{batch}", "{accum}"},
                        child_environment(false, {}), dir_);
  EXPECT_EQ(o.status, 4) << o.out << o.err;
  EXPECT_NE(o.err.find("gpumem fit: warning: the command allocated no GPU memory at any measured "
                       "micro-batch (every peak is 0 B)"),
            std::string::npos)
      << o.err;
  EXPECT_NE(o.out.find("warning: the command allocated no GPU memory"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("recommendation:"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("verification"), std::string::npos) << o.out;
  std::ifstream f(json);
  const nlohmann::json doc = nlohmann::json::parse(f);
  EXPECT_TRUE(doc["recommendation"].is_null());
  EXPECT_TRUE(doc["warning"].is_string());
  EXPECT_EQ(doc.count("verification"), 0u);
}

// A command whose peak is the same at every micro-batch (4 KiB): no slope, so no recommendation.
TEST_F(TextOutput, FitWarnsWhenThePeakIsFlat) {
  const Outcome o = run({GPUMEM_CLI, "fit", "--limit", "1GiB", "--effective-batch", "8", "--device",
                         "sim", "--", RELIABILITY_WORKLOAD, "one", "{batch}", "{accum}"},
                        child_environment(false, {}), dir_);
  EXPECT_EQ(o.status, 4) << o.out << o.err;
  EXPECT_NE(o.err.find("gpumem fit: warning: the measured peak is 4.00 KiB at every micro-batch"),
            std::string::npos)
      << o.err;
  EXPECT_EQ(o.out.find("recommendation:"), std::string::npos) << o.out;
}

// Bad fit options are refused before the command runs once (status 2, what to give instead):
// --dir that cannot be a folder used to throw out of fit (abort, status 134), "nan" passed as a
// margin (every comparison with it is false), and an unknown --device reached `gpumem run`,
// whose refusal fit reported as the command failing.
TEST_F(TextOutput, FitRefusesBadOptionsBeforeRunning) {
  const std::string marker = dir_ + "/started";
  const std::string file = dir_ + "/a-file";
  std::ofstream(file) << "x";
  struct BadFit {
    std::vector<std::string> options;
    std::string message;
  };
  const std::vector<BadFit> cases = {
      {{"--dir", file + "/runs"},
       "gpumem fit: --dir '" + file +
           "/runs' cannot be made a folder: Not a directory; give a "
           "folder you can write, or leave --dir out (a temporary one)\n"},
      {{"--dir", file},
       "gpumem fit: --dir '" + file +
           "' cannot be made a folder: Not a directory; give a "
           "folder you can write, or leave --dir out (a temporary one)\n"},
      {{"--margin", "nan"},
       "gpumem fit: --margin 'nan' is not a margin; use a percentage such as 5% or a fraction "
       "such as 0.05\n"},
      {{"--margin", "nan%"},
       "gpumem fit: --margin 'nan%' is not a margin; use a percentage such as 5% or a fraction "
       "such as 0.05\n"},
      {{"--device", "gpu"},
       "--device: gpu not in {auto,sim,real}\nRun with --help for more information.\n"},
  };
  for (const BadFit& c : cases) {
    SCOPED_TRACE(c.options[0] + " " + c.options[1]);
    std::vector<std::string> argv = {GPUMEM_CLI,          "fit", "--limit", "1GiB",
                                     "--effective-batch", "8"};
    if (c.options[0] != "--device") argv.insert(argv.end(), {"--device", "sim"});
    argv.insert(argv.end(), c.options.begin(), c.options.end());
    argv.insert(argv.end(),
                {"--", "/bin/sh", "-c", "touch '" + marker + "'", "{batch}", "{accum}"});
    const Outcome o = run(argv, child_environment(false, {}), dir_);
    EXPECT_FALSE(o.signaled) << o.err;
    EXPECT_EQ(o.status, 2) << o.err;
    EXPECT_EQ(o.err, c.message);
    struct stat st;
    EXPECT_NE(::stat(marker.c_str(), &st), 0) << "the command ran";
  }
}

// As `gpumem run`: an option after the program's name is the program's, not fit's (here fit would
// refuse --margin nan with status 2; the command takes it and allocates nothing: status 4).
TEST_F(TextOutput, FitGivesTheCommandEverythingAfterItsName) {
  const Outcome o =
      run({GPUMEM_CLI, "fit", "--limit", "1GiB", "--effective-batch", "8", "--device", "sim",
           "/bin/sh", "-c", "exit 0", "sh", "{batch}", "{accum}", "--margin", "nan"},
          child_environment(false, {}), dir_);
  EXPECT_EQ(o.status, 4) << o.err;
  EXPECT_NE(o.err.find("gpumem fit: warning: the command allocated no GPU memory"),
            std::string::npos)
      << o.err;
}

// fit's temporary folder (the runs' traces and logs) is removed on every way out: also when the
// command fails at the first micro-batch, which used to leave it behind.
TEST_F(TextOutput, FitRemovesItsTemporaryFolderWhenTheCommandFails) {
  const std::string tmp = dir_ + "/tmp";
  ASSERT_EQ(::mkdir(tmp.c_str(), 0700), 0);
  const Outcome o = run({GPUMEM_CLI, "fit", "--limit", "1GiB", "--effective-batch", "8", "--device",
                         "sim", "--", "false", "{batch}", "{accum}"},
                        child_environment(false, {"TMPDIR=" + tmp}), dir_);
  EXPECT_EQ(o.status, 1) << o.err;
  EXPECT_NE(o.err.find("gpumem fit: the command failed at micro-batch 1 (exit status 1)"),
            std::string::npos)
      << o.err;
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(tmp)) left.push_back(e.path());
  EXPECT_EQ(left, std::vector<std::string>{});
}

// `--json -` prints the document on stdout (no text) and writes no file named "-"; a --json file
// that cannot be written is an error, not a silent loss (the status stays fit's own when that
// is already a failure: 4, nothing to recommend).
TEST_F(TextOutput, FitJsonGoesWhereItIsAsked) {
  const std::vector<std::string> fit = {
      GPUMEM_CLI, "fit", "--limit", "1GiB", "--effective-batch", "8", "--device", "sim", "--json"};
  const std::vector<std::string> command = {"--", "true", "{batch}", "{accum}"};
  std::vector<std::string> argv = fit;
  argv.push_back("-");
  argv.insert(argv.end(), command.begin(), command.end());
  const Outcome o = run(argv, child_environment(false, {}), dir_);
  EXPECT_EQ(o.status, 4) << o.err;
  const nlohmann::json doc = nlohmann::json::parse(o.out);
  EXPECT_EQ(doc["schema"], "gpumem.fit/1");
  EXPECT_TRUE(doc["recommendation"].is_null());
  struct stat st;
  EXPECT_NE(::stat((dir_ + "/-").c_str(), &st), 0) << "a file named - was written";

  argv = fit;
  argv.push_back(dir_ + "/no/such/fit.json");
  argv.insert(argv.end(), command.begin(), command.end());
  const Outcome bad = run(argv, child_environment(false, {}), dir_);
  EXPECT_EQ(bad.status, 4) << bad.err;
  EXPECT_NE(bad.err.find("gpumem fit: cannot write " + dir_ +
                         "/no/such/fit.json; check that its directory exists and is writable\n"),
            std::string::npos)
      << bad.err;
}

// A program that cannot be started exits as a shell's would (127: no such program, 126: there but
// not runnable; it was 127 for both), with advice for each case and nothing about a missing trace
// (the program never ran). A program killed by a signal gives 128 + the signal.
TEST_F(TextOutput, RunExitStatusIsTheShells) {
  const std::string missing = dir_ + "/no-such-program";
  Outcome o = run({GPUMEM_CLI, "run", "--device", "sim", "--", missing},
                  child_environment(false, {}), dir_);
  EXPECT_EQ(o.status, 127) << o.err;
  EXPECT_EQ(o.err, "gpumem run: cannot run '" + missing +
                       "': No such file or directory; check the command name and PATH\n");
  const std::string plain = dir_ + "/not-executable";
  std::ofstream(plain) << "#!/bin/sh\necho ran\n";
  ASSERT_EQ(::chmod(plain.c_str(), 0644), 0);
  o = run({GPUMEM_CLI, "run", "--device", "sim", "--", plain}, child_environment(false, {}), dir_);
  EXPECT_EQ(o.status, 126) << o.err;
  EXPECT_EQ(o.err, "gpumem run: cannot run '" + plain +
                       "': Permission denied; check that it is a program file with execute "
                       "permission (chmod +x)\n");
  o = run({GPUMEM_CLI, "run", "--device", "sim", "--trace", "off", "--", "/bin/sh", "-c",
           "kill -TERM $$"},
          child_environment(false, {}), dir_);
  EXPECT_EQ(o.status, 128 + SIGTERM) << o.err;
}

// Everything from the program's name on is the program's, with or without `--`: options after it
// were taken as gpumem's own (`prog --limit 0` capped gpumem, not prog) or refused as unknown.
TEST_F(TextOutput, RunGivesTheProgramEverythingAfterItsName) {
  const Outcome o = run({GPUMEM_CLI, "run", "--device", "sim", "--trace", "off", "/bin/sh", "-c",
                         "echo \"$@\"", "sh", "-l", "--limit", "0", "--", "--trace"},
                        child_environment(false, {}), dir_);
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "-l --limit 0 -- --trace\n");
  EXPECT_EQ(o.err, "");
}

// A trace folder that does not exist, or is a file, is refused before the program starts (it
// would otherwise run to its end without a trace), naming the folder and what to do.
TEST_F(TextOutput, RunRefusesATraceFolderItCannotWrite) {
  const std::string marker = dir_ + "/started";
  const std::string file = dir_ + "/a-file";
  std::ofstream(file) << "x";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {dir_ + "/no/such/x.trace", "the folder " + dir_ + "/no/such: No such file or directory"},
      {file + "/x-%p.trace", "the folder " + file + ": it is not a folder"},
  };
  for (const auto& [trace, why] : cases) {
    SCOPED_TRACE(trace);
    for (const bool from_env : {false, true}) {
      std::vector<std::string> argv = {GPUMEM_CLI, "run", "--device", "sim"};
      if (!from_env) argv.insert(argv.end(), {"--trace", trace});
      argv.insert(argv.end(), {"--", "/bin/sh", "-c", "touch '" + marker + "'"});
      const Outcome o =
          run(argv, child_environment(false, {from_env ? "GPUMEM_TRACE=" + trace : ""}), dir_);
      EXPECT_EQ(o.status, 2) << o.err;
      EXPECT_EQ(o.err, "gpumem run: cannot write the trace into " + why +
                           "; create it or choose another path with --trace (or --trace off to "
                           "run without one)\n");
      struct stat st;
      EXPECT_NE(::stat(marker.c_str(), &st), 0) << "the program ran";
    }
  }
}

// --report (or --trace-max) with --trace off did nothing and said nothing: refused before the
// program starts.
TEST_F(TextOutput, RunRefusesAReportWithoutATrace) {
  const std::string marker = dir_ + "/started";
  for (const auto& [option, value] :
       {std::pair<std::string, std::string>{"--report", dir_ + "/r"}, {"--trace-max", "1GiB"}}) {
    const Outcome o = run({GPUMEM_CLI, "run", "--device", "sim", "--trace", "off", option, value,
                           "--", "/bin/sh", "-c", "touch '" + marker + "'"},
                          child_environment(false, {}), dir_);
    EXPECT_EQ(o.status, 2) << o.err;
    EXPECT_EQ(o.err, "gpumem run: " + option +
                         " needs the trace that --trace off turns off; drop one of them\n");
    struct stat st;
    EXPECT_NE(::stat(marker.c_str(), &st), 0) << "the program ran";
  }
}

// Once the program has ended, a signal is for `gpumem run` itself: it stops (status 128 + signal).
// It was caught and forwarded to the ended program's pid (which the system may have given to
// another process), and the report went on. Here the report waits on a FIFO no one reads.
TEST_F(TextOutput, RunStopsOnASignalAfterTheProgramEnded) {
  const std::string report = dir_ + "/report";
  ASSERT_EQ(::mkdir(report.c_str(), 0700), 0);
  const std::string fifo = report + "/report.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string out = dir_ + "/stdout", err = dir_ + "/stderr";
  const pid_t pid = start({GPUMEM_CLI, "run", "--device", "sim", "--trace", dir_ + "/t.trace",
                           "--report", report, "--", RELIABILITY_WORKLOAD, "one"},
                          child_environment(false, {}), out, err);
  ASSERT_GT(pid, 0);
  // The trace is named once the program has ended, before the report is written.
  for (int i = 0; i < 3000 && slurp(err).find("gpumem run: trace: ") == std::string::npos; ++i)
    ::usleep(10000);
  ::usleep(300000);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int st = 0;
  pid_t done = 0;
  for (int i = 0; i < 1000 && (done = ::waitpid(pid, &st, WNOHANG)) == 0; ++i) ::usleep(10000);
  if (done == 0) {  // still blocked on the FIFO: a reader lets it finish
    const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    if (reader >= 0) ::close(reader);
  }
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM) << "status " << st << ": " << slurp(err);
}

// --trace FOLDER: the preload writes FOLDER/gpumem-<pid>.trace. `gpumem run` names that file (it
// named the folder) and --report reads that one trace, not every trace the folder holds from
// earlier runs (which it reported as processes of this run).
TEST_F(TextOutput, RunWithATraceFolderNamesAndReportsOnlyItsOwnTrace) {
  const std::string folder = dir_ + "/traces";
  ASSERT_EQ(::mkdir(folder.c_str(), 0700), 0);
  const std::vector<std::string> argv = {
      GPUMEM_CLI,       "run", "--device",           "sim", "--trace", folder, "--report",
      dir_ + "/report", "--",  RELIABILITY_WORKLOAD, "one"};
  ASSERT_EQ(run(argv, child_environment(false, {}), dir_).status, 0);  // an earlier run's trace
  const Outcome o = run(argv, child_environment(false, {}), dir_);
  ASSERT_EQ(o.status, 0) << o.err;
  const std::string prefix = "gpumem run: trace: ";
  const size_t at = o.err.find(prefix + folder + "/gpumem-");
  ASSERT_NE(at, std::string::npos) << o.err;
  const size_t from = at + prefix.size();
  const std::string path = o.err.substr(from, o.err.find('\n', from) - from);
  const LoadedTrace t = load_trace(path);
  ASSERT_TRUE(t.opened) << path << ": " << t.error;
  std::ifstream f(dir_ + "/report/report.json");
  const nlohmann::json doc = nlohmann::json::parse(f);
  ASSERT_EQ(doc["traces"].size(), 1u) << doc["traces"].dump();
  EXPECT_EQ(doc["traces"][0]["pid"], t.header.pid);
}

}  // namespace
}  // namespace reliability
