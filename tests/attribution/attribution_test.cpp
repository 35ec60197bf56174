// Python frames per allocation: a Python program allocates through ctypes (which releases the
// GIL) under the preload with GPUMEM_STACKS=python, while another Python thread spins and a C++
// thread allocates too; the report must name each allocating line, to the byte.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "scratch.h"
#include "shell.h"

namespace {

using nlohmann::json;

// The environment that preloads gpumem on simcuda with GPUMEM_STACKS=stacks, tracing into dir.
std::string preload_env(const gpumem::test::ScratchDir& dir, const std::string& stacks) {
  return "env -u LD_PRELOAD LD_LIBRARY_PATH=" GPUMEM_SIMCUDA_DIR " LD_PRELOAD=" GPUMEM_PRELOAD_PATH
         " GPUMEM_STACKS=" +
         stacks + " GPUMEM_TRACE=" + (dir / "t.trace") + " ";
}

// `gpumem report DIR/t.trace --json` as parsed JSON.
json report_of(const gpumem::test::ScratchDir& dir) {
  auto r = gpumem::test::sh(std::string(GPUMEM_CLI) + " report " + (dir / "t.trace") + " --json " +
                            (dir / "r.json"));
  EXPECT_EQ(r.status, 0) << r.out;
  std::ifstream in(dir / "r.json");
  return json::parse(in);
}

// Parameters: the interpreter, and GPUMEM_STACKS (python, or mixed: native frames first).
class Attribution : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  gpumem::test::ScratchDir dir_{"gpumem-attribution"};
};

std::string last_line(const std::string& s) {
  std::string line, last;
  std::istringstream in(s);
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '{') last = line;
  return last;
}

std::string function_of(const std::string& frame) {
  return frame.substr(0, frame.find(" ("));
}

TEST_P(Attribution, EveryAllocationNamesItsPythonLineToTheByte) {
  // Debian's python3, and whichever python3 comes first on PATH (a pyenv build, say: linked
  // against libpython3.x.so instead of carrying the interpreter in the executable).
  const auto& [interpreter, mode] = GetParam();
  const bool mixed = mode == "mixed";
  auto which = gpumem::test::sh("command -v " + interpreter);
  if (which.status != 0 || which.out.empty()) GTEST_SKIP() << interpreter << " is not installed";
  // The interpreter itself, not a launcher that finds it (pyenv's shims are bash scripts, which
  // would run under the preload too: under ASan, LeakSanitizer's exit check crashed in them in
  // some build folders and not in others).
  auto real = gpumem::test::sh(interpreter + " -c 'import sys; print(sys.executable)'");
  const std::string python = real.out.substr(0, real.out.find('\n'));
  ASSERT_EQ(real.status, 0) << real.out;
  ASSERT_FALSE(python.empty()) << interpreter << " does not say where it is";
  ASSERT_TRUE(dir_.ok());
  auto run = gpumem::test::sh(preload_env(dir_, mode) + python +
                              " " ALLOC_LINES_PY " " GPUMEM_SIMCUDA_DIR
                              "/libcudart.so.13 " ATTRIBUTION_NATIVE);
  ASSERT_EQ(run.status, 0) << run.out;
  const json expected = json::parse(last_line(run.out));
  const json r = report_of(dir_);
  ASSERT_EQ(r["devices"].size(), 1u);
  const json& peak = r["devices"][0]["peak"];
  EXPECT_EQ(peak["grouped_by"], "python_line");
  EXPECT_EQ(r["traces"][0]["python_frames"].get<std::string>().rfind("Python 3.", 0), 0u)
      << r["traces"][0]["python_frames"];
  std::map<std::string, uint64_t> got;
  uint64_t sum = 0;
  for (const json& row : peak["live_at_peak"]) {
    ASSERT_TRUE(row.contains("python_line")) << row.dump();
    got[row["python_line"].get<std::string>()] += row["bytes"].get<uint64_t>();
    sum += row["bytes"].get<uint64_t>();
  }
  std::map<std::string, uint64_t> want;
  for (auto& [line, bytes] : expected["live_at_peak"].items()) want[line] = bytes.get<uint64_t>();
  EXPECT_EQ(got, want);
  EXPECT_EQ(sum, peak["allocated_bytes"].get<uint64_t>());

  // The nested helpers appear in order, innermost first (after the native frames in mixed
  // mode); the native thread says it had no Python frame and keeps its native stack (after the
  // marker; in mixed mode the marker ends the stack).
  bool saw_nested = false, saw_native = false;
  for (const json& row : peak["live_at_peak"]) {
    const auto frames = row["frames"].get<std::vector<std::string>>();
    if (function_of(row["python_line"]) == "Model.inner") {
      const auto at = std::find(frames.begin(), frames.end(), row["python_line"]);
      ASSERT_TRUE(at != frames.end());
      EXPECT_EQ(at == frames.begin(), !mixed) << "native frames come first only in mixed mode";
      ASSERT_GE(frames.end() - at, 3);
      std::vector<std::string> names;
      for (auto f = at; f != at + 3; ++f) names.push_back(function_of(*f));
      EXPECT_EQ(names, expected["nested"].get<std::vector<std::string>>());
      saw_nested = true;
    }
    if (row["python_line"] == "[no Python frame] (native thread)") {
      ASSERT_GE(frames.size(), 2u);
      const std::string& first_native = mixed ? frames[0] : frames[1];
      if (!mixed) {
        EXPECT_EQ(frames[0], "[no Python frame] (native thread)");
      }
      EXPECT_NE(first_native.find("native_thread"), std::string::npos) << first_native;
      saw_native = true;
    }
  }
  EXPECT_TRUE(saw_nested);
  EXPECT_TRUE(saw_native);

  // The allocation made by a C exit handler after Python finalized: no Python frame, no crash.
  const json& leaks = r["devices"][0]["leaks"];
  ASSERT_EQ(leaks.size(), 1u) << leaks.dump();
  EXPECT_EQ(leaks[0]["python_line"], "[no Python frame] (native thread)");
  EXPECT_EQ(leaks[0]["bytes"], 4096u);

  // The failed allocation names its line too, in the JSON and in the text summary.
  std::map<std::string, uint64_t> failed;
  for (const json& a : r["anomalies"])
    if (a["kind"] == "alloc_failed")
      failed[a.value("python_line", "")] += a["bytes"].get<uint64_t>();
  std::map<std::string, uint64_t> want_failed;
  for (auto& [line, bytes] : expected["failed"].items()) want_failed[line] = bytes.get<uint64_t>();
  EXPECT_EQ(failed, want_failed);
  auto text =
      gpumem::test::sh(std::string(GPUMEM_CLI) + " report " + (dir_ / "t.trace") + " --text");
  EXPECT_NE(text.out.find("failed allocations by Python line (bytes asked for):\n"),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("in      1 allocs  " + want_failed.begin()->first), std::string::npos)
      << text.out;
}

INSTANTIATE_TEST_SUITE_P(Pythons, Attribution,
                         ::testing::Combine(::testing::Values("/usr/bin/python3", "python3"),
                                            ::testing::Values("python", "mixed")),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == "python3" ? "path_"
                                                                                   : "debian_") +
                                  std::get<1>(info.param);
                         });

// Without Python in the process, GPUMEM_STACKS=python records native stacks, with no marker.
TEST(AttributionNative, NoPythonMeansNativeStacks) {
  gpumem::test::ScratchDir dir("gpumem-attribution");
  ASSERT_TRUE(dir.ok());
  auto run = gpumem::test::sh(preload_env(dir, "python") + RELIABILITY_WORKLOAD " one");
  ASSERT_EQ(run.status, 0) << run.out;
  const json r = report_of(dir);
  ASSERT_EQ(r["devices"].size(), 1u);
  const json& live = r["devices"][0]["peak"]["live_at_peak"];
  ASSERT_EQ(live.size(), 1u);
  EXPECT_EQ(r["devices"][0]["peak"]["grouped_by"], "site");
  EXPECT_FALSE(live[0].contains("python_line"));
  EXPECT_FALSE(live[0]["frames"].empty());
  EXPECT_EQ(r["traces"][0]["python_frames"],
            "off: no Python interpreter in the process; native stacks recorded");
}

}  // namespace

// gpumem run --tensors: what the child gets, what stderr says, and what the report says.
struct TensorsRun {
  std::string env_line;  // the child's view of the framework variables
  std::string err;       // everything gpumem run printed
};

TensorsRun run_tensors(const std::string& user_env) {
  auto r = gpumem::test::sh(
      "env -u PYTORCH_CUDA_ALLOC_CONF -u PYTORCH_ALLOC_CONF -u TF_GPU_ALLOCATOR "
      "-u XLA_PYTHON_CLIENT_ALLOCATOR -u XLA_PYTHON_CLIENT_PREALLOCATE " +
      user_env +
      " " GPUMEM_CLI
      " run --tensors --trace off -- sh -c 'echo "
      "\"ENV PT=$PYTORCH_CUDA_ALLOC_CONF PG=$PYTORCH_ALLOC_CONF "
      "TF=$TF_GPU_ALLOCATOR X=$XLA_PYTHON_CLIENT_ALLOCATOR "
      "P=$XLA_PYTHON_CLIENT_PREALLOCATE T=$GPUMEM_TENSORS\"'");
  EXPECT_EQ(r.status, 0) << r.out;
  TensorsRun t;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("ENV ", 0) == 0)
      t.env_line = line;
    else
      t.err += line + "\n";
  }
  return t;
}

TEST(Tensors, SetsEveryFrameworkWhenNothingIsSet) {
  const TensorsRun t = run_tensors("");
  EXPECT_EQ(t.env_line,
            "ENV PT=backend:cudaMallocAsync PG= TF=cuda_malloc_async X=cuda_async P=false T=on");
  EXPECT_NE(
      t.err.find(
          "gpumem run: --tensors: PyTorch: PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync\n"),
      std::string::npos)
      << t.err;
  EXPECT_NE(t.err.find("gpumem run: --tensors: TensorFlow: TF_GPU_ALLOCATOR=cuda_malloc_async\n"),
            std::string::npos);
  EXPECT_NE(t.err.find("gpumem run: --tensors: JAX: XLA_PYTHON_CLIENT_ALLOCATOR=cuda_async\n"),
            std::string::npos);
}

TEST(Tensors, MergesWithTheUsersSettingsAndSaysWhatIsIgnored) {
  const TensorsRun t = run_tensors(
      "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True,max_split_size_mb:128 "
      "XLA_PYTHON_CLIENT_ALLOCATOR=platform XLA_PYTHON_CLIENT_PREALLOCATE=true");
  EXPECT_EQ(t.env_line,
            "ENV PT=expandable_segments:True,max_split_size_mb:128,backend:cudaMallocAsync PG= "
            "TF=cuda_malloc_async X=platform P=true T=on");
  EXPECT_NE(t.err.find("expandable_segments, max_split_size_mb only applies to the native caching "
                       "allocator and is ignored under backend:cudaMallocAsync"),
            std::string::npos)
      << t.err;
  EXPECT_NE(t.err.find("JAX: XLA_PYTHON_CLIENT_ALLOCATOR is already platform"), std::string::npos);
}

TEST(Tensors, TheGenericPyTorchVariableIsMergedWhenItIsTheOneSet) {
  const TensorsRun t = run_tensors("PYTORCH_ALLOC_CONF=roundup_power2_divisions:4");
  EXPECT_NE(t.env_line.find("PT= PG=roundup_power2_divisions:4,backend:cudaMallocAsync "),
            std::string::npos)
      << t.env_line;
}

TEST(Tensors, ACacheLeftInTheWayIsKeptSaidAndReported) {
  const TensorsRun t = run_tensors("PYTORCH_CUDA_ALLOC_CONF=backend:native TF_GPU_ALLOCATOR=bfc");
  EXPECT_NE(t.env_line.find("PT=backend:native PG= TF=bfc X=cuda_async P=false T=on; in the way: "
                            "PyTorch: PYTORCH_CUDA_ALLOC_CONF=backend:native keeps the caching "
                            "allocator; TensorFlow: TF_GPU_ALLOCATOR=bfc keeps the BFC allocator"),
            std::string::npos)
      << t.env_line;
  EXPECT_NE(t.err.find("left as you set it"), std::string::npos) << t.err;

  // The same run writing a trace: the report carries what stood in the way.
  gpumem::test::ScratchDir dir("gpumem-attribution");
  ASSERT_TRUE(dir.ok());
  auto run =
      gpumem::test::sh("env -u TF_GPU_ALLOCATOR PYTORCH_CUDA_ALLOC_CONF=backend:native " GPUMEM_CLI
                       " run --device sim --tensors --trace " +
                       (dir / "t.trace") + " -- " RELIABILITY_WORKLOAD " one");
  ASSERT_EQ(run.status, 0) << run.out;
  auto text =
      gpumem::test::sh(std::string(GPUMEM_CLI) + " report " + (dir / "t.trace") + " --text");
  EXPECT_NE(text.out.find("  tensor capture (--tensors): on; in the way: PyTorch: "
                          "PYTORCH_CUDA_ALLOC_CONF=backend:native keeps the caching allocator\n"),
            std::string::npos)
      << text.out;
  const json r = report_of(dir);
  EXPECT_EQ(r["traces"][0]["tensor_capture"],
            "on; in the way: PyTorch: PYTORCH_CUDA_ALLOC_CONF=backend:native keeps the caching "
            "allocator");
  EXPECT_TRUE(r["traces"][0]["python_frames"].is_null());
}

// --stacks takes its mode only as --stacks=MODE, so neither "--" nor the command's own dashed
// arguments are ever taken for a mode.
TEST(StacksOption, ModesReachThePreloadAndDashedArgumentsReachTheProgram) {
  for (const auto& [option, expected] :
       std::vector<std::pair<std::string, std::string>>{{"--stacks", "1"},
                                                        {"--stacks=native", "1"},
                                                        {"--stacks=python", "python"},
                                                        {"--stacks=mixed", "mixed"}}) {
    auto r = gpumem::test::sh(
        std::string(GPUMEM_CLI) + " run " + option +
        " --trace off -- sh -c 'printf \"S=%s %s\\n\" \"$GPUMEM_STACKS\" \"$1\"' sh -n");
    EXPECT_EQ(r.status, 0) << option << ": " << r.out;
    EXPECT_NE(r.out.find("S=" + expected + " -n\n"), std::string::npos) << option << ": " << r.out;
  }
  auto bad = gpumem::test::sh(std::string(GPUMEM_CLI) + " run --stacks=bogus -- true");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("bogus not in {native,python,mixed}"), std::string::npos) << bad.out;
}
