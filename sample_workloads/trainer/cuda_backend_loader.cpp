// Finds and loads the CUDA backend module. Keeping the kernels out of the program means that
// nvcc's start-up registration (__cudaRegisterFatBinary) only runs against a real CUDA runtime.
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <string>
#include <vector>

#include "backend.h"

namespace gpumem::train {

namespace {
constexpr const char* module_name = "libgpumem_train_cuda.so";

std::string program_dir() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return ".";
  std::string p(path, static_cast<size_t>(n));
  return p.substr(0, p.find_last_of('/'));
}
}  // namespace

std::unique_ptr<Backend> make_cuda_backend(std::string* why) {
  const std::string dir = program_dir();
  const std::vector<std::string> candidates = {dir + "/../lib/" + module_name,
                                               dir + "/" + module_name, module_name};
  std::string errors;
  for (const std::string& path : candidates) {
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      errors += std::string("\n  ") + dlerror();
      continue;
    }
    using Factory = Backend* (*)();
    auto factory = reinterpret_cast<Factory>(dlsym(handle, "gpumem_train_make_cuda_backend"));
    if (factory == nullptr) {
      *why = path + " has no gpumem_train_make_cuda_backend: rebuild gpumem";
      return nullptr;
    }
    return std::unique_ptr<Backend>(factory());  // the module stays loaded for the process
  }
  *why = std::string("the CUDA backend module ") + module_name +
         " was not found (gpumem is built without it when nvcc is missing):" + errors;
  return nullptr;
}

}  // namespace gpumem::train
