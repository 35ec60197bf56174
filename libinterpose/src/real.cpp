// See real.h.
#include "real.h"

#include <dlfcn.h>

namespace gpumem {
namespace {

using DlsymFn = void* (*)(void*, const char*);

GPUMEM_UNINSTRUMENTED DlsymFn resolve_real_dlsym() {
  // glibc >= 2.34 has dlsym in libc under GLIBC_2.34; older ones in libdl under the
  // architecture's first version: GLIBC_2.2.5 on x86-64, GLIBC_2.17 on aarch64.
  void* f = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
  if (f == nullptr) f = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
  if (f == nullptr) f = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.17");
  return reinterpret_cast<DlsymFn>(f);
}

std::atomic<void*> g_driver{nullptr};

}  // namespace

// Read by the assembly entry of our dlsym override (hooks/dlsym.cpp) for RTLD_NEXT tail calls.
extern "C" {
__attribute__((visibility("hidden"))) DlsymFn gpumem_real_dlsym_ptr = nullptr;

// glibc's dlsym, resolved on first use. Also called by that assembly entry when an RTLD_NEXT
// lookup comes before the library constructor (a sanitizer runtime's start-up does that).
__attribute__((visibility("hidden"))) GPUMEM_UNINSTRUMENTED DlsymFn gpumem_resolve_real_dlsym() {
  DlsymFn f = __atomic_load_n(&gpumem_real_dlsym_ptr, __ATOMIC_ACQUIRE);
  if (f == nullptr) {
    f = resolve_real_dlsym();
    if (f != nullptr) __atomic_store_n(&gpumem_real_dlsym_ptr, f, __ATOMIC_RELEASE);
  }
  return f;
}
}

void* real_dlsym(void* handle, const char* name) {
  DlsymFn f = gpumem_resolve_real_dlsym();
  return f != nullptr ? f(handle, name) : nullptr;
}

void resolve_real_dlsym_now() {
  gpumem_resolve_real_dlsym();
}

// The runtime's functions are cached for the life of the process (RealFunction), so the library
// they live in must stay too: a program that dlopen'ed libcudart privately and dlclose'd it would
// unload it, and the next hooked call would jump into unmapped memory (or into whatever was
// mapped there since: SIGSEGV in the program). RTLD_NODELETE on the loaded library keeps it.
void pin_library_of(void* f) {
  static std::atomic<void*> pinned_base{nullptr};
  Dl_info info;
  if (f == nullptr || dladdr(f, &info) == 0 || info.dli_fname == nullptr ||
      info.dli_fbase == nullptr)
    return;
  if (pinned_base.load(std::memory_order_acquire) == info.dli_fbase) return;
  if (dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE) != nullptr)
    pinned_base.store(info.dli_fbase, std::memory_order_release);  // its reference is kept
}

void* real_runtime_symbol(const char* name) {
  void* f = real_dlsym(RTLD_NEXT, name);
  if (f == nullptr) {
    // libcudart loaded with RTLD_LOCAL by dlopen (e.g. as a dependency of a framework plugin)
    // is not in the global scope that RTLD_NEXT searches.
    void* h = dlopen("libcudart.so.13", RTLD_LAZY | RTLD_NOLOAD);
    if (h == nullptr) return nullptr;
    f = real_dlsym(h, name);
    dlclose(h);  // drops the reference NOLOAD took; pin_library_of keeps the library
  }
  pin_library_of(f);
  return f;
}

void* driver_handle() {
  void* h = g_driver.load(std::memory_order_acquire);
  if (h != nullptr) return h;
  h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (h == nullptr) return nullptr;
  void* expected = nullptr;
  if (!g_driver.compare_exchange_strong(expected, h)) dlclose(h);  // another thread won
  return g_driver.load(std::memory_order_acquire);
}

void* real_driver_symbol(const char* name) {
  void* h = driver_handle();
  return h != nullptr ? real_dlsym(h, name) : nullptr;
}

}  // namespace gpumem
