// Whole positional writes and reads for the writer's chunk files (ring.cpp seals chunks with them,
// window.cpp places and reads back a bounded trace's chunks): a short or interrupted call goes on
// where it stopped. False with errno set when the file will take or give no more (a write that
// makes no progress is ENOSPC; a read at end of file is EIO; a write past the file-size limit is
// EFBIG, refused before it is made).
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace gpumem::detail {

// How long this process may make a file (RLIMIT_FSIZE, ulimit -f): a write or extension past it
// raises SIGXFSZ, which kills a program that leaves that signal at its default, so the writer
// never makes one.
inline uint64_t file_size_limit() {
  rlimit r;
  if (getrlimit(RLIMIT_FSIZE, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
  return static_cast<uint64_t>(r.rlim_cur);
}

inline bool pwrite_all(int fd, const void* data, size_t n, uint64_t at) {
  if (at + n > file_size_limit()) {
    errno = EFBIG;
    return false;
  }
  const auto* p = static_cast<const unsigned char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = ENOSPC;
      return false;
    }
    p += w, n -= static_cast<size_t>(w), at += static_cast<uint64_t>(w);
  }
  return true;
}

inline bool pread_all(int fd, void* data, size_t n, uint64_t at) {
  auto* p = static_cast<unsigned char*>(data);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(at));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = EIO;
      return false;
    }
    p += r, n -= static_cast<size_t>(r), at += static_cast<uint64_t>(r);
  }
  return true;
}

}  // namespace gpumem::detail
