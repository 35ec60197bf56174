// The real CUDA functions behind the hooks. libgpumem.so links no CUDA library: runtime
// functions come from dlsym(RTLD_NEXT, name) (or, when libcudart was dlopen'ed privately, from
// dlopen("libcudart.so.13", RTLD_NOLOAD)); driver functions from dlopen("libcuda.so.1") and the
// real dlsym. Each is resolved once, on first use, and cached in a typed slot; the library it came
// from is kept loaded (real.cpp, pin_library_of) so that the slot never dangles.
#pragma once

#include <atomic>

namespace gpumem {

// Functions on the path of our exported dlsym (hooks/dlsym.cpp) before it has glibc's answer.
// A sanitizer runtime's start-up looks up its interceptors through that dlsym before its shadow
// memory (ASan) or thread state (TSan) exists, so this path is never instrumented, calls only
// builtins and glibc, and inlines nothing from instrumented code (gcc never inlines across
// differing sanitize attributes: an inline helper here would be an instrumented call).
#define GPUMEM_UNINSTRUMENTED __attribute__((no_sanitize("address", "undefined", "thread")))

// glibc's own dlsym (we export an override of `dlsym`; never call that from inside the library).
GPUMEM_UNINSTRUMENTED void* real_dlsym(void* handle, const char* name);
// Resolves glibc's dlsym now (library constructor), so the dlsym entry can tail-call it.
void resolve_real_dlsym_now();
// Keeps the library that defines function f loaded for the rest of the process (RTLD_NODELETE):
// for a function pointer cached for good. Nothing for nullptr.
void pin_library_of(void* f);
void* real_runtime_symbol(const char* name);  // nullptr when no CUDA runtime is loaded
void* real_driver_symbol(const char* name);   // nullptr when libcuda.so.1 cannot be loaded
void* driver_handle();                        // dlopen("libcuda.so.1") or nullptr

// A lazily resolved function pointer of type F. `load()` costs one relaxed atomic load once
// resolved; resolution itself is idempotent, so racing threads at worst resolve it twice.
template <class F, bool Driver>
class RealFunction {
 public:
  explicit constexpr RealFunction(const char* name) : name_(name) {}
  F get() {
    F f = fn_.load(std::memory_order_acquire);
    if (f != nullptr) [[likely]]
      return f;
    void* p = Driver ? real_driver_symbol(name_) : real_runtime_symbol(name_);
    f = reinterpret_cast<F>(p);
    if (f != nullptr) fn_.store(f, std::memory_order_release);
    return f;
  }
  const char* name() const { return name_; }

 private:
  const char* name_;
  std::atomic<F> fn_{nullptr};
};

}  // namespace gpumem

// GPUMEM_REAL_RUNTIME(cudaMalloc) / GPUMEM_REAL_DRIVER(cuMemAlloc_v2): the cached real function.
#define GPUMEM_REAL_RUNTIME(name)                                        \
  ([]() {                                                                \
    static ::gpumem::RealFunction<decltype(&::name), false> slot{#name}; \
    return slot.get();                                                   \
  }())
#define GPUMEM_REAL_DRIVER_AS(type, name)                  \
  ([]() {                                                  \
    static ::gpumem::RealFunction<type, true> slot{#name}; \
    return slot.get();                                     \
  }())
#define GPUMEM_REAL_DRIVER(name) GPUMEM_REAL_DRIVER_AS(decltype(&::name), name)

// For functions an older CUDA lacks (cuStreamGetDevice, CUDA 12.8): looked up once, on first use
// (the hook calling it already runs with its library loaded), so a miss costs nothing afterwards.
#define GPUMEM_REAL_RUNTIME_OPTIONAL(name)                                         \
  ([]() {                                                                          \
    static const auto fn =                                                         \
        reinterpret_cast<decltype(&::name)>(::gpumem::real_runtime_symbol(#name)); \
    return fn;                                                                     \
  }())
#define GPUMEM_REAL_DRIVER_OPTIONAL(name)                                         \
  ([]() {                                                                         \
    static const auto fn =                                                        \
        reinterpret_cast<decltype(&::name)>(::gpumem::real_driver_symbol(#name)); \
    return fn;                                                                    \
  }())
