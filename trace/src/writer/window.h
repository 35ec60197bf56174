// Where a bounded compact trace (GPUMEM_TRACE_MAX) puts each sealed chunk: in the head while it
// has room, then in the window, a circle of framed chunks that overwrites its oldest ones once
// full. Before chunks are overwritten they are read back and folded into the digest (digest.h),
// written to the digest slot not holding the last one; then the new chunk, body before frame, so
// that a kill at any moment leaves a reader the last whole digest and whole chunks only
// (docs/trace-format.md, "Bounded traces"). Runs under the writer's seal lock, on the appending
// thread, possibly inside a signal handler: no malloc after construction (fold_arena.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

#include "digest.h"
#include "fold_arena.h"
#include "gpumem/trace/compact.h"
#include "gpumem/trace/format_v2.h"

namespace gpumem::detail {

class BoundedWindow {
 public:
  // `chunk_records` and `body_bytes`: the most a sealed chunk holds (decoding one back then needs
  // no memory beyond what is reserved here).
  BoundedWindow(const trace::BoundedLayout& layout, size_t chunk_records, size_t body_bytes);
  // Writes compact chunk `index` (`size` bytes at `chunk`) to the file. False with errno set when
  // the file could not be written or the digest outgrew its slot (then errno is EFBIG).
  bool place(int fd, const uint8_t* chunk, size_t size, uint64_t index);
  // One past the last byte written: the file's length at close (never above max_bytes).
  uint64_t file_end() const { return file_end_; }

 private:
  struct Placed {
    uint64_t at;    // offset of its WindowFrame
    uint64_t size;  // frame + chunk
    uint64_t index;
  };
  bool decode_buffer(trace::compact::ChunkInfo* info);
  bool drop_front(int fd);
  bool fold_head(int fd);
  bool write_digest(int fd, uint64_t next_index, uint64_t window_at);

  trace::BoundedLayout layout_;
  bool head_open_ = true;
  uint64_t head_at_ = 0;  // next head chunk (0: head_begin)
  uint64_t head_chunks_ = 0;
  FoldArena arena_;  // first: the members below take their memory from it
  std::deque<Placed, FoldAllocator<Placed>> window_;  // oldest first
  uint64_t window_at_ = 0;     // where the next window chunk goes (0: window_begin)
  uint64_t generation_ = 0;
  bool head_folded_ = false;
  uint64_t file_end_ = 0;
  DigestFold fold_;
  ArenaVector<uint8_t> buffer_;
  trace::compact::DecodedChunk decoded_;  // its capacity reserved once
};

}  // namespace gpumem::detail
