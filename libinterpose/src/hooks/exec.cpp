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

// execl, execlp, execle: runs exec(argv) with their arguments, `arg` and the rest of `ap` up to
// its null, as an argv on this frame's stack (exec is async-signal-safe, so no heap). `ap` is
// left after the null, where execle's envp is.
template <class Exec>
int with_argv(const char* arg, va_list& ap, Exec exec) {
  size_t n = 1;  // the null
  if (arg != nullptr) {
    ++n;
    va_list copy;
    va_copy(copy, ap);
    while (va_arg(copy, const char*) != nullptr) ++n;
    va_end(copy);
  }
  char** argv = static_cast<char**>(__builtin_alloca(n * sizeof(char*)));
  argv[0] = const_cast<char*>(arg);
  for (size_t i = 1; i < n; ++i) argv[i] = va_arg(ap, char*);  // the last one read is the null
  return exec(argv);
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
  const int result = with_argv(arg, ap, [&](char** argv) { return execv(path, argv); });
  va_end(ap);
  return result;
}
GPUMEM_EXPORT int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  const int result = with_argv(arg, ap, [&](char** argv) { return execvp(file, argv); });
  va_end(ap);
  return result;
}
GPUMEM_EXPORT int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  const int result = with_argv(arg, ap, [&](char** argv) {
    return execve(path, argv, va_arg(ap, char* const*));  // envp follows the terminating null
  });
  va_end(ap);
  return result;
}
