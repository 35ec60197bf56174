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
const std::vector<std::string> kBadPercents = {"200%", "0%", "%", "-5%", "50%%", "101%"};

std::vector<Case> cases() {
  std::vector<std::string> limits = kBadSizes;
  limits.insert(limits.end(), kBadPercents.begin(), kBadPercents.end());
  std::vector<std::string> pool_sizes = kBadSizes;
  pool_sizes.push_back("60%");
  const std::vector<std::string> counts = {"", "abc", "-1", "1.5", " 1", "99999999999999999999999", "1e3"};
  return {
      {"GPUMEM_TRACE", {std::string(5000, 'x')}},
      {"GPUMEM_STACKS", {"2", "yes", "true", "-1", " 1", "1 ", "\xff"}},
      {"GPUMEM_LOG", {"verbose", "WARN", "0", "warning", "debug "}},
      {"GPUMEM_POOL", {"grow", "Growth", "fixed ", "1", "none,growth"}},
      {"GPUMEM_LIMIT", limits},
      {"GPUMEM_LIMIT_0", limits},
      {"GPUMEM_LIMIT_63", {"abc", "0", "200%"}},
      {"GPUMEM_POOL_SIZE", pool_sizes},
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
        struct stat st;
        EXPECT_NE(::stat(trace.c_str(), &st), 0) << "a trace was written despite the bad setting";
      }
    }
  }
  std::printf("reliability.bad_env: %d malformed values tried\n", tried);
}

// The same variables with good values run (so the matrix above tests the values, not the names).
TEST_F(BadEnv, WellFormedValuesRun) {
  const std::vector<std::string> good = {
      "GPUMEM_STACKS=1",        "GPUMEM_LOG=debug",        "GPUMEM_POOL=none",
      "GPUMEM_LIMIT=60%",       "GPUMEM_LIMIT_0=1.5GiB",   "GPUMEM_POOL_SIZE=512MiB",
      "SIMCUDA_DEVICES=2",      "SIMCUDA_MEMORY=8GiB",     "SIMCUDA_FAIL_ALLOC_AFTER=5",
      "SIMCUDA_ALLOC_LATENCY_US=0", "SIMCUDA_FREE_LATENCY_US=0"};
  for (const std::string& kv : good) {
    const Outcome o = run({RELIABILITY_WORKLOAD, "one"},
                          child_environment(true, {"GPUMEM_TRACE=" + dir_ + "/good-%p.trace", kv}), dir_);
    EXPECT_EQ(o.status, 0) << kv << ": " << o.err;
  }
}

}  // namespace
}  // namespace reliability
