// The trace writer inside the preload library: one file per process, written by all threads
// through a MAP_SHARED mapping and one atomic cursor. Format: trace/include/gpumem/trace_format.h.
//
// Hot-path contract (append, append_blob, intern_stack): no heap allocation, no lock, no getenv,
// no system call except the rare file extension; the caller never waits for the disk. Records of
// calls that returned survive SIGKILL because they live in the page cache of a shared mapping.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "gpumem/trace_format.h"

namespace gpumem {

uint64_t monotonic_ns();   // CLOCK_MONOTONIC in ns
uint32_t current_tid();    // gettid(), cached per thread

class TraceWriter {
 public:
  // Creates `path` with mode 0600, refusing to follow a symlink planted at that path (O_NOFOLLOW,
  // O_EXCL after unlinking a regular file of ours is not attempted: an existing file is truncated
  // only if it is a regular file owned by us). Copies `header` (magic/version/sizes are filled in).
  // On failure returns false and writes one line to err saying what is wrong and what to do.
  bool open(const char* path, const trace::Header& header, char* err, size_t errlen);
  bool is_open() const { return base_ != nullptr; }

  // Reserves one slot, fills it and commits it. Fills t_ns (if 0) and tid (if 0).
  void append(trace::Record r);
  // Writes a blob record (Op::string or Op::stack) of `len` bytes with id `id`.
  void append_blob(trace::Op op, uint64_t id, const void* data, size_t len);
  // Returns the id of a string, writing an Op::string record the first time it is seen.
  // Thread-safe; meant for marks and symbols (not the allocation hot path). Never returns 0.
  uint64_t intern_string(const char* text);
  // Returns the id of a call stack (return addresses, innermost first), writing an Op::stack
  // record the first time it is seen. Lock-free. Never returns 0.
  uint32_t intern_stack(const uint64_t* pcs, int depth);

  // Fills the header's device entry (and device_count) once per device; later calls are no-ops.
  void set_device(int device, uint64_t capacity, uint64_t limit, const char* name);

  // Clean shutdown: sets end_offset and kHeaderClosed, unmaps, trims the file to its records.
  void close();
  // In a forked child: drop the parent's mapping without writing to it, so the parent's trace is
  // untouched; the child may then open() its own file.
  void abandon();

  uint64_t records_written() const;
  const char* path() const { return path_; }

 private:
  bool ensure_capacity(uint64_t end);  // slow path: extends the file (rare, under a mutex)

  char* base_ = nullptr;          // mapping of the whole reserved virtual range
  int fd_ = -1;
  uint64_t mapped_bytes_ = 0;     // virtual size reserved for the mapping
  std::atomic<uint64_t> cursor_{trace::kHeaderSize};  // next free byte
  std::atomic<uint64_t> file_bytes_{0};               // current file size (valid to touch below it)
  char path_[4096] = {};
};

}  // namespace gpumem
