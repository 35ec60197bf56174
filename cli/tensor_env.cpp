// See tensor_env.h.
#include "tensor_env.h"

#include <fmt/format.h>

#include <algorithm>

#include <sstream>

namespace gpumem::cli {
namespace {

// PyTorch's allocator settings: "key:value" entries separated by commas.
struct Entry {
  std::string key, value;
};
std::vector<Entry> parse_alloc_conf(const std::string& text) {
  std::vector<Entry> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto colon = item.find(':');
    std::string key = item.substr(0, colon);
    std::string value = colon == std::string::npos ? "" : item.substr(colon + 1);
    auto trim = [](std::string& s) {
      s.erase(0, s.find_first_not_of(" \t"));
      s.erase(s.find_last_not_of(" \t") + 1);
    };
    trim(key);
    trim(value);
    if (!key.empty()) out.push_back({key, value});
  }
  return out;
}

void pytorch(const LookupEnv& getenv, TensorEnvironment* env) {
  // PYTORCH_ALLOC_CONF is the newer, device-generic name; the CUDA one wins when both are set.
  const char* cuda_conf = getenv("PYTORCH_CUDA_ALLOC_CONF");
  const char* generic_conf = getenv("PYTORCH_ALLOC_CONF");
  const char* name = cuda_conf == nullptr && generic_conf != nullptr ? "PYTORCH_ALLOC_CONF"
                                                                     : "PYTORCH_CUDA_ALLOC_CONF";
  const std::string current = cuda_conf != nullptr      ? cuda_conf
                              : generic_conf != nullptr ? generic_conf
                                                        : "";
  const std::vector<Entry> entries = parse_alloc_conf(current);
  std::vector<std::string> native_only;
  for (const Entry& e : entries) {
    if (e.key == "backend") {
      if (e.value == "cudaMallocAsync") {
        env->notes.push_back(
            fmt::format("PyTorch: {} already selects backend:cudaMallocAsync", name));
      } else {
        env->notes.push_back(fmt::format(
            "PyTorch: {} sets backend:{}; left as you set it, so PyTorch's caching allocator "
            "hides its tensors (set backend:cudaMallocAsync for tensor-level capture)",
            name, e.value));
        env->in_the_way.push_back(
            fmt::format("PyTorch: {}=backend:{} keeps the caching allocator", name, e.value));
      }
      return;
    }
    if (e.key == "expandable_segments" || e.key == "max_split_size_mb" ||
        e.key == "garbage_collection_threshold" || e.key == "roundup_power2_divisions")
      native_only.push_back(e.key);
  }
  const std::string value =
      current.empty() ? "backend:cudaMallocAsync" : current + ",backend:cudaMallocAsync";
  env->set.push_back({name, value});
  env->notes.push_back(fmt::format("PyTorch: {}={}{}", name, value,
                                   current.empty() ? "" : " (your settings kept, backend added)"));
  if (!native_only.empty()) {
    std::string keys;
    for (const auto& k : native_only) keys += (keys.empty() ? "" : ", ") + k;
    env->notes.push_back(
        fmt::format("PyTorch: {} only applies to the native caching allocator and is ignored under "
                    "backend:cudaMallocAsync",
                    keys));
  }
}

// A framework whose allocator is one variable: set `wanted` when it is unset, accept any of
// `tensor_level`, keep (and say) anything else. Returns whether the framework is tensor-level.
struct AllocatorVariable {
  const char* framework;
  const char* name;
  const char* wanted;
  std::vector<std::string> tensor_level;  // values that already allocate per tensor
  const char* cache;                      // what any other value keeps in the way
};

bool one_variable(const LookupEnv& getenv, const AllocatorVariable& var, TensorEnvironment* env) {
  const char* v = getenv(var.name);
  if (v == nullptr || *v == '\0') {
    env->set.push_back({var.name, var.wanted});
    env->notes.push_back(fmt::format("{}: {}={}", var.framework, var.name, var.wanted));
    return true;
  }
  const auto& ok = var.tensor_level;
  if (std::find(ok.begin(), ok.end(), v) != ok.end()) {
    env->notes.push_back(fmt::format("{}: {} is already {}", var.framework, var.name, v));
    return true;
  }
  std::string accepted;
  for (const auto& a : ok) accepted += (accepted.empty() ? "" : " or ") + a;
  env->notes.push_back(fmt::format(
      "{}: {}={} left as you set it; {} hides its tensors (set {} for tensor-level capture)",
      var.framework, var.name, v, var.cache, accepted));
  env->in_the_way.push_back(
      fmt::format("{}: {}={} keeps {}", var.framework, var.name, v, var.cache));
  return false;
}

void tensorflow(const LookupEnv& getenv, TensorEnvironment* env) {
  one_variable(getenv,
               {"TensorFlow",
                "TF_GPU_ALLOCATOR",
                "cuda_malloc_async",
                {"cuda_malloc_async"},
                "the BFC allocator"},
               env);
}

void jax(const LookupEnv& getenv, TensorEnvironment* env) {
  // cuda_async: one stream-ordered allocation per buffer from CUDA's memory pool, which keeps it
  // fast; "platform" (one synchronous cuMemAlloc/cuMemFree per buffer) is the documented slow
  // alternative for jaxlib versions that lack cuda_async (docs/attribution.md).
  if (!one_variable(getenv,
                    {"JAX",
                     "XLA_PYTHON_CLIENT_ALLOCATOR",
                     "cuda_async",
                     {"cuda_async", "platform"},
                     "XLA's BFC allocator"},
                    env))
    return;
  const char* pre = getenv("XLA_PYTHON_CLIENT_PREALLOCATE");
  if (pre == nullptr || *pre == '\0') {
    env->set.push_back({"XLA_PYTHON_CLIENT_PREALLOCATE", "false"});
    env->notes.push_back("JAX: XLA_PYTHON_CLIENT_PREALLOCATE=false");
  }
}

}  // namespace

TensorEnvironment tensor_environment(const LookupEnv& getenv) {
  TensorEnvironment env;
  pytorch(getenv, &env);
  tensorflow(getenv, &env);
  jax(getenv, &env);
  return env;
}

}  // namespace gpumem::cli
