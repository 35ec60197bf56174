// The compact format's raw ring (gpumem/trace/format_v2.h): appends reserve slots from the one
// cursor as in version 1 and commit them the same way, into a ring of raw chunks; each full chunk
// is sealed into a compact chunk appended to the file (pwrite: in the page cache at once, so a
// SIGKILL after it loses nothing), and only then is its ring space zeroed for reuse. Sealing is
// done by the appending threads themselves, a chunk at a time, when one crosses into a new chunk
// (if the previous ones are ready) or finds the ring full (then it waits for the slots still being
// written). No thread of our own runs inside the profiled process.
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "gpumem/trace/compact.h"
#include "gpumem/trace/format_v2.h"
#include "gpumem/trace/writer.h"
#include "positional_io.h"
#include "window.h"

namespace gpumem {
namespace {

using trace::Record;

uint32_t commit_word(const char* slot) {
  return std::atomic_ref<const uint32_t>(reinterpret_cast<const Record*>(slot)->commit)
      .load(std::memory_order_acquire);
}

bool final_word(uint32_t w) {
  return w == trace::kCommitted || w == trace::kContinuation || w == trace::kAbandoned;
}

}  // namespace

char* TraceWriter::reserve_ring(char* base, uint64_t offset, uint64_t bytes) {
  if (offset >= kClosedCursor) return nullptr;  // close() has moved the cursor past the file
  const uint64_t chunk_bytes = uint64_t{kChunkSlots} * trace::kRecordSize;
  const uint64_t first = (offset - trace::kHeaderSize) / chunk_bytes;
  const uint64_t last = (offset + bytes - 1 - trace::kHeaderSize) / chunk_bytes;
  // Raw chunk `last` may be written once chunk last - kRingChunks + 1 is sealed.
  const uint64_t needed = last + 2 > kRingChunks ? last + 2 - kRingChunks : 0;
  if (sealed_.load(std::memory_order_acquire) < needed) [[unlikely]] {
    if (closing_.load(std::memory_order_relaxed) || full_.load(std::memory_order_acquire) ||
        !seal(needed, offset, /*wait=*/true, 0)) {
      if (!closing_.load(std::memory_order_relaxed)) note_dropped();
      return nullptr;
    }
  } else if (first != (offset - 1 - trace::kHeaderSize) / chunk_bytes && first > 0) [[unlikely]] {
    // The first slot of a new chunk: seal what is ready, if nobody else is sealing.
    seal(first, offset, /*wait=*/false, 0);
  }
  return ring_slot(base, offset);
}

bool TraceWriter::seal(uint64_t until, uint64_t end, bool wait, uint64_t deadline_ns) {
  // The lock is never held while waiting for a slot: the thread writing that slot may itself be
  // waiting for a chunk to be sealed (it reserved its slot while the ring was full).
  const uint64_t chunk_bytes = uint64_t{kChunkSlots} * trace::kRecordSize;
  // A signal handler interrupting this thread's own seal: the seal cannot go on until it returns.
  if (seal_mutex_.held_here()) return false;
  for (;;) {
    {
      std::unique_lock lock(seal_mutex_, std::try_to_lock);
      if (lock.owns_lock()) {
        for (uint64_t k = sealed_.load(std::memory_order_relaxed); k < until; ++k) {
          if (full_.load(std::memory_order_acquire)) return false;
          // Every slot of the chunk reserved (or `end` given), and written: else stop here.
          const uint64_t stop = std::min(trace::kHeaderSize + (k + 1) * chunk_bytes, end);
          bool ready = true;
          for (uint64_t at = trace::kHeaderSize + k * chunk_bytes +
                             spill_slots_ * trace::kRecordSize;
               ready && at < stop; at += trace::kRecordSize)
            ready = final_word(commit_word(ring_slot(map_, at)));
          if (!ready || !seal_chunk(map_, k, stop)) break;
        }
      }
    }
    if (sealed_.load(std::memory_order_acquire) >= until) return true;
    if (full_.load(std::memory_order_acquire)) return false;
    if (!wait || (deadline_ns != 0 && monotonic_ns() > deadline_ns)) return !wait;
    sched_yield();
  }
}

bool TraceWriter::seal_chunk(char* base, uint64_t chunk, uint64_t end) {
  const uint64_t chunk_bytes = uint64_t{kChunkSlots} * trace::kRecordSize;
  const uint64_t begin = trace::kHeaderSize + chunk * chunk_bytes;
  const size_t payload_room = kChunkSlots * trace::kBlobBytesPerSlot;
  unsigned char* payload = seal_buffer_ + seal_buffer_bytes_ - payload_room;
  trace::compact::ChunkEncoder enc;
  enc.begin(seal_buffer_, seal_buffer_bytes_ - payload_room);
  uint64_t at = begin + spill_slots_ * trace::kRecordSize;
  bool in_abandoned = false;
  while (at < end) {
    const char* slot = ring_slot(base, at);
    const uint32_t word = commit_word(slot);
    Record r;
    std::memcpy(&r, slot, sizeof r);
    at += trace::kRecordSize;
    if (word == trace::kAbandoned || (word == trace::kContinuation && in_abandoned)) {
      in_abandoned = true;  // in flight at a clean close: not in the trace, as in version 1
      continue;
    }
    in_abandoned = false;
    if (word != trace::kCommitted) continue;
    r.commit = trace::kCommitted;
    size_t len = 0;
    if (r.op == static_cast<uint16_t>(trace::Op::string) ||
        r.op == static_cast<uint16_t>(trace::Op::stack)) {
      // The payload follows the head (committed before it), possibly into the next chunk.
      const uint64_t slots = r.address;
      if (slots >= kChunkSlots || r.bytes > slots * trace::kBlobBytesPerSlot) continue;
      for (uint64_t i = 0; i < slots; ++i)
        std::memcpy(payload + i * trace::kBlobBytesPerSlot,
                    ring_slot(base, at + i * trace::kRecordSize), trace::kBlobBytesPerSlot);
      len = r.bytes;
      at += slots * trace::kRecordSize;
    }
    enc.add(r, std::string_view(reinterpret_cast<const char*>(payload), len));
  }
  const size_t size = enc.finish();
  // A bounded trace places the chunk in its head or window (window.h); else it is appended.
  const int fd = file_fd();
  if (fd < 0 || (window_ != nullptr ? !window_->place(fd, seal_buffer_, size, chunk)
                                    : !detail::pwrite_all(fd, seal_buffer_, size, compact_end_))) {
    full_errno_.store(errno, std::memory_order_relaxed);
    full_.store(true, std::memory_order_release);
    return false;
  }
  compact_end_ = window_ != nullptr ? std::max(compact_end_, window_->file_end())
                                    : compact_end_ + size;
  spill_slots_ = at > begin + chunk_bytes ? (at - begin - chunk_bytes) / trace::kRecordSize : 0;
  // The compact copy is in the file: the ring space may be reused. Zeroed first, so that a
  // reader never takes what is left of this chunk for a later one.
  const uint64_t ring_at = (begin - trace::kHeaderSize) % ring_bytes_;
  std::memset(base + trace::kHeaderSize + ring_at, 0, chunk_bytes);
  char* layout = base + trace::kCompactLayoutOffset;
  std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(
                                layout + offsetof(trace::CompactLayout, compact_end)))
      .store(compact_end_, std::memory_order_relaxed);
  std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(
                                layout + offsetof(trace::CompactLayout, sealed_chunks)))
      .store(chunk + 1, std::memory_order_relaxed);
  sealed_.store(chunk + 1, std::memory_order_release);
  return true;
}

}  // namespace gpumem

namespace gpumem {

void TraceWriter::close_compact(char* base, uint64_t cursor_at_close) {
  // Everything still in the ring is sealed, the last chunk too however full, so that a closed
  // file is compact chunks only. Slots past the ring's capacity were never written (their
  // threads were waiting for a seal when the cursor moved on).
  const uint64_t chunk_bytes = uint64_t{kChunkSlots} * trace::kRecordSize;
  const uint64_t from =
      trace::kHeaderSize + sealed_.load(std::memory_order_acquire) * chunk_bytes;
  const uint64_t end =
      std::max(from, std::min(cursor_at_close, from + (kRingChunks - 1) * chunk_bytes));
  const uint64_t chunks = (end - trace::kHeaderSize + chunk_bytes - 1) / chunk_bytes;
  const bool all_sealed = !full_.load(std::memory_order_acquire) &&
                          seal(chunks, end, true, monotonic_ns() + kCloseWaitNs);
  // exit() from a signal handler that interrupted this thread's own seal: closed without the lock
  // (compact_end_ is where the chunks sealed before it end; the unfinished one is cut off).
  std::unique_lock lock(seal_mutex_, std::defer_lock);
  if (!seal_mutex_.held_here()) lock.lock();
  end_at_close_ = end;
  auto* h = reinterpret_cast<trace::Header*>(base);
  h->end_offset = compact_end_;
  std::atomic_ref<uint64_t>(h->records_dropped)
      .store(dropped_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(h->flags).fetch_or(trace::kHeaderClosed, std::memory_order_release);
  // As in version 1: an append racing with close writes into anonymous memory, never the file.
  mmap(base, mapped_bytes_, PROT_READ | PROT_WRITE,
       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  // The ring holds nothing once all is sealed: give its blocks back (it reads as zeros).
  if (const int fd = file_fd(); fd >= 0) {
    if (all_sealed)
      fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, trace::kHeaderSize,
                static_cast<off_t>(ring_bytes_));
    if (ftruncate(fd, static_cast<off_t>(compact_end_)) != 0) {
      // The chunks are intact; the reader walks them and ignores a zero tail.
    }
    ::close(fd);
  }
  fd_ = -1;
  delete window_;
  window_ = nullptr;
}

}  // namespace gpumem
