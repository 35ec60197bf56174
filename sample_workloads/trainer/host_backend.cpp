// Plain C++ loops over device pointers. Valid on simcuda, where device memory is host memory,
// and on host buffers in unit tests.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "backend.h"
#include "half.h"

namespace gpumem::train {
namespace {

inline float load(const float* p, size_t i) {
  return p[i];
}
inline float load(const half_bits* p, size_t i) {
  return half_to_float(p[i]);
}
inline void store(float* p, size_t i, float v) {
  p[i] = v;
}
inline void store(half_bits* p, size_t i, float v) {
  p[i] = float_to_half(v);
}

// Calls fn with the pointer cast to its element type.
template <class Fn>
void with_type(const void* p, DType t, Fn&& fn) {
  if (t == DType::fp32)
    fn(static_cast<const float*>(p));
  else
    fn(static_cast<const half_bits*>(p));
}
template <class Fn>
void with_type(void* p, DType t, Fn&& fn) {
  if (t == DType::fp32)
    fn(static_cast<float*>(p));
  else
    fn(static_cast<half_bits*>(p));
}

// Each output is bias[j] plus row[i] * w[j][i] added in order of i, as a dot product would add them,
// but the loops run over a transposed copy of w so that the inner one updates every output at once:
// independent additions that the compiler vectorizes, in the same order per output, so the same bits.
template <class In, class Out>
void dense_forward_t(const In* in, const float* w, const float* bias, Out* out, size_t batch,
                     size_t in_dim, size_t out_dim, bool relu) {
  std::vector<float> wt(in_dim * out_dim), row(in_dim), z(out_dim);
  for (size_t j = 0; j < out_dim; ++j)
    for (size_t i = 0; i < in_dim; ++i) wt[i * out_dim + j] = w[j * in_dim + i];
  for (size_t b = 0; b < batch; ++b) {
    for (size_t i = 0; i < in_dim; ++i) row[i] = load(in, b * in_dim + i);
    for (size_t j = 0; j < out_dim; ++j) z[j] = bias[j];
    for (size_t i = 0; i < in_dim; ++i) {
      const float r = row[i];
      const float* wti = &wt[i * out_dim];
      for (size_t j = 0; j < out_dim; ++j) z[j] += r * wti[j];
    }
    for (size_t j = 0; j < out_dim; ++j) store(out, b * out_dim + j, relu && z[j] < 0 ? 0.0f : z[j]);
  }
}

template <class T>
void softmax_xent_t(T* logits, const int32_t* labels, T* dlogits, size_t batch, size_t classes,
                    float grad_scale, float* metrics) {
  std::vector<float> p(classes);
  double loss_sum = 0, correct = 0;
  for (size_t b = 0; b < batch; ++b) {
    float top = -INFINITY;
    size_t arg = 0;
    for (size_t c = 0; c < classes; ++c) {
      p[c] = load(logits, b * classes + c);
      if (p[c] > top) {
        top = p[c];
        arg = c;
      }
    }
    float sum = 0;
    for (size_t c = 0; c < classes; ++c) sum += (p[c] = std::exp(p[c] - top));
    const auto label = static_cast<size_t>(labels[b]);
    for (size_t c = 0; c < classes; ++c) {
      p[c] /= sum;
      store(logits, b * classes + c, p[c]);
      const float target = c == label ? 1.0f : 0.0f;
      store(dlogits, b * classes + c, (p[c] - target) * grad_scale / static_cast<float>(batch));
    }
    loss_sum += -std::log(std::max(p[label], 1e-30f));
    correct += arg == label ? 1 : 0;
  }
  metrics[0] += static_cast<float>(loss_sum);
  metrics[1] += static_cast<float>(correct);
}

template <class In, class Act>
void dense_backward_t(const In* in, const float* w, const Act* dout, Act* dw, Act* dbias, Act* din,
                      size_t batch, size_t in_dim, size_t out_dim) {
  std::vector<float> gw(in_dim * out_dim, 0.0f), gb(out_dim, 0.0f), row(in_dim), drow(out_dim),
      d(in_dim);
  for (size_t b = 0; b < batch; ++b) {
    for (size_t i = 0; i < in_dim; ++i) row[i] = load(in, b * in_dim + i);
    for (size_t j = 0; j < out_dim; ++j) drow[j] = load(dout, b * out_dim + j);
    for (size_t j = 0; j < out_dim; ++j) {
      gb[j] += drow[j];
      float* gwj = &gw[j * in_dim];
      for (size_t i = 0; i < in_dim; ++i) gwj[i] += drow[j] * row[i];
    }
    if (din != nullptr) {
      // d[i] adds drow[j] * w[j][i] in order of j, walking w by rows so the inner loop vectorizes;
      // inputs the ReLU cut (row[i] <= 0) get no gradient.
      std::fill(d.begin(), d.end(), 0.0f);
      for (size_t j = 0; j < out_dim; ++j) {
        const float dj = drow[j];
        const float* wj = w + j * in_dim;
        for (size_t i = 0; i < in_dim; ++i) d[i] += dj * wj[i];
      }
      for (size_t i = 0; i < in_dim; ++i) store(din, b * in_dim + i, row[i] > 0 ? d[i] : 0.0f);
    }
  }
  for (size_t k = 0; k < gw.size(); ++k) store(dw, k, gw[k]);
  for (size_t j = 0; j < out_dim; ++j) store(dbias, j, gb[j]);
}

class HostBackend final : public Backend {
 public:
  const char* name() const override { return "host"; }

  void dense_forward(const void* in, DType in_type, const float* w, const float* bias, void* out,
                     DType out_type, size_t batch, size_t in_dim, size_t out_dim,
                     bool relu) override {
    with_type(in, in_type, [&](auto* in_t) {
      with_type(out, out_type, [&](auto* out_t) {
        dense_forward_t(in_t, w, bias, out_t, batch, in_dim, out_dim, relu);
      });
    });
  }

  void softmax_xent(void* logits, const int32_t* labels, void* dlogits, DType act, size_t batch,
                    size_t classes, float grad_scale, float* metrics) override {
    if (act == DType::fp32)
      softmax_xent_t(static_cast<float*>(logits), labels, static_cast<float*>(dlogits), batch,
                     classes, grad_scale, metrics);
    else
      softmax_xent_t(static_cast<half_bits*>(logits), labels, static_cast<half_bits*>(dlogits),
                     batch, classes, grad_scale, metrics);
  }

  void dense_backward(const void* in, DType in_type, const float* w, const void* dout, DType act,
                      void* dw, void* dbias, void* din, size_t batch, size_t in_dim,
                      size_t out_dim) override {
    with_type(in, in_type, [&](auto* in_t) {
      with_type(dout, act, [&](auto* dout_t) {
        using Act = std::remove_const_t<std::remove_pointer_t<decltype(dout_t)>>;
        dense_backward_t(in_t, w, dout_t, static_cast<Act*>(dw), static_cast<Act*>(dbias),
                         static_cast<Act*>(din), batch, in_dim, out_dim);
      });
    });
  }

  void accumulate(const void* grad, DType grad_type, float* acc, size_t n, float factor,
                  bool first) override {
    with_type(grad, grad_type, [&](auto* g) {
      for (size_t k = 0; k < n; ++k) acc[k] = (first ? 0.0f : acc[k]) + load(g, k) * factor;
    });
  }

  void check_finite(const void* values, DType type, size_t n, float* metrics) override {
    with_type(values, type, [&](auto* g) {
      for (size_t k = 0; k < n; ++k)
        if (!std::isfinite(load(g, k))) {
          metrics[2] = 1;
          return;
        }
    });
  }

  void adam(float* w, const void* g, DType g_type, float* m, float* v, size_t n,
            const AdamStep& s) override {
    with_type(g, g_type, [&](auto* gt) {
      for (size_t k = 0; k < n; ++k) {
        const float grad = load(gt, k) * s.grad_scale;
        m[k] += (grad - m[k]) * (1 - s.beta1);
        v[k] += (grad * grad - v[k]) * (1 - s.beta2);
        w[k] -= s.alpha * m[k] / (std::sqrt(v[k]) + s.epsilon);
      }
    });
  }
};

}  // namespace

std::unique_ptr<Backend> make_host_backend() {
  return std::make_unique<HostBackend>();
}

}  // namespace gpumem::train
