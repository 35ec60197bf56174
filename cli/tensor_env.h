// `gpumem run --tensors`: the environment that makes each framework take every tensor or buffer
// from CUDA itself instead of from its private cache, so the trace counts tensors, not segments
// (docs/attribution.md). Nothing in the library changes: the frameworks' own stream-ordered or
// platform allocators call what the preload already catches.
//
//   PyTorch     PYTORCH_CUDA_ALLOC_CONF (or PYTORCH_ALLOC_CONF) += backend:cudaMallocAsync
//   TensorFlow  TF_GPU_ALLOCATOR=cuda_malloc_async
//   JAX / XLA   XLA_PYTHON_CLIENT_ALLOCATOR=cuda_async, XLA_PYTHON_CLIENT_PREALLOCATE=false
//
// A value the user set is merged with, never silently overridden: a setting that keeps the
// framework's cache in the way is left as it is, and said so.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace gpumem::cli {

struct TensorEnvironment {
  struct Setting {
    std::string name;
    std::string value;
  };
  std::vector<Setting> set;             // variables to set in the child
  std::vector<std::string> notes;       // one line each, for stderr: what was set, merged or kept
  std::vector<std::string> in_the_way;  // frameworks whose cache still hides tensors, and why
};

using LookupEnv = std::function<const char*(const char* name)>;
TensorEnvironment tensor_environment(const LookupEnv& getenv);

}  // namespace gpumem::cli
