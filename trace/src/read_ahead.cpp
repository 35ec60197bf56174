// See read_ahead.h.
#include "read_ahead.h"

#include <unistd.h>

#include <cerrno>

namespace gpumem::trace {

ssize_t read_at(int fd, char* dst, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, dst + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

ReadAhead::~ReadAhead() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ReadAhead::start(char* dst, size_t len, uint64_t offset) {
  cancel();
  {
    std::lock_guard lock(mutex_);
    dst_ = dst;
    len_ = len;
    offset_ = offset;
    requested_ = in_flight_ = true;
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  cv_.notify_all();
}

bool ReadAhead::take(uint64_t offset, size_t len, ssize_t* got, int* err) {
  std::unique_lock lock(mutex_);
  if (!in_flight_) return false;
  cv_.wait(lock, [this] { return !requested_; });
  in_flight_ = false;
  if (offset != offset_ || len != len_) return false;
  *got = got_;
  *err = err_;
  return true;
}

void ReadAhead::cancel() {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [this] { return !requested_; });
  in_flight_ = false;
}

void ReadAhead::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || requested_; });
    if (stop_) return;
    char* dst = dst_;
    const size_t len = len_;
    const uint64_t offset = offset_;
    lock.unlock();
    const ssize_t got = read_at(fd_, dst, len, offset);
    const int err = got < 0 ? errno : 0;
    lock.lock();
    got_ = got;
    err_ = err;
    requested_ = false;
    cv_.notify_all();
  }
}

}  // namespace gpumem::trace
