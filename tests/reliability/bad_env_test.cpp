// Bad-input matrix, environment: every GPUMEM_* and SIMCUDA_* variable with malformed values.
// Each must end the program with exit status 2 and exactly one line on stderr that names the
// variable and says the value is not valid; never a crash, never a trace.
#include <sys/stat.h>

#include "process.h"
#include "support.h"

namespace reliability {
namespace {

using BadEnv = ScratchTest;

struct Case {
  std::string var;
  std::vector<std::string> values;
};

const std::vector<std::string> kBadSizes = {"abc", "-1", "0", "0.1", "12XB", "1.5.5", "nan", "inf", "1e400",
                                            "99999999999999999999999", "GiB", "8 GiB extra", "\xff\xfe",
                                            "+5", "5MiBs", "0x10", "0x1p20"};
// "1e-12%" is under one byte of any device (refused as it is read); "1e-10%" is 0 bytes of the
// simulated 16 GiB device (refused when the device's capacity is read, before the first request).
const std::vector<std::string> kBadPercents = {"200%", "0%", "%", "-5%", "50%%", "101%", "1e-12%", "1e-10%"};
// A newline, a carriage return, escape sequences and a C1 byte: the message must stay one line.
const std::vector<std::string> kControlValues = {"8GiB\nsecond line", "1\r\n2", "\x1b[2J\x1b[H", "x\x9b" "2J\x07\b"};

std::vector<Case> cases() {
  std::vector<std::string> limits = kBadSizes;
  limits.insert(limits.end(), kBadPercents.begin(), kBadPercents.end());
  limits.insert(limits.end(), kControlValues.begin(), kControlValues.end());
  std::vector<std::string> pool_sizes = kBadSizes;
  // Below the fixed pool's 512-byte block: every allocation would fail.
  pool_sizes.insert(pool_sizes.end(), {"60%", "8b", "1", "511", "0.4KiB"});
  pool_sizes.insert(pool_sizes.end(), kControlValues.begin(), kControlValues.end());
  const auto with_controls = [](std::vector<std::string> values) {
    values.insert(values.end(), kControlValues.begin(), kControlValues.end());
    return values;
  };
  const std::vector<std::string> counts = {"", "abc", "-1", "1.5", " 1", "99999999999999999999999", "1e3"};
  return {
      {"GPUMEM_TRACE", {std::string(5000, 'x')}},
      {"GPUMEM_STACKS", with_controls({"2", "yes", "true", "-1", " 1", "1 ", "\xff", "1\n"})},
      {"GPUMEM_LOG", with_controls({"verbose", "WARN", "0", "warning", "debug "})},
      {"GPUMEM_POOL", with_controls({"grow", "Growth", "fixed ", "1", "none,growth", "fixed\n"})},
      {"GPUMEM_LIMIT", limits},
      {"GPUMEM_LIMIT_0", limits},
      {"GPUMEM_LIMIT_63", {"abc", "0", "200%"}},
      // Names parse_config never reads: a device past 63, a leading zero, a misspelt SCOPE.
      {"GPUMEM_LIMIT_64", {"1GiB"}},
      {"GPUMEM_LIMIT_01", {"1GiB"}},
      {"GPUMEM_LIMIT_99999999999999999999", {"1GiB"}},
      {"GPUMEM_LIMIT_SCOP", {"shared"}},
      {"GPUMEM_POOL_SIZE", pool_sizes},
      {"GPUMEM_TRACE_MAX", with_controls({"abc", "-1", "0", "4095KiB", "1MiB", "60%", "2 GiB extra",
                                          "0x400000", "nan", "99999999999999999999999"})},
      {"SIMCUDA_DEVICES", {"0", "65", "abc", "-1", "1.5", "", " 1"}},
      {"SIMCUDA_MEMORY", {"1MiB", "abc", "2PiB", "0", "60%", "", "-1"}},
      {"SIMCUDA_FAIL_ALLOC_AFTER", counts},
      {"SIMCUDA_ALLOC_LATENCY_US", {"-1", "10000001", "abc", "", "1e3", "1.5"}},
      {"SIMCUDA_FREE_LATENCY_US", {"-1", "10000001", "abc", "", "1e3", "1.5"}},
  };
}

TEST_F(BadEnv, EveryVariableMalformedExitsTwoWithOneClearLine) {
  int tried = 0;
  for (const Case& c : cases()) {
    for (const std::string& value : c.values) {
      SCOPED_TRACE(c.var + "='" + value.substr(0, 40) + "'");
      const std::string trace = dir_ + "/bad.trace";
      ::unlink(trace.c_str());
      std::vector<std::string> extra = {c.var + "=" + value};
      if (c.var != "GPUMEM_TRACE") extra.push_back("GPUMEM_TRACE=" + trace);  // the first one counts
      const Outcome o = run({RELIABILITY_WORKLOAD, "one"}, child_environment(true, extra), dir_);
      ++tried;
      EXPECT_FALSE(o.signaled) << o.err;
      EXPECT_EQ(o.status, 2) << o.err;
      EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
      EXPECT_NE(o.err.find(c.var), std::string::npos) << o.err;
      EXPECT_NE(o.err.find("not valid"), std::string::npos) << o.err;
      if (c.var.rfind("GPUMEM_", 0) == 0) {
        for (char ch : o.err) {  // the value is echoed with its control characters escaped
          const auto byte = static_cast<unsigned char>(ch);
          EXPECT_TRUE(ch == '\n' || (byte >= 0x20 && byte != 0x7f && byte != 0x9b))
              << "raw control byte " << static_cast<int>(byte) << " in " << o.err;
        }
      }
      if (c.var.rfind("GPUMEM_", 0) == 0) {
        struct stat st;
        EXPECT_NE(::stat(trace.c_str(), &st), 0) << "a trace was written despite the bad setting";
      }
    }
  }
  std::printf("reliability.bad_env: %d malformed values tried\n", tried);
}

// A GPUMEM_LIMIT_<...> variable the parser never reads would be a cap silently ignored (device 64
// of the 64 gpumem tracks, "01" for device 1, a typo of SCOPE): refused with the accepted names.
// An empty one counts as unset, as every GPUMEM_* variable does.
TEST_F(BadEnv, LimitNamesThatNameNoSettingAreRefused) {
  const std::string accepted =
      "; accepted: GPUMEM_LIMIT_<n> for device n from 0 to 63 (no leading zero), "
      "GPUMEM_LIMIT_SCOPE, GPUMEM_LIMIT_NAME or GPUMEM_LIMIT_GROUP. Fix or unset ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"GPUMEM_LIMIT_64=1GiB",
       "gpumem: GPUMEM_LIMIT_64='1GiB' is not valid: it names no device gpumem reads, so the cap "
       "would be ignored" +
           accepted + "GPUMEM_LIMIT_64.\n"},
      {"GPUMEM_LIMIT_01=1GiB",
       "gpumem: GPUMEM_LIMIT_01='1GiB' is not valid: it names no device gpumem reads, so the cap "
       "would be ignored" +
           accepted + "GPUMEM_LIMIT_01.\n"},
      {"GPUMEM_LIMIT_NAMES=jobs",
       "gpumem: GPUMEM_LIMIT_NAMES='jobs' is not valid: gpumem reads no variable of that name, so "
       "it would be ignored" +
           accepted + "GPUMEM_LIMIT_NAMES.\n"},
  };
  const std::string trace = dir_ + "/names.trace";
  for (const auto& [assignment, message] : cases) {
    SCOPED_TRACE(assignment);
    const Outcome o = run({RELIABILITY_WORKLOAD, "one"},
                          child_environment(true, {assignment, "GPUMEM_TRACE=" + trace}), dir_);
    EXPECT_EQ(o.status, 2) << o.err;
    EXPECT_EQ(o.err, message);
    struct stat st;
    EXPECT_NE(::stat(trace.c_str(), &st), 0) << "a trace was written despite the bad setting";
  }
  for (const std::string assignment :
       {"GPUMEM_LIMIT_64=", "GPUMEM_LIMIT_63=1GiB", "GPUMEM_LIMIT_9=1GiB"}) {
    const Outcome o = run({RELIABILITY_WORKLOAD, "one"},
                          child_environment(true, {assignment, "GPUMEM_TRACE=" + trace}), dir_);
    EXPECT_EQ(o.status, 0) << assignment << ": " << o.err;
    ::unlink(trace.c_str());
  }
}

// GPUMEM_POOL_SIZE sizes the fixed pool only: under another pool it was ignored without a word.
// It still runs (scripts set it for every pool), with one warning line saying so and what to do.
TEST_F(BadEnv, PoolSizeWithoutTheFixedPoolIsSaid) {
  const std::string trace = dir_ + "/pool-%p.trace";
  for (const std::string pool : {"", "none", "growth", "expandable", "fixed"}) {
    SCOPED_TRACE("GPUMEM_POOL=" + pool);
    const Outcome o = run({RELIABILITY_WORKLOAD, "one"},
                          child_environment(true, {"GPUMEM_POOL=" + pool, "GPUMEM_POOL_SIZE=64MiB",
                                                   "GPUMEM_TRACE=" + trace}),
                          dir_);
    EXPECT_EQ(o.status, 0) << o.err;
    EXPECT_EQ(o.err, pool == "fixed"
                         ? ""
                         : "gpumem: GPUMEM_POOL_SIZE is ignored: it sizes the fixed pool "
                           "only, and GPUMEM_POOL is " +
                               (pool.empty() ? std::string("none") : pool) +
                               "; set GPUMEM_POOL=fixed or unset GPUMEM_POOL_SIZE\n");
  }
}

// Values that are fine alone but leave nothing to allocate together: a fixed pool sized by a
// limit below one 512-byte block (as bytes, or as a percentage of the device), and `gpumem run
// --limit` with a value the preload refuses. Each: status 2, one line naming the variable.
TEST_F(BadEnv, CapsThatHoldNothingExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> combos = {
      {"GPUMEM_POOL=fixed", "GPUMEM_LIMIT=100"},
      {"GPUMEM_POOL=fixed", "GPUMEM_LIMIT_0=511"},
      {"GPUMEM_POOL=fixed", "GPUMEM_LIMIT=1e-9%"},  // 0.17 B of 16 GiB
      {"GPUMEM_POOL=fixed", "GPUMEM_LIMIT=2e-6%"},  // 343 B of 16 GiB: under one pool block
      {"GPUMEM_POOL=fixed", "GPUMEM_LIMIT=1GiB", "GPUMEM_POOL_SIZE=511"},
  };
  for (const auto& extra_vars : combos) {
    SCOPED_TRACE(extra_vars[1]);
    std::vector<std::string> extra = extra_vars;
    extra.push_back("GPUMEM_TRACE=" + dir_ + "/bad.trace");
    const Outcome o = run({RELIABILITY_WORKLOAD, "one"}, child_environment(true, extra), dir_);
    EXPECT_FALSE(o.signaled) << o.err;
    EXPECT_EQ(o.status, 2) << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    EXPECT_NE(o.err.find(extra_vars.back().substr(0, extra_vars.back().find('='))), std::string::npos) << o.err;
    EXPECT_NE(o.err.find("512 B"), std::string::npos) << "the minimum is named: " << o.err;
    struct stat st;
    EXPECT_NE(::stat((dir_ + "/bad.trace").c_str(), &st), 0) << "a trace was written despite the bad setting";
  }
  // The CLI takes the same rules: it refuses before starting the program.
  for (const std::string limit : {"1e-12%", "0", "8 GiB extra", "8GiB\nx"}) {
    SCOPED_TRACE(limit);
    const Outcome o = run({GPUMEM_CLI, "run", "--device", "sim", "--trace", dir_ + "/cli.trace", "--limit", limit,
                           "--", RELIABILITY_WORKLOAD, "one"},
                          child_environment(false, {}), dir_);
    EXPECT_EQ(o.status, 2) << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
    EXPECT_NE(o.err.find("gpumem run: --limit: GPUMEM_LIMIT='" + limit.substr(0, 4)), std::string::npos)
        << o.err;
    EXPECT_NE(o.err.find("not valid"), std::string::npos) << o.err;
  }
  // 0 bytes of this device only: the preload finds it once the capacity is read.
  const Outcome o = run({GPUMEM_CLI, "run", "--device", "sim", "--trace", dir_ + "/cli.trace", "--limit", "1e-10%",
                         "--", RELIABILITY_WORKLOAD, "one"},
                        child_environment(false, {}), dir_);
  EXPECT_EQ(o.status, 2) << o.err;
  EXPECT_NE(o.err.find("gpumem: GPUMEM_LIMIT=1e-10% is not valid: it is 0 bytes of device 0's capacity (16.00 GiB)"),
            std::string::npos)
      << o.err;
}

// `gpumem run` checks every option, and the GPUMEM_* variables it passes on, with the preload's
// own parser before it starts the program (issue 27, item 5): status 2, one line, the library's
// message, and the program never runs (it would create `started`).
TEST_F(BadEnv, RunRefusesEveryBadOptionBeforeStartingTheProgram) {
  const std::string limit_forms =
      "accepted: a size such as 512MiB, 8GiB, 1.5GiB, 1073741824, or a percentage such as 60%.";
  struct BadRun {
    std::vector<std::string> args;
    std::vector<std::string> env;
    std::string message;
  };
  const std::vector<BadRun> cases = {
      {{"--limit", "200%"},
       {},
       "gpumem run: --limit: GPUMEM_LIMIT='200%' is not valid: a percentage is above 0% and at "
       "most 100% of the "
       "device; " +
           limit_forms + " Fix --limit.\n"},
      {{"--limit", "0%"},
       {},
       "gpumem run: --limit: GPUMEM_LIMIT='0%' is not valid: a percentage is above 0% and at most "
       "100% of the "
       "device; " +
           limit_forms + " Fix --limit.\n"},
      {{"--limit", "99999999999999999999"},
       {},
       "gpumem run: --limit: GPUMEM_LIMIT='99999999999999999999' is not valid: it is more bytes "
       "than 64 bits "
       "hold, far above any device; " +
           limit_forms + " Fix --limit.\n"},
      {{"--limit", "8 parsecs"},
       {},
       "gpumem run: --limit: GPUMEM_LIMIT='8 parsecs' is not valid: it is not a size; " +
           limit_forms + " Fix --limit.\n"},
      {{"--limit", "0"},
       {},
       "gpumem run: --limit: GPUMEM_LIMIT='0' is not valid: it is 0 bytes, a cap that refuses "
       "everything; " +
           limit_forms + " Fix --limit.\n"},
      {{"--pool", "bogus"},
       {},
       "gpumem run: --pool: GPUMEM_POOL='bogus' is not valid; accepted: none, growth, fixed or "
       "expandable. Fix --pool.\n"},
      {{"--pool", "fixed"},
       {},
       "gpumem run: --pool: GPUMEM_POOL='fixed' is not valid; accepted: fixed together with "
       "GPUMEM_POOL_SIZE or "
       "GPUMEM_LIMIT (the pool's size), or growth, or none. Fix --pool.\n"},
      {{"--pool", "fixed", "--limit", "100"},
       {},
       "gpumem run: --limit: GPUMEM_LIMIT='100' is not valid: it sizes the fixed pool, which needs "
       "at least 512 B "
       "(one pool block); " +
           limit_forms + " Fix --limit.\n"},
      {{"--trace", std::string(5000, 'x')},
       {},
       "gpumem run: --trace: GPUMEM_TRACE='(too long)' is not valid; accepted: a path template "
       "shorter than 4096 "
       "bytes, or off. Fix --trace.\n"},
      {{"--trace-max", "1MiB"},
       {},
       "gpumem run: --trace-max: GPUMEM_TRACE_MAX='1MiB' is not valid: it is below 4 MiB, the ring "
       "and the least "
       "window; accepted: a size of at least 4MiB such as 512MiB or 2GiB (not a percentage). Fix "
       "--trace-max.\n"},
      {{"--stacks=bogus"},
       {},
       "--stacks: bogus not in {native,python,mixed}\nRun with --help for more information.\n"},
      {{"--capture", "bogus"},
       {},
       "--capture: bogus not in {preload,cupti}\nRun with --help for more information.\n"},
      {{"--device", "bogus"},
       {},
       "--device: bogus not in {auto,sim,real}\nRun with --help for more information.\n"},
      {{"--pool", "--"},
       {},
       ""},  // CLI11's message for a swallowed "--"; checked below by status only
      // The environment's own GPUMEM_* values go to the program too: checked the same way.
      {{},
       {"GPUMEM_LOG=loud"},
       "gpumem run: GPUMEM_LOG='loud' is not valid; accepted: error, warn, info or debug. Fix or "
       "unset GPUMEM_LOG.\n"},
      {{},
       {"GPUMEM_POOL_SIZE=511"},
       "gpumem run: GPUMEM_POOL_SIZE='511' is not valid: it is below 512 B, the fixed pool's "
       "smallest block, so every "
       "allocation would fail; accepted: a size of at least 512 B such as 512MiB or 8GiB (not a "
       "percentage). Fix or "
       "unset GPUMEM_POOL_SIZE.\n"},
      {{"--pool", "fixed"},
       {"GPUMEM_LIMIT_0=64MiB"},
       "gpumem run: --pool: GPUMEM_POOL='fixed' is not valid: GPUMEM_LIMIT_<n> caps one device and "
       "does not "
       "size the pool; accepted: fixed together with GPUMEM_POOL_SIZE or GPUMEM_LIMIT (the pool's "
       "size), or "
       "growth, or none. Fix --pool.\n"},
      {{"--limit", "1GiB"},
       {"GPUMEM_LIMIT_2=abc"},
       "gpumem run: GPUMEM_LIMIT_2='abc' is not valid: it is not a size; " + limit_forms +
           " Fix or unset GPUMEM_LIMIT_2.\n"},
  };
  const std::string started = dir_ + "/started";
  for (const BadRun& c : cases) {
    std::vector<std::string> argv = {GPUMEM_CLI, "run", "--device", "sim"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    argv.insert(argv.end(), {"--", "/bin/sh", "-c", "touch '" + started + "'"});
    SCOPED_TRACE(argv[4] + " " + (c.env.empty() ? "" : c.env[0]));
    const Outcome o = run(argv, child_environment(false, c.env), dir_);
    EXPECT_EQ(o.status, 2) << o.err;
    if (!c.message.empty()) {
      EXPECT_EQ(o.err, c.message);
    }
    struct stat st;
    EXPECT_NE(::stat(started.c_str(), &st), 0) << "the program ran despite the bad setting";
  }
  // --report names a folder that cannot be made: refused before the program starts, too.
  const Outcome o = run({GPUMEM_CLI, "run", "--device", "sim", "--report", "/proc/gpumem-no/such", "--", "/bin/sh",
                         "-c", "touch '" + started + "'"},
                        child_environment(false, {}), dir_);
  EXPECT_EQ(o.status, 2) << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  EXPECT_EQ(o.err.rfind("gpumem run: cannot create the report folder /proc/gpumem-no/such: ", 0), 0u) << o.err;
  struct stat st;
  EXPECT_NE(::stat(started.c_str(), &st), 0);
}

// The same variables with good values run (so the matrix above tests the values, not the names).
TEST_F(BadEnv, WellFormedValuesRun) {
  const std::vector<std::string> good = {
      "GPUMEM_STACKS=1",        "GPUMEM_STACKS=native",    "GPUMEM_STACKS=python",
      "GPUMEM_STACKS=mixed",    "GPUMEM_STACKS=off",       "GPUMEM_LOG=debug",        "GPUMEM_POOL=none",
      "GPUMEM_LIMIT=60%",       "GPUMEM_LIMIT_0=1.5GiB",   "GPUMEM_POOL_SIZE=512MiB", "GPUMEM_POOL_SIZE=512",
      "SIMCUDA_DEVICES=2",      "SIMCUDA_MEMORY=8GiB",     "SIMCUDA_FAIL_ALLOC_AFTER=5",
      "SIMCUDA_ALLOC_LATENCY_US=0", "SIMCUDA_FREE_LATENCY_US=0", "GPUMEM_TRACE_MAX=4MiB",
      "GPUMEM_TRACE_MAX=2GiB"};
  for (const std::string& kv : good) {
    const Outcome o = run({RELIABILITY_WORKLOAD, "one"},
                          child_environment(true, {"GPUMEM_TRACE=" + dir_ + "/good-%p.trace", kv}), dir_);
    EXPECT_EQ(o.status, 0) << kv << ": " << o.err;
  }
}

}  // namespace
}  // namespace reliability
