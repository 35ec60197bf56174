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
// "the next cudaMalloc" is an interposer itself, and gets exactly what it asked for.) An RTLD_NEXT
// lookup that comes before the library constructor has resolved glibc's dlsym resolves it first,
// then tail-jumps the same way.
//
// Sanitizer builds: ASan's and TSan's start-up look up their interceptors with
// dlsym(RTLD_NEXT, ...) before our constructor and before their runtime exists (no shadow memory,
// no thread state), and with libgpumem.so preloaded those calls land here. So everything up to
// glibc's answer (the assembly, gpumem_dlsym_impl, real_dlsym) is uninstrumented
// (GPUMEM_UNINSTRUMENTED, real.h), and only a cu*/cuda* name, which no sanitizer runtime asks
// for, goes on to the (instrumented) table lookup.
#include <dlfcn.h>

#include "hooks/wrapped.h"
#include "real.h"

extern "C" __attribute__((visibility("hidden"))) GPUMEM_UNINSTRUMENTED void* gpumem_dlsym_impl(
    void* handle, const char* name) {
  void* found = gpumem::real_dlsym(handle, name);
  // glibc found it, so `name` is a valid string; only cu*, cuda* and nvml* names are wrapped.
  if (found == nullptr ||
      ((name[0] != 'c' || name[1] != 'u') && (name[0] != 'n' || name[1] != 'v')))
    return found;
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
    jne 2f
    pushq %rdi                              # not yet: resolve it, keeping the arguments
    pushq %rsi
    subq $8, %rsp                           # 16-byte stack alignment at the call
    call gpumem_resolve_real_dlsym
    addq $8, %rsp
    popq %rsi
    popq %rdi
    testq %rax, %rax
    je 3f
2:
    jmp *%rax                               # tail call: glibc sees the caller's return address
1:
    jmp gpumem_dlsym_impl
3:
    ret                                     # no glibc dlsym: nullptr (in %rax)
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
    cbnz x16, 2f
    stp x29, x30, [sp, #-32]!               // not yet: resolve it, keeping arguments and lr
    stp x0, x1, [sp, #16]
    bl gpumem_resolve_real_dlsym
    mov x16, x0
    ldp x0, x1, [sp, #16]
    ldp x29, x30, [sp], #32
    cbz x16, 3f
2:
    br x16                                  // tail call, lr untouched
1:
    b gpumem_dlsym_impl
3:
    mov x0, #0                              // no glibc dlsym: nullptr
    ret
    .size gpumem_dlsym_glibc_2_17, .-gpumem_dlsym_glibc_2_17
    .size gpumem_dlsym_glibc_2_34, .-gpumem_dlsym_glibc_2_34
    .symver gpumem_dlsym_glibc_2_17, dlsym@GLIBC_2.17
    .symver gpumem_dlsym_glibc_2_34, dlsym@@GLIBC_2.34
)");
#else
#error "libgpumem's dlsym entry point is written for x86-64 and aarch64"
#endif
