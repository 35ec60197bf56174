// Preloaded after libgpumem.so by trace_file_test.cpp: raises SIGUSR1 inside the writer's own
// file I/O, on the K-th call of one function (RELIABILITY_SIGNAL_IN=fallocate:K or pwrite:K), so a
// signal handler runs while the writer holds the lock of a file extension, an open or a seal,
// deterministically. The call then goes on to libc's, if the handler returns.
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <atomic>

namespace {

std::atomic<long> calls[2];

void maybe_raise(int which, const char* name) {
  const char* spec = getenv("RELIABILITY_SIGNAL_IN");
  const size_t n = strlen(name);
  if (spec == nullptr || strncmp(spec, name, n) != 0 || spec[n] != ':') return;
  if (calls[which].fetch_add(1) + 1 == atol(spec + n + 1)) raise(SIGUSR1);
}

template <typename Fn>
Fn next(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" int fallocate64(int fd, int mode, off_t at, off_t len) {
  maybe_raise(0, "fallocate");
  static const auto real = next<int (*)(int, int, off_t, off_t)>("fallocate64");
  return real(fd, mode, at, len);
}

extern "C" int fallocate(int fd, int mode, off_t at, off_t len) {
  return fallocate64(fd, mode, at, len);
}

extern "C" ssize_t pwrite64(int fd, const void* buf, size_t n, off_t at) {
  maybe_raise(1, "pwrite");
  static const auto real = next<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite64");
  return real(fd, buf, n, at);
}

extern "C" ssize_t pwrite(int fd, const void* buf, size_t n, off_t at) {
  return pwrite64(fd, buf, n, at);
}
