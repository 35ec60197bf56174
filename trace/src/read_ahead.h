// Sequential read-ahead for the trace reader: a background thread copies the chunks of the file
// that follow the one in use out of the page cache into a small ring of buffers, so the caller
// finds them ready. On a cached trace that copy is about 10 ns of kernel time per 64-byte record,
// as much as the analysis itself (docs/performance.md): overlapped, the two no longer add up.
// The ring (not a single spare buffer) lets the thread run on without waiting for the caller to
// hand a buffer back, so a thread wake-up is not paid per chunk.
//
// When the caller asks for a chunk the thread is still reading, it reads the next one itself
// instead of sleeping: with an analysis faster than the copy, both cores then copy.
//
// One thread per reader, started by the first get() that is not the whole rest of the file (a
// small trace never starts it), stopped by the destructor. Bad input is the caller's business:
// this class only reports what pread returned.
//
// Direct mode (a follower of a live trace, gpumem/trace/follow.h): no thread and no ring, one
// small buffer read on demand. A live file ends megabytes past its last record (the writer grows
// it in steps); reading ahead there would copy unwritten zeros at every look.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "gpumem/trace/format.h"

namespace gpumem::trace {

// pread until `len` bytes or end of file; returns bytes read, or -1 on error (errno set). Never
// counts bytes past the file's end as it is after the read (a truncation may race it).
ssize_t read_at(int fd, char* dst, size_t len, uint64_t offset);

class ReadAhead {
 public:
  static constexpr size_t kChunkBytes = 1 << 20;  // a multiple of kRecordSize
  static constexpr int kChunks = 4;                 // the one in use and three read ahead

  struct Chunk {
    Record* data = nullptr;  // kChunkBytes of buffer; the first `got` bytes are the file's
    ssize_t got = 0;         // what read_at returned for this chunk
    int error = 0;           // errno when got < 0
  };

  // `direct_bytes` > 0 (a multiple of kRecordSize): direct mode, chunks of that size.
  explicit ReadAhead(int fd, size_t direct_bytes = 0);
  ~ReadAhead();
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // The file's bytes [offset, min(offset + kChunkBytes, end)). Valid until the next get() or
  // stop(); the chunk returned before is handed back to the ring. The chunks after it, up to
  // `end`, are read ahead. Any offset may be asked for (a rewind, a jump): the read-ahead
  // restarts there.
  Chunk get(uint64_t offset, uint64_t end);
  // Ends any reading in flight (before the file is closed).
  void stop();
  // Direct mode: gives the buffer back to the heap until the next get() (a follower between two
  // looks: top's followers, read one after another, then share one buffer's memory).
  void release_direct() { direct_.reset(); }
  // The size of the chunks get() returns.
  size_t chunk_bytes() const { return direct_bytes_ != 0 ? direct_bytes_ : kChunkBytes; }

 private:
  struct Slot {
    Record* buffer = nullptr;  // kChunkBytes inside ring_
    uint64_t offset = 0;
    size_t len = 0;
    ssize_t got = 0;
    int error = 0;
    enum State { free, reading, ready, held } state = free;
  };
  void start_thread();
  void run();
  // With mutex_ held: the next chunk to read, in a free slot now marked reading; or nullptr.
  Slot* claim();
  // Reads a claimed slot's chunk with the lock released, then marks it ready.
  void fill(Slot* slot, std::unique_lock<std::mutex>& lock);
  Slot* slot_for(uint64_t offset);  // the slot holding (or reading) the chunk at offset

  int fd_;
  size_t direct_bytes_ = 0;
  std::unique_ptr<char[]> direct_;  // direct mode's one buffer (direct_bytes_), made by get()
  void* ring_ = nullptr;  // the chunks' buffers, one block (huge pages where the kernel gives them)
  Slot slots_[kChunks];
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  // Guarded by mutex_.
  bool stop_ = false;
  uint64_t next_offset_ = 0;  // the next chunk the thread reads
  uint64_t end_ = 0;          // where it stops
};

}  // namespace gpumem::trace
