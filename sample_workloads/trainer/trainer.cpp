#include "trainer.h"

#include <fmt/format.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "gpumem/gpumem.h"
#include "half.h"

namespace gpumem::train {
namespace {

// Dynamic loss scaling (fp16): halve on overflow, double after this many clean steps.
constexpr size_t growth_interval = 2000;
constexpr double max_loss_scale = 65536;

// Ends a gpumem phase on scope exit, so every early return or exception closes it.
struct Phase {
  explicit Phase(const char* name) { GPUMEM_MARK_BEGIN(name); }
  ~Phase() { GPUMEM_MARK_END(); }
  Phase(const Phase&) = delete;
  Phase& operator=(const Phase&) = delete;
};

}  // namespace

Trainer::Trainer(const TrainOptions& options, const Dataset& data, DeviceMemory& memory,
                 Backend& backend)
    : o_(options),
      data_(data),
      mem_(memory),
      backend_(backend),
      act_(options.dtype),
      loss_scale_(options.dtype == DType::fp16 ? options.loss_scale : 1.0) {
  allocate_layers();
  initialise_weights();
}

void Trainer::allocate_layers() {
  const auto widths = layer_widths(o_);
  const size_t act_bytes = dtype_bytes(act_);
  const uint64_t row_bytes = 4 * o_.inputs;
  // Order: parameters and optimizer state first (fixed), data, then per-batch buffers.
  for (size_t l = 0; l + 1 < widths.size(); ++l) {
    Layer layer{};
    layer.in_dim = widths[l];
    layer.out_dim = widths[l + 1];
    const uint64_t nw = layer.in_dim * layer.out_dim, nb = layer.out_dim;
    const std::string n = fmt::format("dense{}", l + 1);
    layer.w = static_cast<float*>(mem_.allocate(Category::parameters, n + ".weight", 4 * nw));
    layer.b = static_cast<float*>(mem_.allocate(Category::parameters, n + ".bias", 4 * nb));
    layer.dw = mem_.allocate(Category::gradients, n + ".weight.grad", act_bytes * nw);
    layer.db = mem_.allocate(Category::gradients, n + ".bias.grad", act_bytes * nb);
    if (o_.accum > 1) {
      layer.acc_w = static_cast<float*>(
          mem_.allocate(Category::accumulator, n + ".weight.grad_accumulator", 4 * nw));
      layer.acc_b = static_cast<float*>(
          mem_.allocate(Category::accumulator, n + ".bias.grad_accumulator", 4 * nb));
    }
    layer.m_w =
        static_cast<float*>(mem_.allocate(Category::optimizer_state, n + ".weight.adam_m", 4 * nw));
    layer.v_w =
        static_cast<float*>(mem_.allocate(Category::optimizer_state, n + ".weight.adam_v", 4 * nw));
    layer.m_b =
        static_cast<float*>(mem_.allocate(Category::optimizer_state, n + ".bias.adam_m", 4 * nb));
    layer.v_b =
        static_cast<float*>(mem_.allocate(Category::optimizer_state, n + ".bias.adam_v", 4 * nb));
    layers_.push_back(layer);
  }
  const bool resident = o_.data == DataMode::resident;
  // Static buffers are sized for the largest micro-batch (shorter sequences use a prefix).
  const uint64_t max_rows = o_.batch * max_seq_length(o_);
  if (resident || !eager()) {
    const uint64_t rows = resident ? o_.samples : max_rows;
    const char* prefix = resident ? "dataset" : "staging";
    data_x_ = static_cast<float*>(
        mem_.allocate(Category::data, fmt::format("{}.inputs", prefix), rows * row_bytes));
    data_y_ = static_cast<int32_t*>(
        mem_.allocate(Category::data, fmt::format("{}.labels", prefix), rows * 4));
  }
  for (size_t l = 0; l < layers_.size() && !eager(); ++l) {
    Layer& layer = layers_[l];
    const uint64_t bytes = act_bytes * max_rows * layer.out_dim;
    const std::string n = fmt::format("dense{}", l + 1);
    layer.out = mem_.allocate(Category::activations, n + ".output", bytes);
    layer.out_grad = mem_.allocate(Category::activations, n + ".output_grad", bytes);
  }
  metrics_ = static_cast<float*>(mem_.allocate(Category::metrics, "loss_metrics", metrics_bytes));
  mem_.fill_zero(metrics_, metrics_bytes);
  if (resident) {
    mem_.copy_to_device(data_x_, data_.x.data(), o_.samples * row_bytes);
    mem_.copy_to_device(data_y_, data_.y.data(), o_.samples * 4);
  }
}

void Trainer::initialise_weights() {
  // Keras defaults: Glorot-uniform kernels, zero biases, zero Adam moments.
  std::mt19937_64 rng(o_.seed * 0x9e3779b97f4a7c15ULL + 17);
  for (Layer& layer : layers_) {
    const double limit = std::sqrt(6.0 / static_cast<double>(layer.in_dim + layer.out_dim));
    std::uniform_real_distribution<float> uniform(static_cast<float>(-limit),
                                                  static_cast<float>(limit));
    std::vector<float> w(layer.in_dim * layer.out_dim);
    for (float& x : w) x = uniform(rng);
    mem_.copy_to_device(layer.w, w.data(), 4 * w.size());
    mem_.fill_zero(layer.b, 4 * layer.out_dim);
    mem_.fill_zero(layer.m_w, 4 * w.size());
    mem_.fill_zero(layer.v_w, 4 * w.size());
    mem_.fill_zero(layer.m_b, 4 * layer.out_dim);
    mem_.fill_zero(layer.v_b, 4 * layer.out_dim);
  }
}

void Trainer::load_batch(size_t first_sample, size_t rows) {
  if (o_.data == DataMode::resident) {
    batch_x_ = data_x_ + first_sample * o_.inputs;
    batch_y_ = data_y_ + first_sample;
    return;
  }
  // Streaming, like a generator: this micro-batch only, through the fixed staging buffer (static)
  // or through buffers allocated for it and freed after its backward (eager, like x.to("cuda")).
  if (eager()) {
    data_x_ = static_cast<float*>(
        mem_.allocate(Category::data, "batch.inputs", 4 * rows * o_.inputs));
    data_y_ = static_cast<int32_t*>(mem_.allocate(Category::data, "batch.labels", 4 * rows));
  }
  mem_.copy_to_device(data_x_, &data_.x[first_sample * o_.inputs], 4 * rows * o_.inputs);
  mem_.copy_to_device(data_y_, &data_.y[first_sample], 4 * rows);
  batch_x_ = data_x_;
  batch_y_ = data_y_;
}

void Trainer::drop_batch() {
  if (o_.data == DataMode::stream && eager()) {
    mem_.release(data_y_);
    mem_.release(data_x_);
    data_x_ = nullptr;
    data_y_ = nullptr;
  }
}

double Trainer::forward_backward(size_t first_sample) {
  return forward_backward(first_sample, o_.batch);
}

double Trainer::forward_backward(size_t first_sample, size_t rows) {
  float before[4];
  read_metrics(before);
  load_batch(first_sample, rows);
  const float* x = batch_x_;
  const int32_t* y = batch_y_;
  const size_t act_bytes = dtype_bytes(act_);
  auto name = [](size_t l, const char* what) { return fmt::format("dense{}.{}", l + 1, what); };
  {
    Phase phase("forward");
    const void* in = x;
    DType in_type = DType::fp32;
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& layer = layers_[l];
      const bool hidden = l + 1 < layers_.size();
      if (eager())
        layer.out = mem_.allocate(Category::activations, name(l, "output"),
                                  act_bytes * rows * layer.out_dim);
      backend_.dense_forward(in, in_type, layer.w, layer.b, layer.out, act_, rows, layer.in_dim,
                             layer.out_dim, hidden);
      in = layer.out;
      in_type = act_;
    }
    // The loss: softmax over the logits in place, and its gradient (a new buffer when eager).
    Layer& last = layers_.back();
    if (eager())
      last.out_grad = mem_.allocate(Category::activations, name(layers_.size() - 1, "output_grad"),
                                    act_bytes * rows * last.out_dim);
    backend_.softmax_xent(last.out, y, last.out_grad, act_, rows, last.out_dim,
                          static_cast<float>(loss_scale_), metrics_);
  }
  {
    Phase phase("backward");
    for (size_t l = layers_.size(); l-- > 0;) {
      Layer& layer = layers_[l];
      const void* in = l == 0 ? static_cast<const void*>(x) : layers_[l - 1].out;
      const DType in_type = l == 0 ? DType::fp32 : act_;
      if (eager() && l > 0)
        layers_[l - 1].out_grad = mem_.allocate(Category::activations, name(l - 1, "output_grad"),
                                                act_bytes * rows * layers_[l - 1].out_dim);
      void* din = l == 0 ? nullptr : layers_[l - 1].out_grad;
      backend_.dense_backward(in, in_type, layer.w, layer.out_grad, act_, layer.dw, layer.db, din,
                              rows, layer.in_dim, layer.out_dim);
      if (eager()) {
        // Its gradient consumed, the layer's output and output gradient go (gradient first).
        mem_.release(layer.out_grad);
        mem_.release(layer.out);
        layer.out_grad = nullptr;
        layer.out = nullptr;
      }
    }
  }
  drop_batch();
  float after[4];
  read_metrics(after);
  return (after[0] - before[0]) / static_cast<double>(rows);
}

void Trainer::accumulate_gradients(size_t index) {
  if (o_.accum == 1) return;  // the optimizer reads the gradients directly
  const float factor = 1.0f / static_cast<float>(o_.accum);
  for (Layer& layer : layers_) {
    backend_.accumulate(layer.dw, act_, layer.acc_w, layer.in_dim * layer.out_dim, factor,
                        index == 0);
    backend_.accumulate(layer.db, act_, layer.acc_b, layer.out_dim, factor, index == 0);
  }
}

void Trainer::optimizer_step() {
  Phase phase("optimizer");
  const bool accumulated = o_.accum > 1;
  const DType g_type = accumulated ? DType::fp32 : act_;
  const double scale_used = loss_scale_;  // the scale this step's gradients were computed with
  if (act_ == DType::fp16) {
    for (Layer& layer : layers_) {
      backend_.check_finite(accumulated ? static_cast<void*>(layer.acc_w) : layer.dw, g_type,
                            layer.in_dim * layer.out_dim, metrics_);
      backend_.check_finite(accumulated ? static_cast<void*>(layer.acc_b) : layer.db, g_type,
                            layer.out_dim, metrics_);
    }
    float m[4];
    read_metrics(m);
    if (m[2] != 0) {
      // Overflow in the scaled fp16 gradients: skip this update and scale the loss down.
      const float cleared = 0;
      mem_.copy_to_device(metrics_ + 2, &cleared, sizeof cleared);
      loss_scale_ = std::max(1.0, loss_scale_ / 2);
      good_steps_ = 0;
      ++skipped_steps_;
      return;
    }
    if (++good_steps_ == growth_interval) {
      good_steps_ = 0;
      loss_scale_ = std::min(max_loss_scale, loss_scale_ * 2);
    }
  }
  ++steps_;
  const double beta1 = 0.9, beta2 = 0.999;
  const double t = static_cast<double>(steps_);
  AdamStep s{};
  s.alpha =
      static_cast<float>(o_.lr * std::sqrt(1 - std::pow(beta2, t)) / (1 - std::pow(beta1, t)));
  s.beta1 = static_cast<float>(beta1);
  s.beta2 = static_cast<float>(beta2);
  s.epsilon = 1e-7f;
  s.grad_scale = static_cast<float>(1.0 / scale_used);
  for (Layer& layer : layers_) {
    const void* gw = accumulated ? static_cast<const void*>(layer.acc_w) : layer.dw;
    const void* gb = accumulated ? static_cast<const void*>(layer.acc_b) : layer.db;
    backend_.adam(layer.w, gw, g_type, layer.m_w, layer.v_w, layer.in_dim * layer.out_dim, s);
    backend_.adam(layer.b, gb, g_type, layer.m_b, layer.v_b, layer.out_dim, s);
  }
}

EpochResult Trainer::train_epoch() {
  Phase epoch("epoch");
  reset_metrics();
  // Steps run while the next one's rows (batch x accum x its sequence length) are left.
  size_t first = 0;
  while (true) {
    const size_t rows = o_.batch * seq_length_of_step(o_, step_index_);
    if (first + rows * o_.accum > o_.samples) break;
    ++step_index_;
    Phase phase("step");
    for (size_t k = 0; k < o_.accum; ++k) {
      forward_backward(first, rows);
      first += rows;
      accumulate_gradients(k);
    }
    optimizer_step();
  }
  float m[4];
  read_metrics(m);
  EpochResult r;
  r.samples = first;
  r.loss = m[0] / static_cast<double>(r.samples);
  r.accuracy = m[1] / static_cast<double>(r.samples);
  return r;
}

void Trainer::reset_metrics() {
  mem_.fill_zero(metrics_, 2 * sizeof(float));
}

void Trainer::read_metrics(float out[4]) {
  mem_.copy_to_host(out, metrics_, metrics_bytes);
}

std::vector<float> Trainer::parameters() {
  std::vector<float> all;
  for (Layer& layer : layers_) {
    std::vector<float> w(layer.in_dim * layer.out_dim), b(layer.out_dim);
    mem_.copy_to_host(w.data(), layer.w, 4 * w.size());
    mem_.copy_to_host(b.data(), layer.b, 4 * b.size());
    all.insert(all.end(), w.begin(), w.end());
    all.insert(all.end(), b.begin(), b.end());
  }
  return all;
}

void Trainer::set_parameters(const std::vector<float>& values) {
  size_t at = 0;
  for (Layer& layer : layers_) {
    const size_t nw = layer.in_dim * layer.out_dim;
    mem_.copy_to_device(layer.w, &values.at(at), 4 * nw);
    at += nw;
    mem_.copy_to_device(layer.b, &values.at(at), 4 * layer.out_dim);
    at += layer.out_dim;
  }
}

std::vector<float> Trainer::optimizer_gradient() {
  std::vector<float> all;
  auto append = [&](const void* src, size_t n, DType type) {
    std::vector<uint8_t> raw(n * dtype_bytes(type));
    mem_.copy_to_host(raw.data(), src, raw.size());
    for (size_t k = 0; k < n; ++k) {
      float v;
      if (type == DType::fp32)
        std::memcpy(&v, &raw[4 * k], 4);
      else {
        half_bits h;
        std::memcpy(&h, &raw[2 * k], 2);
        v = half_to_float(h);
      }
      all.push_back(static_cast<float>(v / loss_scale_));
    }
  };
  for (Layer& layer : layers_) {
    if (o_.accum > 1) {
      append(layer.acc_w, layer.in_dim * layer.out_dim, DType::fp32);
      append(layer.acc_b, layer.out_dim, DType::fp32);
    } else {
      append(layer.dw, layer.in_dim * layer.out_dim, act_);
      append(layer.db, layer.out_dim, act_);
    }
  }
  return all;
}

}  // namespace gpumem::train
