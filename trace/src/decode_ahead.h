// Decoding ahead for the compact reader. A compact trace's records must be decoded before they
// can be analysed, and decoding a chunk costs as much as analysing its records, or more
// (docs/performance.md, "Compact traces"): on one thread the two add up. DecodeAhead decodes the
// chunks that follow the one in use on a background thread, into a small ring, and when the
// caller finds the chunk it needs still being decoded it decodes a later one itself rather than
// wait, so that both cores decode while the analysis keeps up (read_ahead.h does the same for a
// raw trace's reading).
//
// It delivers only whole chunks that decode. At anything else (the end of the chunks, a chunk
// that runs past the limit, a damaged one) it stops and says where, and the caller judges that
// place with next_compact_chunk(), the one walk a reader without a thread (a follower, a small
// trace) also takes: every verdict on a chunk (damaged and skipped, the end) is that function's.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "gpumem/trace/compact.h"

namespace gpumem::trace {

// One step of the walk over a file's compact chunks: the next whole chunk, decoded, and what was
// passed over to reach it.
struct ChunkStep {
  bool found = false;        // false: the chunks end here (zeros, a cut, a seal cut by a kill)
  uint64_t next_offset = 0;  // after the chunk found; where the walk stopped when none was
  uint64_t chunks = 0;       // chunks passed, damaged ones and the one found included
  uint64_t damaged = 0;      // damaged chunks skipped on the way
  uint64_t torn = 0;         // the records those held
};

// Reads and decodes the compact chunk at `offset` of `fd` into *out, skipping damaged chunks that
// a whole chunk follows. The chunks end where a header is not a chunk's or a chunk would run past
// `limit` (the file's size, or a bounded trace's head). `body` is scratch.
ChunkStep next_compact_chunk(int fd, uint64_t offset, uint64_t limit, std::vector<uint8_t>* body,
                             compact::DecodedChunk* out);

class DecodeAhead {
 public:
  // Starts the thread at `offset`, the start of a chunk; it decodes up to `limit`.
  DecodeAhead(int fd, uint64_t offset, uint64_t limit);
  ~DecodeAhead();
  DecodeAhead(const DecodeAhead&) = delete;
  DecodeAhead& operator=(const DecodeAhead&) = delete;

  // The next chunk, decoded: its records are swapped into *out (out's old buffers go back to the
  // ring) and *offset is moved past it. False, with *offset where the walk stopped, at the first
  // place that is not a whole chunk that decodes: judge it with next_compact_chunk.
  bool next(compact::DecodedChunk* out, uint64_t* offset);

  // Walks worth a thread: below this many bytes of chunks, starting one costs more than it saves.
  static constexpr uint64_t kMinBytes = 1 << 20;

 private:
  static constexpr uint64_t kSlots = 8;
  // The thread is woken when this many slots are free again, not at each one: a wake-up per chunk
  // would cost a sizeable share of decoding it.
  static constexpr uint64_t kWakeAtFree = kSlots / 2;
  // The file is read a window at a time (about 80 chunks), not a chunk at a time: two preads and
  // two fstats per chunk took a 10M-event report from 0.18 to 0.29 s.
  static constexpr uint64_t kWindowBytes = 1 << 20;
  struct Slot {
    uint64_t offset = 0;  // the chunk's place in the file
    uint64_t size = 0;    // header and body
    enum State { decoding, decoded, failed } state = decoding;
    compact::DecodedChunk chunk;
    std::vector<uint8_t> bytes;  // the chunk as the file holds it
  };

  void run();
  // With mutex_ held: the next chunk of the walk, copied into a free slot now marked decoding;
  // nullptr when no slot is free or the walk has ended.
  Slot* claim();
  // With mutex_ held: makes window_ hold the file's bytes [at, at + len) when the file has them.
  bool window_holds(uint64_t at, uint64_t len);
  // Decodes a claimed slot's chunk with the lock released, with ordinary stores on either thread.
  // Non-temporal ones on the thread (which skip fetching each line from the core that read it
  // last) were faster on the host of 2026-12-06 (a report of 10M events: 136 -> 114 ms) and are
  // slower on the AMD family 26 host of 2026-12-07, where the analysis then read every record
  // back from memory: 10M-event reports 12-19 % faster without them (docs/performance.md,
  // "Compact traces").
  void decode(Slot* slot, std::unique_lock<std::mutex>& lock);
  uint64_t free_slots() const { return kSlots - (claimed_ - consumed_); }

  int fd_;
  uint64_t limit_;
  Slot slots_[kSlots];
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable decoded_;  // a slot was decoded (the caller waits on it)
  std::condition_variable freed_;    // slots were handed back (the thread waits on it)
  // Guarded by mutex_.
  std::vector<uint8_t> window_;  // the file's bytes from window_at_
  uint64_t window_at_ = 0;
  uint64_t walk_at_;           // where the next chunk claimed starts
  bool walk_ended_ = false;    // walk_at_ is not a whole chunk's start
  uint64_t claimed_ = 0;       // chunks claimed; chunk i is in slot i % kSlots
  uint64_t consumed_ = 0;      // chunks handed to the caller
  bool stop_ = false;
  bool thread_waiting_ = false;
  bool caller_waiting_ = false;
};

}  // namespace gpumem::trace
