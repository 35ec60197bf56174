// gpumem-train's settings: what each one is, its default, and the checks that reject bad ones
// with a message saying what to do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gpumem::train {

enum class DType { fp32, fp16 };
enum class DataMode { resident, stream };
enum class BackendKind { auto_pick, host, cuda };
// eager: activations live from their forward to their backward, per-step buffers come and go (as
// in PyTorch); static: every buffer allocated once before training (as a static graph).
enum class AllocMode { eager, static_once };

inline size_t dtype_bytes(DType t) {
  return t == DType::fp32 ? 4 : 2;
}
const char* to_string(DType t);
const char* to_string(DataMode m);
const char* to_string(BackendKind b);
const char* to_string(AllocMode a);

struct TrainOptions {
  size_t inputs = 100;
  size_t layers = 1;  // hidden layers, each `hidden` wide, each followed by ReLU
  size_t hidden = 64;
  size_t classes = 10;
  size_t samples = 2048;
  uint64_t seed = 1;
  size_t batch = 32;  // the micro-batch
  size_t accum = 1;   // micro-batches per optimizer step
  size_t epochs = 5;
  DataMode data = DataMode::resident;
  DType dtype = DType::fp32;
  bool async_alloc = false;
  BackendKind backend = BackendKind::auto_pick;
  double lr = 1e-3;
  double loss_scale = 1024;  // initial dynamic loss scale, fp16 only
  AllocMode alloc = AllocMode::eager;
  // Tokens per sample, step by step: a micro-batch is batch x T rows. Empty: T = 1 for every step.
  // A list is cycled in order; a range (seq_range_lo > 0) is drawn per step from the seed.
  std::vector<size_t> seq_lengths;
  size_t seq_range_lo = 0, seq_range_hi = 0;
};

// T for the step with this index (counted over the whole run), and the largest T any step has.
size_t seq_length_of_step(const TrainOptions& o, size_t step_index);
size_t max_seq_length(const TrainOptions& o);
// The --seq-lengths text as given ("64,128,96" or "32:128"); empty when T = 1.
std::string seq_lengths_text(const TrainOptions& o);

// Layer widths: inputs, hidden..., classes.
std::vector<size_t> layer_widths(const TrainOptions& o);

// Returns an empty string when the settings are usable, otherwise what is wrong and what to do.
std::string validate(const TrainOptions& o);

// The result of reading the command line: options, or an exit request (help, or an error message).
struct ParsedArgs {
  TrainOptions options;
  std::optional<int> exit_code;  // set: print `message` and exit with it
  std::string message;
};
ParsedArgs parse_args(int argc, const char* const* argv);

// Exit codes, documented in docs/trainer.md.
inline constexpr int exit_ok = 0;
inline constexpr int exit_bad_settings = 2;
inline constexpr int exit_out_of_memory = 3;
inline constexpr int exit_cuda_error = 4;

}  // namespace gpumem::train
