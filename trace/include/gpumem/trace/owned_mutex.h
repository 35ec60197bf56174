// A mutex that knows which thread holds it. A signal handler runs on the thread it interrupted;
// when that thread held one of the writer's locks (extending the file, sealing a chunk, setting a
// device) and the handler calls exit() (the atexit hook closes the trace) or a hooked CUDA call,
// waiting for the lock would wait forever. held_here() lets the writer do without instead: drop
// the record, or close without the lock the interrupted code will never release.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <new>

namespace gpumem {

uint32_t current_tid();  // gettid(), cached per thread (writer.h)

namespace detail {

class OwnedMutex {
 public:
  void lock() {
    // Claimed before the wait: a handler that lands between the lock and the owner's store must
    // already see it held here.
    const OwnedMutex* before = claiming_;
    claiming_ = this;
    mutex_.lock();
    owner_.store(current_tid(), std::memory_order_relaxed);
    claiming_ = before;
  }
  bool try_lock() {
    const OwnedMutex* before = claiming_;
    claiming_ = this;
    const bool got = mutex_.try_lock();
    if (got) owner_.store(current_tid(), std::memory_order_relaxed);
    claiming_ = before;
    return got;
  }
  void unlock() {
    owner_.store(0, std::memory_order_relaxed);
    mutex_.unlock();
  }
  // This thread holds it, or is taking it: a signal handler interrupted the holder.
  bool held_here() const {
    return claiming_ == this || owner_.load(std::memory_order_relaxed) == current_tid();
  }
  // In a forked child: only the forking thread lives on, so a lock another thread held stays
  // held forever; start afresh.
  void reset() {
    new (&mutex_) std::mutex();
    owner_.store(0, std::memory_order_relaxed);
  }

 private:
  // initial-exec, as the writer's other thread-locals: reading it never enters the loader.
  __attribute__((
      tls_model("initial-exec"))) static inline thread_local const OwnedMutex* claiming_ = nullptr;
  std::mutex mutex_;
  std::atomic<uint32_t> owner_{0};
};

}  // namespace detail
}  // namespace gpumem
