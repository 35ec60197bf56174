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

TEST(Options, AllocAndSequenceLengths) {
  EXPECT_EQ(parse({}).options.alloc, AllocMode::eager);  // what PyTorch users run
  EXPECT_EQ(parse({}).options.seq_lengths.size(), 0u);
  EXPECT_EQ(max_seq_length(parse({}).options), 1u);
  EXPECT_EQ(parse({"--alloc", "static"}).options.alloc, AllocMode::static_once);

  const ParsedArgs list = parse({"--seq-lengths", "4,1,2"});
  ASSERT_FALSE(list.exit_code) << list.message;
  EXPECT_EQ(list.options.seq_lengths, (std::vector<size_t>{4, 1, 2}));
  EXPECT_EQ(max_seq_length(list.options), 4u);
  EXPECT_EQ(seq_length_of_step(list.options, 0), 4u);
  EXPECT_EQ(seq_length_of_step(list.options, 5), 2u);
  EXPECT_EQ(seq_lengths_text(list.options), "4,1,2");

  const ParsedArgs range = parse({"--seq-lengths", "2:5", "--seed", "3"});
  ASSERT_FALSE(range.exit_code) << range.message;
  EXPECT_EQ(max_seq_length(range.options), 5u);
  EXPECT_EQ(seq_lengths_text(range.options), "2:5");
  bool seen[6] = {};
  for (size_t step = 0; step < 400; ++step) {
    const size_t t = seq_length_of_step(range.options, step);
    ASSERT_GE(t, 2u);
    ASSERT_LE(t, 5u);
    seen[t] = true;
    EXPECT_EQ(t, seq_length_of_step(range.options, step));  // the same step, the same length
  }
  EXPECT_TRUE(seen[2] && seen[3] && seen[4] && seen[5]);

  for (const char* bad : {"", "0", "3,", ",3", "a", "5:2", "0:4", "1:", "1:2:3", "1234567890"}) {
    const ParsedArgs p = parse({"--seq-lengths", bad});
    if (std::string(bad).empty()) continue;  // empty means none, like leaving it out
    ASSERT_TRUE(p.exit_code) << bad;
    EXPECT_EQ(*p.exit_code, exit_bad_settings) << bad;
    EXPECT_NE(p.message.find("--seq-lengths"), std::string::npos) << p.message;
  }
  const ParsedArgs bad_alloc = parse({"--alloc", "lazy"});
  ASSERT_TRUE(bad_alloc.exit_code);
  EXPECT_NE(bad_alloc.message.find("use eager or static"), std::string::npos);
}
