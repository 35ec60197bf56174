// The pool's lock: a futex mutex (Drepper, "Futexes Are Tricky", mutex #3). Uncontended, lock is
// one compare-and-swap and unlock one atomic exchange, inline, where std::mutex goes through two
// pthread calls. Waiters sleep in the kernel: the pool holds its lock across device calls that take
// microseconds (segment reserve and release, synchronization), so spinning would waste a core.
// Linux only, like the preload library.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

namespace gpumem::resources {

class PoolLock {
 public:
  void lock() {
    int c = 0;
    if (state_.compare_exchange_strong(c, kLocked, std::memory_order_acquire)) return;
    lock_slow(c);
  }
  bool try_lock() {
    int c = 0;
    return state_.compare_exchange_strong(c, kLocked, std::memory_order_acquire);
  }
  void unlock() {
    if (state_.exchange(kFree, std::memory_order_release) == kContended) wake();
  }

 private:
  static constexpr int kFree = 0;
  static constexpr int kLocked = 1;     // held, nobody waiting
  static constexpr int kContended = 2;  // held, someone may be waiting

  void lock_slow(int c) {
    if (c != kContended) c = state_.exchange(kContended, std::memory_order_acquire);
    while (c != kFree) {
      syscall(SYS_futex, reinterpret_cast<int*>(&state_), FUTEX_WAIT_PRIVATE, kContended, nullptr,
              nullptr, 0);
      c = state_.exchange(kContended, std::memory_order_acquire);
    }
  }
  void wake() {
    syscall(SYS_futex, reinterpret_cast<int*>(&state_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }

  std::atomic<int> state_{kFree};
};

}  // namespace gpumem::resources
