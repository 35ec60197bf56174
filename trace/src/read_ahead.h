// Sequential read-ahead for the trace reader: while the caller works on one chunk of the file, a
// background thread copies the next chunk out of the page cache into a second buffer. On a
// cached trace that copy is ~40% of an analysis (10 ns of kernel time per 64-byte record,
// measured with `gpumem report` on 20M events, docs/performance.md), so overlapping it with the
// analysis nearly hides it. One thread per reader, started at the first chunk read ahead and
// stopped by the destructor; a small trace (one chunk) never starts it.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

namespace gpumem::trace {

// pread until `len` bytes or end of file; returns bytes read, or -1 on error (errno set).
ssize_t read_at(int fd, char* dst, size_t len, uint64_t offset);

class ReadAhead {
 public:
  explicit ReadAhead(int fd) : fd_(fd) {}
  ~ReadAhead();
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // Starts reading [offset, offset + len) into `dst` in the background. `dst` must stay untouched
  // by the caller until take() or cancel() returns.
  void start(char* dst, size_t len, uint64_t offset);
  // If the read in flight (or done) is exactly [offset, offset + len), waits for it and returns
  // true with *got = what read_at returned and *err = its errno; else cancels it (waits for it
  // to end) and returns false. Either way nothing is in flight afterwards.
  bool take(uint64_t offset, size_t len, ssize_t* got, int* err);
  // Waits for any read in flight and forgets it.
  void cancel();

 private:
  void run();

  int fd_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  // Guarded by mutex_.
  bool stop_ = false;
  bool requested_ = false;  // a read is asked for and not yet done
  bool in_flight_ = false;  // asked for and not yet taken or cancelled
  char* dst_ = nullptr;
  size_t len_ = 0;
  uint64_t offset_ = 0;
  ssize_t got_ = 0;
  int err_ = 0;
};

}  // namespace gpumem::trace
