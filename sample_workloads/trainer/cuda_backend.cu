// CUDA kernels for a real GPU, built as a module (libgpumem_train_cuda.so) that gpumem-train loads
// only when it picks the cuda backend: nvcc's kernel registration then never runs on simcuda: a
// simple tiled matmul for Dense layers, elementwise kernels for the rest. No cuBLAS, so every byte
// the trainer uses is a cudaMalloc an interposer sees.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "backend.h"
#include "device_memory.h"

namespace gpumem::train {
namespace {

constexpr int tile = 16;
constexpr int threads = 256;

__device__ inline float ld(const float* p, size_t i) {
  return p[i];
}
__device__ inline float ld(const __half* p, size_t i) {
  return __half2float(p[i]);
}
__device__ inline void st(float* p, size_t i, float v) {
  p[i] = v;
}
__device__ inline void st(__half* p, size_t i, float v) {
  p[i] = __float2half_rn(v);
}

unsigned blocks_for(size_t n) {
  return static_cast<unsigned>((n + threads - 1) / threads);
}

void check_launch(const char* what) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw DeviceError(std::string(what) + " kernel failed: " + cudaGetErrorString(err));
}

// out[b][j] = bias[j] + sum_i in[b][i] * w[j][i]: C = A * B^T with 16x16 shared-memory tiles.
template <class In, class Out>
__global__ void dense_forward_kernel(const In* in, const float* w, const float* bias, Out* out,
                                     size_t batch, size_t in_dim, size_t out_dim, bool relu) {
  __shared__ float a[tile][tile + 1];
  __shared__ float b[tile][tile + 1];
  const size_t row = blockIdx.y * tile + threadIdx.y;  // sample
  const size_t col = blockIdx.x * tile + threadIdx.x;  // output unit
  float sum = 0;
  for (size_t k0 = 0; k0 < in_dim; k0 += tile) {
    const size_t ka = k0 + threadIdx.x;
    a[threadIdx.y][threadIdx.x] = row < batch && ka < in_dim ? ld(in, row * in_dim + ka) : 0.0f;
    const size_t wrow = blockIdx.x * tile + threadIdx.y;
    b[threadIdx.y][threadIdx.x] = wrow < out_dim && ka < in_dim ? w[wrow * in_dim + ka] : 0.0f;
    __syncthreads();
    for (int k = 0; k < tile; ++k) sum += a[threadIdx.y][k] * b[threadIdx.x][k];
    __syncthreads();
  }
  if (row < batch && col < out_dim) {
    float z = sum + bias[col];
    if (relu && z < 0) z = 0;
    st(out, row * out_dim + col, z);
  }
}

template <class T>
__global__ void softmax_xent_kernel(T* logits, const int32_t* labels, T* dlogits, size_t batch,
                                    size_t classes, float grad_scale, float* metrics) {
  const size_t b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= batch) return;
  T* z = logits + b * classes;
  float top = -INFINITY;
  size_t arg = 0;
  for (size_t c = 0; c < classes; ++c)
    if (ld(z, c) > top) {
      top = ld(z, c);
      arg = c;
    }
  float sum = 0;
  for (size_t c = 0; c < classes; ++c) sum += expf(ld(z, c) - top);
  const size_t label = static_cast<size_t>(labels[b]);
  float p_label = 0;
  for (size_t c = 0; c < classes; ++c) {
    const float p = expf(ld(z, c) - top) / sum;
    if (c == label) p_label = p;
    st(z, c, p);
    st(dlogits, b * classes + c, (p - (c == label ? 1.0f : 0.0f)) * grad_scale / batch);
  }
  atomicAdd(&metrics[0], -logf(fmaxf(p_label, 1e-30f)));
  if (arg == label) atomicAdd(&metrics[1], 1.0f);
}

// dw[j][i] = sum_b dout[b][j] in[b][i]; one thread per weight (small layers).
template <class In, class Act>
__global__ void weight_grad_kernel(const In* in, const Act* dout, Act* dw, size_t batch,
                                   size_t in_dim, size_t out_dim) {
  const size_t k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= in_dim * out_dim) return;
  const size_t j = k / in_dim, i = k % in_dim;
  float sum = 0;
  for (size_t b = 0; b < batch; ++b) sum += ld(dout, b * out_dim + j) * ld(in, b * in_dim + i);
  st(dw, k, sum);
}

template <class Act>
__global__ void bias_grad_kernel(const Act* dout, Act* db, size_t batch, size_t out_dim) {
  const size_t j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= out_dim) return;
  float sum = 0;
  for (size_t b = 0; b < batch; ++b) sum += ld(dout, b * out_dim + j);
  st(db, j, sum);
}

// din[b][i] = (in[b][i] > 0) * sum_j dout[b][j] w[j][i]
template <class Act>
__global__ void input_grad_kernel(const Act* in, const float* w, const Act* dout, Act* din,
                                  size_t batch, size_t in_dim, size_t out_dim) {
  const size_t k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= batch * in_dim) return;
  const size_t b = k / in_dim, i = k % in_dim;
  float sum = 0;
  if (ld(in, k) > 0)
    for (size_t j = 0; j < out_dim; ++j) sum += ld(dout, b * out_dim + j) * w[j * in_dim + i];
  st(din, k, sum);
}

template <class G>
__global__ void accumulate_kernel(const G* g, float* acc, size_t n, float factor, bool first) {
  const size_t k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k < n) acc[k] = (first ? 0.0f : acc[k]) + ld(g, k) * factor;
}

template <class G>
__global__ void check_finite_kernel(const G* g, size_t n, float* metrics) {
  const size_t k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k < n && !isfinite(ld(g, k))) metrics[2] = 1;
}

template <class G>
__global__ void adam_kernel(float* w, const G* g, float* m, float* v, size_t n, AdamStep s) {
  const size_t k = blockIdx.x * blockDim.x + threadIdx.x;
  if (k >= n) return;
  const float grad = ld(g, k) * s.grad_scale;
  m[k] += (grad - m[k]) * (1 - s.beta1);
  v[k] += (grad * grad - v[k]) * (1 - s.beta2);
  w[k] -= s.alpha * m[k] / (sqrtf(v[k]) + s.epsilon);
}

template <class Fn>
void with_type(const void* p, DType t, Fn&& fn) {
  if (t == DType::fp32)
    fn(static_cast<const float*>(p));
  else
    fn(static_cast<const __half*>(p));
}

class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }

  void dense_forward(const void* in, DType in_type, const float* w, const float* bias, void* out,
                     DType out_type, size_t batch, size_t in_dim, size_t out_dim,
                     bool relu) override {
    const dim3 block(tile, tile);
    const dim3 grid(static_cast<unsigned>((out_dim + tile - 1) / tile),
                    static_cast<unsigned>((batch + tile - 1) / tile));
    with_type(in, in_type, [&](auto* in_t) {
      if (out_type == DType::fp32)
        dense_forward_kernel<<<grid, block>>>(in_t, w, bias, static_cast<float*>(out), batch,
                                              in_dim, out_dim, relu);
      else
        dense_forward_kernel<<<grid, block>>>(in_t, w, bias, static_cast<__half*>(out), batch,
                                              in_dim, out_dim, relu);
    });
    check_launch("dense_forward");
  }

  void softmax_xent(void* logits, const int32_t* labels, void* dlogits, DType act, size_t batch,
                    size_t classes, float grad_scale, float* metrics) override {
    if (act == DType::fp32)
      softmax_xent_kernel<<<blocks_for(batch), threads>>>(static_cast<float*>(logits), labels,
                                                          static_cast<float*>(dlogits), batch,
                                                          classes, grad_scale, metrics);
    else
      softmax_xent_kernel<<<blocks_for(batch), threads>>>(static_cast<__half*>(logits), labels,
                                                          static_cast<__half*>(dlogits), batch,
                                                          classes, grad_scale, metrics);
    check_launch("softmax_xent");
  }

  void dense_backward(const void* in, DType in_type, const float* w, const void* dout, DType act,
                      void* dw, void* dbias, void* din, size_t batch, size_t in_dim,
                      size_t out_dim) override {
    with_type(dout, act, [&](auto* dout_t) {
      using Act = std::remove_const_t<std::remove_pointer_t<decltype(dout_t)>>;
      with_type(in, in_type, [&](auto* in_t) {
        weight_grad_kernel<<<blocks_for(in_dim * out_dim), threads>>>(
            in_t, dout_t, static_cast<Act*>(dw), batch, in_dim, out_dim);
      });
      bias_grad_kernel<<<blocks_for(out_dim), threads>>>(dout_t, static_cast<Act*>(dbias), batch,
                                                         out_dim);
      if (din != nullptr)  // the input is then the previous layer's activations, of type Act
        input_grad_kernel<<<blocks_for(batch * in_dim), threads>>>(
            static_cast<const Act*>(in), w, dout_t, static_cast<Act*>(din), batch, in_dim, out_dim);
    });
    check_launch("dense_backward");
  }

  void accumulate(const void* grad, DType grad_type, float* acc, size_t n, float factor,
                  bool first) override {
    with_type(grad, grad_type, [&](auto* g) {
      accumulate_kernel<<<blocks_for(n), threads>>>(g, acc, n, factor, first);
    });
    check_launch("accumulate");
  }

  void check_finite(const void* values, DType type, size_t n, float* metrics) override {
    with_type(values, type,
              [&](auto* g) { check_finite_kernel<<<blocks_for(n), threads>>>(g, n, metrics); });
    check_launch("check_finite");
  }

  void adam(float* w, const void* g, DType g_type, float* m, float* v, size_t n,
            const AdamStep& step) override {
    with_type(g, g_type,
              [&](auto* gt) { adam_kernel<<<blocks_for(n), threads>>>(w, gt, m, v, n, step); });
    check_launch("adam");
  }

  void synchronize() override { cudaDeviceSynchronize(); }
};

}  // namespace

}  // namespace gpumem::train

// The module's one entry point, found with dlsym by cuda_backend_loader.cpp.
extern "C" __attribute__((visibility("default"))) gpumem::train::Backend*
gpumem_train_make_cuda_backend() {
  return new gpumem::train::CudaBackend();
}
