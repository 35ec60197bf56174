// A file system without fallocate (some network and FUSE file systems): preloaded after
// libgpumem.so by trace_file_test.cpp, so that every fallocate the writer makes fails with
// EOPNOTSUPP and its fallback runs. No libc header declares these here: the definitions are ours.
#include <errno.h>

extern "C" int fallocate(int, int, long, long) {
  errno = EOPNOTSUPP;
  return -1;
}

extern "C" int fallocate64(int, int, long, long) {
  errno = EOPNOTSUPP;
  return -1;
}
