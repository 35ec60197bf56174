#include "options.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>

namespace gpumem::train {

const char* to_string(DType t) {
  return t == DType::fp32 ? "fp32" : "fp16";
}
const char* to_string(DataMode m) {
  return m == DataMode::resident ? "resident" : "stream";
}
const char* to_string(BackendKind b) {
  switch (b) {
    case BackendKind::host:
      return "host";
    case BackendKind::cuda:
      return "cuda";
    case BackendKind::auto_pick:
      break;
  }
  return "auto";
}

const char* to_string(AllocMode a) {
  return a == AllocMode::eager ? "eager" : "static";
}

size_t seq_length_of_step(const TrainOptions& o, size_t step_index) {
  if (o.seq_range_lo > 0) {
    // A fixed hash of (seed, step), so the lengths do not depend on what else drew numbers.
    uint64_t h = o.seed * 0x9e3779b97f4a7c15ULL + step_index + 1;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return o.seq_range_lo + h % (o.seq_range_hi - o.seq_range_lo + 1);
  }
  if (o.seq_lengths.empty()) return 1;
  return o.seq_lengths[step_index % o.seq_lengths.size()];
}

size_t max_seq_length(const TrainOptions& o) {
  if (o.seq_range_lo > 0) return o.seq_range_hi;
  size_t most = 1;
  for (size_t t : o.seq_lengths) most = std::max(most, t);
  return most;
}

std::string seq_lengths_text(const TrainOptions& o) {
  if (o.seq_range_lo > 0) return fmt::format("{}:{}", o.seq_range_lo, o.seq_range_hi);
  return fmt::format("{}", fmt::join(o.seq_lengths, ","));
}

namespace {

// "64,128,96" (cycled) or "32:128" (drawn per step); every length at least 1.
std::string parse_seq_lengths(const std::string& text, TrainOptions& o) {
  const std::string usage =
      "use a comma-separated list of token counts such as 64,128,96 (cycled step by step) or a "
      "range such as 32:128 (drawn per step from --seed)";
  auto number = [&](const std::string& part, size_t* out) {
    if (part.empty() || part.size() > 9 ||
        part.find_first_not_of("0123456789") != std::string::npos)
      return false;
    *out = std::stoul(part);
    return *out >= 1;
  };
  if (const size_t colon = text.find(':'); colon != std::string::npos) {
    if (!number(text.substr(0, colon), &o.seq_range_lo) ||
        !number(text.substr(colon + 1), &o.seq_range_hi) || o.seq_range_lo > o.seq_range_hi)
      return fmt::format("bad --seq-lengths '{}': {} (lengths from 1 up, low before high)", text,
                         usage);
    return {};
  }
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    size_t t = 0;
    if (!number(text.substr(start, comma - start), &t))
      return fmt::format("bad --seq-lengths '{}': {} (each at least 1)", text, usage);
    o.seq_lengths.push_back(t);
    if (comma == std::string::npos) return {};
    start = comma + 1;
  }
}

}  // namespace

std::vector<size_t> layer_widths(const TrainOptions& o) {
  std::vector<size_t> widths{o.inputs};
  for (size_t i = 0; i < o.layers; ++i) widths.push_back(o.hidden);
  widths.push_back(o.classes);
  return widths;
}

std::string validate(const TrainOptions& o) {
  // Sizes beyond this make byte counts meaningless long before any device could hold them.
  constexpr double too_big = 1e15;
  if (o.batch == 0) return "--batch must be at least 1 (it is the micro-batch size in samples)";
  if (o.accum == 0) return "--accum must be at least 1 (1 means no gradient accumulation)";
  if (o.samples == 0) return "--samples must be at least 1";
  if (o.inputs == 0) return "--inputs must be at least 1";
  if (o.classes < 2) return "--classes must be at least 2 for a classification task";
  if (o.layers > 0 && o.hidden == 0) return "--hidden must be at least 1 (or use --layers 0)";
  if (o.epochs == 0) return "--epochs must be at least 1";
  if (o.layers > 1000) return "--layers must be at most 1000";
  if (!(o.lr > 0) || !std::isfinite(o.lr)) return "--lr must be a positive number, e.g. 0.001";
  if (!(o.loss_scale >= 1) || !std::isfinite(o.loss_scale) || o.loss_scale > 65536)
    return "--loss-scale must be between 1 and 65536 (a power of two such as 1024 is usual)";
  if (static_cast<double>(o.samples) * static_cast<double>(o.inputs) > too_big ||
      static_cast<double>(o.batch) * static_cast<double>(std::max(o.hidden, o.inputs)) > too_big ||
      static_cast<double>(o.hidden) * static_cast<double>(o.hidden) > too_big ||
      static_cast<double>(o.batch) * static_cast<double>(o.accum) > too_big)
    return "the sizes are too large to count in bytes; use smaller --samples, --inputs, --hidden "
           "or --batch";
  if (o.batch > o.samples)
    return fmt::format(
        "--batch {} is larger than --samples {}: use a batch of at most {} or more "
        "samples",
        o.batch, o.samples, o.samples);
  if (static_cast<double>(o.batch) * static_cast<double>(o.accum) *
          static_cast<double>(max_seq_length(o)) >
      too_big)
    return "the sizes are too large to count in bytes; use shorter --seq-lengths or a smaller "
           "--batch";
  if (max_seq_length(o) > 1 && o.batch * o.accum * max_seq_length(o) > o.samples)
    return fmt::format(
        "--batch {} x --accum {} x the longest sequence {} = {} rows per optimizer step, more "
        "than --samples {}: use shorter --seq-lengths, a smaller --batch or more samples",
        o.batch, o.accum, max_seq_length(o), o.batch * o.accum * max_seq_length(o), o.samples);
  if (o.batch * o.accum > o.samples)
    return fmt::format(
        "--batch {} x --accum {} = {} samples per optimizer step, more than "
        "--samples {}: lower --accum to at most {} or use more samples",
        o.batch, o.accum, o.batch * o.accum, o.samples, o.samples / o.batch);
  return {};
}

ParsedArgs parse_args(int argc, const char* const* argv) {
  ParsedArgs out;
  TrainOptions& o = out.options;
  std::string data = "resident", dtype = "fp32", backend = "auto", alloc = "eager", seq;
  // Signed on purpose, so "--batch -1" is reported as a bad batch rather than a wrapped size.
  long long batch = 32, accum = 1, samples = 2048, epochs = 5, inputs = 100, layers = 1,
            hidden = 64, classes = 10;

  CLI::App app{
      "gpumem-train: a small MLP trainer whose device memory is set by batch size, "
      "gradient accumulation, data residency and precision."};
  app.option_defaults()->always_capture_default();
  app.add_option("--batch", batch, "micro-batch size in samples");
  app.add_option("--accum", accum, "micro-batches per optimizer step (gradient accumulation)");
  app.add_option("--data", data,
                 "resident: whole dataset on the device; stream: one staging "
                 "buffer per micro-batch");
  app.add_option("--dtype", dtype,
                 "fp32, or fp16 (fp16 activations and gradients, fp32 master "
                 "weights, dynamic loss scaling)");
  app.add_option("--epochs", epochs, "passes over the dataset");
  app.add_option("--samples", samples, "synthetic samples");
  app.add_option("--seed", o.seed, "seed for data, teacher and initial weights");
  app.add_option("--inputs", inputs, "input features");
  app.add_option("--layers", layers, "hidden layers");
  app.add_option("--hidden", hidden, "width of each hidden layer");
  app.add_option("--classes", classes, "output classes");
  app.add_option("--lr", o.lr, "Adam learning rate");
  app.add_option("--loss-scale", o.loss_scale, "initial loss scale for --dtype fp16");
  app.add_flag("--async", o.async_alloc, "allocate with cudaMallocAsync/cudaFreeAsync");
  app.add_option("--backend", backend,
                 "host (C++ loops; simulated device), cuda (kernels; real "
                 "GPU) or auto");
  app.add_option("--alloc", alloc,
                 "eager: activations allocated in forward and freed in backward, per-step "
                 "temporaries (as PyTorch); static: every buffer once before training");
  app.add_option("--seq-lengths", seq,
                 "tokens per sample, varying by step: a list cycled in order (64,128,96) or a "
                 "range drawn per step (32:128); a micro-batch is batch x length rows");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out.exit_code = exit_ok;
    out.message = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    out.exit_code = exit_bad_settings;
    out.message =
        fmt::format("gpumem-train: {}\nRun gpumem-train --help for the settings.", e.what());
    return out;
  }

  auto bad = [&](std::string why) {
    out.exit_code = exit_bad_settings;
    out.message = "gpumem-train: " + why;
    return out;
  };
  struct Count {
    const char* name;
    long long value;
    size_t* into;
  } counts[] = {{"--batch", batch, &o.batch},       {"--accum", accum, &o.accum},
                {"--samples", samples, &o.samples}, {"--epochs", epochs, &o.epochs},
                {"--inputs", inputs, &o.inputs},    {"--layers", layers, &o.layers},
                {"--hidden", hidden, &o.hidden},    {"--classes", classes, &o.classes}};
  for (const Count& c : counts) {
    if (c.value < 0) return bad(fmt::format("{} must not be negative (got {})", c.name, c.value));
    *c.into = static_cast<size_t>(c.value);
  }

  if (data == "resident")
    o.data = DataMode::resident;
  else if (data == "stream")
    o.data = DataMode::stream;
  else
    return bad(fmt::format("unknown --data '{}': use resident or stream", data));
  if (dtype == "fp32")
    o.dtype = DType::fp32;
  else if (dtype == "fp16")
    o.dtype = DType::fp16;
  else
    return bad(fmt::format("unknown --dtype '{}': use fp32 or fp16", dtype));
  if (backend == "auto")
    o.backend = BackendKind::auto_pick;
  else if (backend == "host")
    o.backend = BackendKind::host;
  else if (backend == "cuda")
    o.backend = BackendKind::cuda;
  else
    return bad(fmt::format("unknown --backend '{}': use host, cuda or auto", backend));

  if (alloc == "eager")
    o.alloc = AllocMode::eager;
  else if (alloc == "static")
    o.alloc = AllocMode::static_once;
  else
    return bad(fmt::format("unknown --alloc '{}': use eager or static", alloc));
  if (!seq.empty())
    if (std::string why = parse_seq_lengths(seq, o); !why.empty()) return bad(why);

  if (std::string why = validate(o); !why.empty()) return bad(why);
  return out;
}

}  // namespace gpumem::train
