// gpumem-train as a user runs it, on the simulated device (ctest puts simcuda first on
// LD_LIBRARY_PATH): exit codes, per-epoch lines, and the final JSON line.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace {

struct Result {
  int exit_code = -1;
  std::string out;        // stdout and stderr together
  nlohmann::json report;  // the last line starting with '{'
};

Result run(const std::string& args, const std::string& env = "") {
  const std::string command = env + " " GPUMEM_TRAIN_EXE " " + args + " 2>&1";
  Result r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  while (fgets(buf, sizeof buf, pipe) != nullptr) {
    r.out += buf;
    if (buf[0] == '{') r.report = nlohmann::json::parse(buf, nullptr, false);
  }
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

uint64_t bytes(const nlohmann::json& report, const char* category) {
  return report.at("bytes_by_category").at(category).get<uint64_t>();
}

}  // namespace

TEST(Run, Learns) {
  const Result r = run("--backend auto");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "epoch 1/5: loss ")) << r.out;
  EXPECT_TRUE(contains(r.out, "epoch 5/5: loss ")) << r.out;
  ASSERT_TRUE(r.report.is_object()) << r.out;
  const auto& j = r.report;
  EXPECT_EQ(j["settings"]["backend"], "host");  // auto picks host on the simulated device
  EXPECT_EQ(j["parameter_count"], 7114);
  EXPECT_EQ(j["optimizer_steps"], 5 * 64);
  EXPECT_LT(j["final_loss"].get<double>(), 0.7 * j["first_epoch_loss"].get<double>());
  EXPECT_GT(j["final_accuracy"].get<double>(), 0.6);  // chance: 0.1
}

TEST(Run, Formulas) {
  // docs/trainer.md, worked example: the default model, every buffer allocated once.
  const Result base = run("--epochs 1 --alloc static");
  ASSERT_EQ(base.exit_code, 0) << base.out;
  const auto& j = base.report;
  EXPECT_EQ(bytes(j, "parameters_fp32_master"), 28456u);
  EXPECT_EQ(bytes(j, "gradients"), 28456u);
  EXPECT_EQ(bytes(j, "gradient_accumulator"), 0u);
  EXPECT_EQ(bytes(j, "optimizer_state_adam_m_v"), 56912u);
  EXPECT_EQ(bytes(j, "activations_and_their_gradients"), 18944u);
  EXPECT_EQ(bytes(j, "data_inputs_and_labels"), 827392u);
  EXPECT_EQ(bytes(j, "loss_metrics"), 16u);
  EXPECT_EQ(j["trainer_peak_allocated_bytes"], 960176u);
  EXPECT_EQ(j["trainer_allocation_count"], 23u);
  EXPECT_EQ(j["trainer_free_count"], 0u);  // until the end

  const Result batch64 = run("--epochs 1 --batch 64");
  ASSERT_EQ(batch64.exit_code, 0) << batch64.out;
  EXPECT_EQ(bytes(batch64.report, "activations_and_their_gradients"), 2u * 18944);
  EXPECT_EQ(batch64.report["trainer_peak_allocated_bytes"], 960176u + 18944);

  const Result accum = run("--epochs 1 --accum 8");
  ASSERT_EQ(accum.exit_code, 0) << accum.out;
  EXPECT_EQ(bytes(accum.report, "gradient_accumulator"), 28456u);
  EXPECT_EQ(accum.report["trainer_peak_allocated_bytes"], 960176u + 28456);
  EXPECT_EQ(accum.report["optimizer_steps"], 8);  // 2048 / (32 x 8)
}

TEST(Run, StreamFp16Async) {
  const Result r = run("--epochs 3 --data stream --dtype fp16 --accum 2 --async");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const auto& j = r.report;
  EXPECT_EQ(j["settings"]["dtype"], "fp16");
  EXPECT_EQ(j["settings"]["async"], true);
  EXPECT_EQ(bytes(j, "data_inputs_and_labels"), 32u * 404);
  EXPECT_EQ(bytes(j, "activations_and_their_gradients"), 18944u / 2);
  EXPECT_EQ(bytes(j, "gradients"), 28456u / 2);
  EXPECT_EQ(bytes(j, "gradient_accumulator"), 28456u);
  EXPECT_EQ(j["trainer_peak_allocated_bytes"], 28456u + 14228 + 28456 + 56912 + 9472 + 12928 + 16);
  EXPECT_GT(j["final_accuracy"].get<double>(), 0.3);  // 3 x chance after 96 steps
  EXPECT_LT(j["final_loss"].get<double>(), j["first_epoch_loss"].get<double>());
}

TEST(Run, OutOfMemory) {
  // simcuda's smallest device; the dataset (8192 x 404 bytes) does not fit in it.
  const Result r = run("--epochs 1 --samples 8192", "SIMCUDA_MEMORY=2MiB");
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_TRUE(contains(r.out, "out of device memory allocating 'dataset.inputs'")) << r.out;
  EXPECT_TRUE(contains(r.out, "3.12 MiB (3276800 bytes) requested")) << r.out;
  EXPECT_TRUE(contains(r.out, "device capacity 2.00 MiB (2097152 bytes)")) << r.out;
  EXPECT_TRUE(contains(r.out, "--data stream            needs 142.30 KiB (145712 bytes): fits"))
      << r.out;
  EXPECT_FALSE(contains(r.out, "\n{")) << r.out;  // no report after a failure

  // The suggested setting does fit.
  const Result fixed = run("--epochs 1 --samples 8192 --data stream", "SIMCUDA_MEMORY=2MiB");
  EXPECT_EQ(fixed.exit_code, 0) << fixed.out;
}

TEST(Run, BadSettings) {
  struct Case {
    const char* args;
    int code;
    const char* message;
  } cases[] = {
      {"--batch 0", 2, "--batch must be at least 1"},
      {"--accum 0", 2, "--accum must be at least 1"},
      {"--batch 5000", 2, "--batch 5000 is larger than --samples 2048"},
      {"--dtype bf16", 2, "unknown --dtype 'bf16': use fp32 or fp16"},
      {"--data disk", 2, "unknown --data 'disk'"},
      {"--backend cuda", 2,
       "--backend cuda launches kernels, which the simulated device cannot run"},
      {"--nope", 2, "--nope"},
      {"--alloc lazy", 2, "unknown --alloc 'lazy': use eager or static"},
      {"--seq-lengths 4,0", 2, "bad --seq-lengths '4,0'"},
      {"--seq-lengths 9:3", 2, "low before high"},
      {"--seq-lengths 100", 2, "longest sequence 100 = 3200 rows per optimizer step"},
  };
  for (const Case& c : cases) {
    const Result r = run(c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.out;
    EXPECT_TRUE(contains(r.out, c.message)) << c.args << "\n" << r.out;
  }
}

namespace {

std::string shell(const std::string& command, int* status) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return out;
  char buf[4096];
  while (fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  const int s = pclose(pipe);
  *status = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
  return out;
}

// The trainer under the preload (gpumem run --device sim): its JSON line, the trace's report, and
// the sizes of the trace's allocations in order.
struct Traced {
  Result train;
  nlohmann::json device;       // gpumem report --json: devices[0]
  std::vector<uint64_t> sizes;  // every alloc record's bytes
};

Traced traced(const std::string& name, const std::string& args) {
  const std::string trace = ::testing::TempDir() + "trainer-" + name + ".trace";
  std::remove(trace.c_str());
  Traced t;
  // run() puts its second argument before the trainer: here, gpumem run.
  t.train = run(args, std::string(GPUMEM_CLI) + " run --device sim --trace " + trace + " --");
  int status = -1;
  const std::string report = shell(std::string(GPUMEM_CLI) + " report --json - " + trace, &status);
  EXPECT_EQ(status, 0) << report;
  const auto j = nlohmann::json::parse(report, nullptr, false);
  if (j.is_object() && j.contains("devices") && !j["devices"].empty()) t.device = j["devices"][0];
  const std::string dump = shell(std::string(GPUMEM_CLI) + " dump " + trace, &status);
  size_t at = 0;
  while ((at = dump.find("\"op\":\"alloc\"", at)) != std::string::npos) {
    const size_t b = dump.find("\"bytes\":", at) + 8;
    t.sizes.push_back(std::stoull(dump.substr(b)));
    at = b;
  }
  std::remove(trace.c_str());
  return t;
}

uint64_t peak_allocated(const Traced& t) {
  return t.device.is_object() ? t.device["peak"]["allocated_bytes"].get<uint64_t>() : 0;
}

}  // namespace

// docs/trainer.md, "Peak": the trace's peak equals the formula to the byte, in both modes. The demo's
// model shape (two hidden layers), small: widths 100, 64, 64, 10, batch 32, resident data:
// fixed 4P + 4P + 8P + 16 + data 256 x 404 = 16 x 11,274 + 16 + 103,424 = 283,824;
// static activations 2 x 4 x 32 x 138 = 35,328; eager: max(64+64, 128+64+64, 138+10+64) = 256
// units: 4 x 32 x 256 = 32,768.
TEST(Run, TracePeakEqualsTheFormula) {
  const std::string model = "--epochs 1 --samples 256 --layers 2 ";
  const Traced fixed = traced("static", model + "--alloc static");
  ASSERT_EQ(fixed.train.exit_code, 0) << fixed.train.out;
  EXPECT_EQ(peak_allocated(fixed), 283824u + 35328);
  EXPECT_EQ(fixed.train.report["trainer_peak_allocated_bytes"], 283824u + 35328);
  // 3 layers x (w, b, 2 grads, 4 Adam) + 2 data + metrics = 27 for the run; static adds the
  // 3 outputs and 3 output gradients once, eager adds them per step.
  EXPECT_EQ(fixed.device["counts"]["alloc"], 27u + 6);
  const Traced eager = traced("eager", model + "--alloc eager");
  ASSERT_EQ(eager.train.exit_code, 0) << eager.train.out;
  EXPECT_EQ(peak_allocated(eager), 283824u + 32768);
  EXPECT_EQ(eager.train.report["trainer_peak_allocated_bytes"], 283824u + 32768);
  // 8 steps; per step each of the 3 layers allocates its output and output gradient once.
  EXPECT_EQ(eager.device["counts"]["alloc"], 27u + 8 * 6);
  EXPECT_EQ(eager.device["counts"]["free"], 27u + 8 * 6);
  EXPECT_EQ(eager.train.report["final_loss"], fixed.train.report["final_loss"]);
}

// --seq-lengths 1,3,2 with streamed data: each step allocates its own sizes, so the trace holds
// the output of dense1 (4 x 64 x rows) at 32, 96 and 64 rows.
TEST(Run, SequenceLengthsGiveDistinctSizes) {
  const Traced t = traced("seq", "--epochs 1 --samples 384 --data stream --seq-lengths 1,3,2");
  ASSERT_EQ(t.train.exit_code, 0) << t.train.out;
  EXPECT_EQ(t.train.report["settings"]["seq_lengths"], "1,3,2");
  EXPECT_EQ(t.train.report["steps_run"], 6u);  // 32 + 96 + 64 twice = 384 rows
  std::set<uint64_t> sizes(t.sizes.begin(), t.sizes.end());
  for (uint64_t rows : {32u, 96u, 64u}) {
    EXPECT_EQ(sizes.count(4 * 64 * rows), 1u) << rows;        // dense1.output
    EXPECT_EQ(sizes.count(4 * 100 * rows), 1u) << rows;       // batch.inputs
  }
  EXPECT_EQ(peak_allocated(t), t.train.report["trainer_peak_allocated_bytes"].get<uint64_t>());
}
