// Opening an input file without ever blocking on it. open(2) of a FIFO for reading waits for a
// writer, and reading a character device may never end; every reader of user-named files (trace
// reader, foreign-format importers, directory scans) opens through open_regular_file, which opens
// with O_NONBLOCK (a FIFO opens at once), refuses anything fstat does not call a regular file, and
// only then clears O_NONBLOCK for the ordinary reads that follow. Header-only.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace gpumem {

// What a path that is not a regular file is, in words ("a FIFO (named pipe)", "a directory", ...).
inline const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISREG(mode)) return "a regular file";
  return "not a regular file";
}

// A read-only descriptor of the regular file at `path`, or -1 with `*why` saying what is wrong
// ("cannot open: <errno text>" or "is a FIFO (named pipe), not a regular file"), without the path:
// the caller names the path its own way. `*size` (when given) receives the file's size.
inline int open_regular_file(const std::string& path, std::string* why, uint64_t* size = nullptr) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *why = std::string("cannot open: ") + std::strerror(errno);
    return -1;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    *why = std::string("cannot stat: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode)) {
    *why = std::string("is ") + file_kind(st.st_mode) + ", not a regular file";
    ::close(fd);
    return -1;
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  if (size != nullptr) *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

}  // namespace gpumem
