// The compute a training step needs, over device pointers. `host` runs C++ loops (device memory
// is host memory on simcuda); `cuda` launches nvcc-compiled kernels. Weights, biases, Adam state
// and the accumulator are always fp32; activations and gradients are `act` (fp32 or fp16); the
// data is fp32 with int32 labels. Metrics: [0] += loss sum, [1] += correct, [2] = 1 on a
// non-finite gradient.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "options.h"

namespace gpumem::train {

struct AdamStep {
  float alpha;  // lr * sqrt(1 - beta2^t) / (1 - beta1^t), Keras's form
  float beta1;
  float beta2;
  float epsilon;
  float grad_scale;  // multiplies the gradient source before use (unscales fp16 loss scaling)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // out[b][j] = bias[j] + sum_i in[b][i] * w[j][i]; then ReLU when `relu`.
  virtual void dense_forward(const void* in, DType in_type, const float* w, const float* bias,
                             void* out, DType out_type, size_t batch, size_t in_dim, size_t out_dim,
                             bool relu) = 0;

  // Softmax in place over logits; adds the cross-entropy sum and correct count to metrics and
  // writes dlogits = (p - onehot) * grad_scale / batch.
  virtual void softmax_xent(void* logits, const int32_t* labels, void* dlogits, DType act,
                            size_t batch, size_t classes, float grad_scale, float* metrics) = 0;

  // Writes (not adds) dw = dout^T in and dbias = sum_b dout. When din is not null, writes
  // din = dout w, masked by in > 0 (in is the previous layer's ReLU output).
  virtual void dense_backward(const void* in, DType in_type, const float* w, const void* dout,
                              DType act, void* dw, void* dbias, void* din, size_t batch,
                              size_t in_dim, size_t out_dim) = 0;

  // acc = grad * factor (first micro-batch of a step) or acc += grad * factor.
  virtual void accumulate(const void* grad, DType grad_type, float* acc, size_t n, float factor,
                          bool first) = 0;

  // Sets metrics[2] = 1 when any of the n values is inf or NaN.
  virtual void check_finite(const void* values, DType type, size_t n, float* metrics) = 0;

  // Keras Adam on n parameters with gradient source g.
  virtual void adam(float* w, const void* g, DType g_type, float* m, float* v, size_t n,
                    const AdamStep& step) = 0;

  // Waits for queued work (the metrics copy synchronises as well; this is for timing).
  virtual void synchronize() {}
};

std::unique_ptr<Backend> make_host_backend();
// Loads the CUDA backend module (libgpumem_train_cuda.so, beside the program's lib/ folder).
// Null, with *why filled, when the module is absent (built without nvcc) or cannot be loaded.
std::unique_ptr<Backend> make_cuda_backend(std::string* why);

}  // namespace gpumem::train
