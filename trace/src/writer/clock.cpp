// Time and thread identity for trace records: both on every hot-path append, so both are cheap
// (clock_gettime is a vDSO call; the thread id is a cached thread-local).
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gpumem/trace/writer.h"

namespace gpumem {
namespace {

// initial-exec: the preload library is loaded at start-up, so its TLS lives in the static block
// and reading it never calls into the dynamic loader (which may allocate).
__attribute__((tls_model("initial-exec"))) thread_local uint32_t cached_tid = 0;

// The thread that calls fork() lives on in the child with a new kernel id: forget the old one.
void forget_tid_in_child() {
  cached_tid = 0;
}
[[maybe_unused]] const int atfork_registered =
    pthread_atfork(nullptr, nullptr, forget_tid_in_child);

}  // namespace

uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint32_t current_tid() {
  if (cached_tid == 0) cached_tid = static_cast<uint32_t>(syscall(SYS_gettid));
  return cached_tid;
}

}  // namespace gpumem
