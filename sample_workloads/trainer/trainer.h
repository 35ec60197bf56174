// The training loop: allocates the run's buffers (named, by category), then runs epochs of
// optimizer steps, each of `accum` micro-batches, marking phases for gpumem. Static allocates
// every buffer up front; eager allocates activations and per-step buffers as it goes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend.h"
#include "dataset.h"
#include "device_memory.h"
#include "options.h"

namespace gpumem::train {

struct EpochResult {
  double loss = 0;      // mean cross-entropy over the epoch's trained samples
  double accuracy = 0;  // fraction of them classified right (before each step's update)
  size_t samples = 0;
};

class Trainer {
 public:
  // Allocates the run's device buffers (may throw OutOfDeviceMemory) and copies the initial weights
  // (and, when resident, the dataset) to the device.
  Trainer(const TrainOptions& options, const Dataset& data, DeviceMemory& memory, Backend& backend);

  EpochResult train_epoch();

  // One micro-batch of `rows` samples (default: batch) starting at `first_sample`: forward, loss,
  // backward into the gradient buffers. Returns the micro-batch's mean loss.
  double forward_backward(size_t first_sample);
  double forward_backward(size_t first_sample, size_t rows);
  // Zeroes the loss sum and correct count (train_epoch does this at the start of each epoch).
  void reset_metrics();
  // Accumulates the current gradients (as train_epoch does for micro-batch `index` of a step).
  void accumulate_gradients(size_t index);
  // Applies one Adam step from the accumulator (accum > 1) or the gradients.
  void optimizer_step();

  // Host copies of every parameter (layer by layer: weight then bias) and of the gradient that the
  // optimizer would use next (unscaled, as fp32).
  std::vector<float> parameters();
  void set_parameters(const std::vector<float>& values);
  std::vector<float> optimizer_gradient();

  size_t optimizer_steps() const { return steps_; }
  // Steps run, applied or skipped (the step index of --seq-lengths).
  size_t steps_run() const { return step_index_; }
  size_t skipped_steps() const { return skipped_steps_; }
  double loss_scale() const { return loss_scale_; }

 private:
  struct Layer {
    size_t in_dim, out_dim;
    float* w;
    float* b;
    void* dw;
    void* db;
    float* acc_w = nullptr;
    float* acc_b = nullptr;
    float *m_w, *v_w, *m_b, *v_b;
    void* out;       // post-activation output (probabilities for the last layer)
    void* out_grad;  // gradient of the loss w.r.t. the pre-activation output
  };

  void allocate_layers();
  void initialise_weights();
  bool eager() const { return o_.alloc == AllocMode::eager; }
  // Points batch_x_/batch_y_ at a micro-batch (copying it in when streaming); drop_batch frees
  // what load_batch allocated.
  void load_batch(size_t first_sample, size_t rows);
  void drop_batch();
  void read_metrics(float out[4]);

  TrainOptions o_;
  const Dataset& data_;
  DeviceMemory& mem_;
  Backend& backend_;
  DType act_;
  std::vector<Layer> layers_;
  float* data_x_ = nullptr;  // the whole dataset, or the staging buffer when streaming
  int32_t* data_y_ = nullptr;
  const float* batch_x_ = nullptr;  // the current micro-batch
  const int32_t* batch_y_ = nullptr;
  size_t step_index_ = 0;  // steps run over the whole run
  float* metrics_ = nullptr;
  size_t steps_ = 0;          // applied Adam steps (t)
  size_t skipped_steps_ = 0;  // fp16 steps skipped for non-finite gradients
  double loss_scale_ = 1;
  size_t good_steps_ = 0;
};

}  // namespace gpumem::train
