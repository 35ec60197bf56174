// Built when nvcc is absent: there is no CUDA backend, and --backend cuda says so.
#include "backend.h"

namespace gpumem::train {
std::unique_ptr<Backend> make_cuda_backend() { return nullptr; }
}  // namespace gpumem::train
