#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "options.h"

using namespace gpumem::train;

namespace {
ParsedArgs parse(std::initializer_list<const char*> args) {
  std::vector<const char*> argv{"gpumem-train"};
  argv.insert(argv.end(), args);
  return parse_args(static_cast<int>(argv.size()), argv.data());
}
}  // namespace

TEST(Options, DefaultsAreTheKerasExample) {
  ParsedArgs p = parse({});
  ASSERT_FALSE(p.exit_code) << p.message;
  const TrainOptions& o = p.options;
  EXPECT_EQ(o.inputs, 100u);
  EXPECT_EQ(o.layers, 1u);
  EXPECT_EQ(o.hidden, 64u);
  EXPECT_EQ(o.classes, 10u);
  EXPECT_EQ(o.batch, 32u);
  EXPECT_EQ(o.accum, 1u);
  EXPECT_EQ(o.data, DataMode::resident);
  EXPECT_EQ(o.dtype, DType::fp32);
  EXPECT_EQ(o.backend, BackendKind::auto_pick);
  EXPECT_DOUBLE_EQ(o.lr, 1e-3);
  EXPECT_FALSE(o.async_alloc);
}

TEST(Options, ParsesEverySetting) {
  ParsedArgs p =
      parse({"--batch",  "16",       "--accum",  "4",         "--data",    "stream", "--dtype",
             "fp16",     "--epochs", "2",        "--samples", "512",       "--seed", "7",
             "--inputs", "20",       "--layers", "2",         "--hidden",  "8",      "--classes",
             "3",        "--lr",     "0.01",     "--async",   "--backend", "host"});
  ASSERT_FALSE(p.exit_code) << p.message;
  const TrainOptions& o = p.options;
  EXPECT_EQ(o.batch, 16u);
  EXPECT_EQ(o.accum, 4u);
  EXPECT_EQ(o.data, DataMode::stream);
  EXPECT_EQ(o.dtype, DType::fp16);
  EXPECT_EQ(o.epochs, 2u);
  EXPECT_EQ(o.samples, 512u);
  EXPECT_EQ(o.seed, 7u);
  EXPECT_EQ(layer_widths(o), (std::vector<size_t>{20, 8, 8, 3}));
  EXPECT_DOUBLE_EQ(o.lr, 0.01);
  EXPECT_TRUE(o.async_alloc);
  EXPECT_EQ(o.backend, BackendKind::host);
}

struct BadCase {
  std::vector<const char*> args;
  std::string message;
};

TEST(Options, BadSettingsSayWhatToDo) {
  const BadCase cases[] = {
      {{"--batch", "0"}, "--batch must be at least 1"},
      {{"--accum", "0"}, "--accum must be at least 1"},
      {{"--batch", "-3"}, "--batch must not be negative (got -3)"},
      {{"--batch", "4096"},
       "--batch 4096 is larger than --samples 2048: use a batch of at most 2048"},
      {{"--batch", "64", "--accum", "64"},
       "--batch 64 x --accum 64 = 4096 samples per optimizer step, more than --samples 2048: "
       "lower --accum to at most 32"},
      {{"--dtype", "fp64"}, "unknown --dtype 'fp64': use fp32 or fp16"},
      {{"--data", "disk"}, "unknown --data 'disk': use resident or stream"},
      {{"--backend", "tpu"}, "unknown --backend 'tpu': use host, cuda or auto"},
      {{"--classes", "1"}, "--classes must be at least 2"},
      {{"--epochs", "0"}, "--epochs must be at least 1"},
      {{"--lr", "0"}, "--lr must be a positive number"},
      {{"--batch", "abc"}, "--batch"},
      {{"--frobnicate"}, "frobnicate"},
  };
  for (const BadCase& c : cases) {
    std::vector<const char*> argv{"gpumem-train"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    ParsedArgs p = parse_args(static_cast<int>(argv.size()), argv.data());
    ASSERT_TRUE(p.exit_code) << c.message;
    EXPECT_EQ(*p.exit_code, exit_bad_settings) << c.message;
    EXPECT_NE(p.message.find(c.message), std::string::npos) << p.message;
  }
}

TEST(Options, HelpExitsZero) {
  ParsedArgs p = parse({"--help"});
  ASSERT_TRUE(p.exit_code);
  EXPECT_EQ(*p.exit_code, 0);
  EXPECT_NE(p.message.find("--accum"), std::string::npos);
}
