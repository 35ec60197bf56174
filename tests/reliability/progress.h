// Shared between the kill-test workload and the test: how many calls of each thread have returned.
// The workload maps this struct from a file with MAP_SHARED and stores after every returned call,
// so the count survives SIGKILL.
#pragma once

#include <atomic>
#include <cstdint>

namespace reliability {

constexpr int kMaxThreads = 64;

struct alignas(64) ThreadProgress {
  std::atomic<uint32_t> tid;       // the thread's kernel id (Record::tid), 0 until it starts
  std::atomic<uint64_t> returned;  // calls of this thread that have returned
};

struct Progress {
  std::atomic<uint32_t> thread_count;
  ThreadProgress threads[kMaxThreads];
};

}  // namespace reliability
