// The exec family: the program replaces its image, and with it the trace's mapping and the exit
// handlers that would have closed it, so without this an exec'd process's trace read as "process
// killed or crashed?". The trace is closed first (session.h), then glibc's function runs. glibc's
// exec functions call the system call directly, not each other, so each is wrapped. posix_spawn,
// system and popen exec in a child of their own, which never opened this trace.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdarg>

#include "hooks/wrapped.h"
#include "real.h"
#include "session.h"

namespace {

template <typename Fn>
Fn real(const char* name) {
  return reinterpret_cast<Fn>(gpumem::real_dlsym(RTLD_NEXT, name));
}

using VectorFn = int (*)(const char*, char* const*);
using VectorEnvFn = int (*)(const char*, char* const*, char* const*);

// execl, execlp, execle: their arguments as an argv on the stack (exec is async-signal-safe, so
// no heap), *envp set from after the terminating null for execle.
size_t count_args(const char* arg, va_list& ap) {
  size_t n = 1;  // the null
  if (arg != nullptr) {
    ++n;
    va_list copy;
    va_copy(copy, ap);
    while (va_arg(copy, const char*) != nullptr) ++n;
    va_end(copy);
  }
  return n;
}

void fill_args(char** argv, const char* arg, va_list& ap) {
  size_t i = 0;
  argv[i++] = const_cast<char*>(arg);
  if (arg != nullptr)
    while ((argv[i++] = va_arg(ap, char*)) != nullptr) {
    }
}

}  // namespace

GPUMEM_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) {
  gpumem::session::close_for_exec();
  return real<VectorEnvFn>("execve")(path, argv, envp);
}
GPUMEM_EXPORT int execv(const char* path, char* const argv[]) {
  gpumem::session::close_for_exec();
  return real<VectorFn>("execv")(path, argv);
}
GPUMEM_EXPORT int execvp(const char* file, char* const argv[]) {
  gpumem::session::close_for_exec();
  return real<VectorFn>("execvp")(file, argv);
}
GPUMEM_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) {
  gpumem::session::close_for_exec();
  return real<VectorEnvFn>("execvpe")(file, argv, envp);
}
GPUMEM_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) {
  gpumem::session::close_for_exec();
  return real<int (*)(int, char* const*, char* const*)>("fexecve")(fd, argv, envp);
}
GPUMEM_EXPORT int execveat(int dirfd, const char* path, char* const argv[], char* const envp[],
                           int flags) {
  gpumem::session::close_for_exec();
  auto fn = real<int (*)(int, const char*, char* const*, char* const*, int)>("execveat");
  if (fn == nullptr) return -1;  // a glibc before 2.34: no program calls it there
  return fn(dirfd, path, argv, envp, flags);
}

GPUMEM_EXPORT int execl(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  char** argv = static_cast<char**>(__builtin_alloca(count_args(arg, ap) * sizeof(char*)));
  fill_args(argv, arg, ap);
  va_end(ap);
  return execv(path, argv);
}
GPUMEM_EXPORT int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  char** argv = static_cast<char**>(__builtin_alloca(count_args(arg, ap) * sizeof(char*)));
  fill_args(argv, arg, ap);
  va_end(ap);
  return execvp(file, argv);
}
GPUMEM_EXPORT int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  char** argv = static_cast<char**>(__builtin_alloca(count_args(arg, ap) * sizeof(char*)));
  fill_args(argv, arg, ap);
  char* const* envp = va_arg(ap, char* const*);
  va_end(ap);
  return execve(path, argv, envp);
}
