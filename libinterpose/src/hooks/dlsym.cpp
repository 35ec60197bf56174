// The dlsym override: catches driver and runtime functions looked up by name on any handle
// (TensorFlow, JAX/XLA, NCCL and the CUDA runtime itself reach libcuda this way).
//
// Rule: call glibc's dlsym with the caller's own handle first; replace the answer only when it is
// non-null AND the name is exactly one gpumem wraps. Everything else is returned untouched.
//
// Exported twice, as dlsym@GLIBC_2.2.5 (programs linked against glibc < 2.34) and
// dlsym@@GLIBC_2.34 (newer ones), through .symver and the version script exports.map.
//
// RTLD_NEXT means "after the object that called dlsym", and glibc finds that object from the
// return address. A C++ override would make every RTLD_NEXT lookup relative to libgpumem, so the
// entry point is a few instructions of assembly that tail-jump to glibc's dlsym with the caller's
// return address intact. (No wrapped name is substituted for RTLD_NEXT: an object asking for
// "the next cudaMalloc" is an interposer itself, and gets exactly what it asked for.)
#include <dlfcn.h>

#include "hooks/wrapped.h"
#include "real.h"

extern "C" __attribute__((visibility("hidden"))) void* gpumem_dlsym_impl(void* handle,
                                                                         const char* name) {
  void* found = gpumem::real_dlsym(handle, name);
  if (found == nullptr) return nullptr;
  if (void* wrapper = gpumem::hooks::wrapper_for_name(name, gpumem::trace::Lookup::dlsym))
    return wrapper;
  return found;
}

#if defined(__x86_64__)
asm(R"(
    .text
    .p2align 4
    .globl gpumem_dlsym_glibc_2_2_5
    .type gpumem_dlsym_glibc_2_2_5, @function
    .globl gpumem_dlsym_glibc_2_34
    .type gpumem_dlsym_glibc_2_34, @function
gpumem_dlsym_glibc_2_2_5:
gpumem_dlsym_glibc_2_34:
    cmpq $-1, %rdi                          # handle == RTLD_NEXT ?
    jne 1f
    movq gpumem_real_dlsym_ptr(%rip), %rax  # resolved at load by the library constructor
    testq %rax, %rax
    je 1f
    jmp *%rax                               # tail call: glibc sees the caller's return address
1:
    jmp gpumem_dlsym_impl
    .size gpumem_dlsym_glibc_2_2_5, .-gpumem_dlsym_glibc_2_2_5
    .size gpumem_dlsym_glibc_2_34, .-gpumem_dlsym_glibc_2_34
    .symver gpumem_dlsym_glibc_2_2_5, dlsym@GLIBC_2.2.5
    .symver gpumem_dlsym_glibc_2_34, dlsym@@GLIBC_2.34
)");
#elif defined(__aarch64__)
asm(R"(
    .text
    .p2align 4
    .globl gpumem_dlsym_glibc_2_17
    .type gpumem_dlsym_glibc_2_17, @function
    .globl gpumem_dlsym_glibc_2_34
    .type gpumem_dlsym_glibc_2_34, @function
gpumem_dlsym_glibc_2_17:
gpumem_dlsym_glibc_2_34:
    cmn x0, #1                              // handle == RTLD_NEXT ?
    b.ne 1f
    adrp x16, gpumem_real_dlsym_ptr
    ldr x16, [x16, #:lo12:gpumem_real_dlsym_ptr]
    cbz x16, 1f
    br x16                                  // tail call, lr untouched
1:
    b gpumem_dlsym_impl
    .size gpumem_dlsym_glibc_2_17, .-gpumem_dlsym_glibc_2_17
    .size gpumem_dlsym_glibc_2_34, .-gpumem_dlsym_glibc_2_34
    .symver gpumem_dlsym_glibc_2_17, dlsym@GLIBC_2.17
    .symver gpumem_dlsym_glibc_2_34, dlsym@@GLIBC_2.34
)");
#else
#error "libgpumem's dlsym entry point is written for x86-64 and aarch64"
#endif
