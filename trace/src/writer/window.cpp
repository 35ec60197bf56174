// BoundedWindow (window.h): the head, the digest slots and the circular window of a bounded trace.
#include "window.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "gpumem/trace/compact.h"
#include "positional_io.h"

namespace gpumem::detail {
namespace {

bool header_ok(trace::compact::ChunkCheck c) {
  return c == trace::compact::ChunkCheck::ok || c == trace::compact::ChunkCheck::short_;
}

}  // namespace

BoundedWindow::BoundedWindow(const trace::BoundedLayout& layout, size_t chunk_records,
                             size_t body_bytes)
    : layout_(layout),
      window_(FoldAllocator<Placed>(&arena_)),
      fold_(&arena_),
      buffer_(FoldAllocator<uint8_t>(&arena_)) {
  decoded_.records.reserve(chunk_records);
  decoded_.payload_begin.reserve(chunk_records + 1);
  decoded_.payloads.reserve(body_bytes);  // a chunk's payloads lie within its body
}

// Decodes a chunk of ours read back into buffer_ (false: not whole, or larger than a sealed chunk
// can be, which would need more memory than decoded_ holds).
bool BoundedWindow::decode_buffer(trace::compact::ChunkInfo* info) {
  if (trace::compact::check_chunk(buffer_.data(), buffer_.size(), info) !=
          trace::compact::ChunkCheck::ok ||
      info->records > decoded_.records.capacity() ||
      info->body_bytes > decoded_.payloads.capacity())
    return false;
  return trace::compact::decode_body(buffer_.data() + trace::compact::kChunkHeaderBytes,
                                     info->body_bytes, info->records, &decoded_);
}

bool BoundedWindow::place(int fd, const uint8_t* chunk, size_t size, uint64_t index) {
  if (head_at_ == 0) head_at_ = layout_.head_begin, window_at_ = layout_.window_begin;
  if (head_open_) {
    if (head_at_ + size <= layout_.head_end) {
      if (!pwrite_all(fd, chunk, size, head_at_)) return false;
      head_at_ += size;
      ++head_chunks_;
      file_end_ = std::max(file_end_, head_at_);
      return true;
    }
    head_open_ = false;  // the head ends with the first chunk that does not fit
  }
  const uint64_t need = sizeof(trace::WindowFrame) + size;
  const uint64_t span = layout_.window_end - layout_.window_begin;
  if (need > span / 2) {
    errno = EFBIG;
    return false;
  }
  // Make room: drop the oldest chunks (in order) until the chunk fits where the circle is, and,
  // once dropping at all, an eighth of the window, so that the digest is rewritten seldom.
  const uint64_t slack = span / 8;
  uint64_t dropped = 0;
  for (;;) {
    const bool ahead = !window_.empty() && window_.front().at >= window_at_;
    const uint64_t free_end = ahead ? window_.front().at : layout_.window_end;
    if (window_at_ + need <= free_end && (dropped == 0 || dropped >= slack || window_.empty()))
      break;
    if (window_at_ + need > layout_.window_end && !ahead) {
      window_at_ = layout_.window_begin;  // round the circle; a reader follows the indices
      continue;
    }
    dropped += window_.front().size;
    if (!drop_front(fd)) return false;
  }
  if (dropped > 0 && !write_digest(fd, window_.empty() ? index : window_.front().index,
                                   window_.empty() ? window_at_ : window_.front().at))
    return false;
  // The body first, then its frame: until the frame is whole a reader sees a stale index there.
  if (!pwrite_all(fd, chunk, size, window_at_ + sizeof(trace::WindowFrame))) return false;
  const trace::WindowFrame frame{trace::kWindowMagic, 0, index};
  if (!pwrite_all(fd, &frame, sizeof frame, window_at_)) return false;
  window_.push_back({window_at_, need, index});
  window_at_ += need;
  file_end_ = std::max(file_end_, window_at_);
  return true;
}

bool BoundedWindow::fold_head(int fd) {
  head_folded_ = true;
  trace::compact::ChunkInfo info;
  for (uint64_t at = layout_.head_begin; at < head_at_;) {
    uint8_t head[trace::compact::kChunkHeaderBytes];
    if (!pread_all(fd, head, sizeof head, at)) return false;
    if (!header_ok(trace::compact::check_chunk(head, sizeof head, &info)))
      return true;  // nothing readable: not ours to judge here
    buffer_.resize(info.size());
    if (!pread_all(fd, buffer_.data(), buffer_.size(), at)) return false;
    if (decode_buffer(&info))
      for (const auto& r : decoded_.records) fold_.head(r);
    at += info.size();
  }
  return true;
}

bool BoundedWindow::drop_front(int fd) {
  if (!head_folded_ && !fold_head(fd)) return false;
  const Placed p = window_.front();
  window_.pop_front();
  buffer_.resize(p.size - sizeof(trace::WindowFrame));
  if (!pread_all(fd, buffer_.data(), buffer_.size(), p.at + sizeof(trace::WindowFrame)))
    return false;
  trace::compact::ChunkInfo info;
  if (!decode_buffer(&info)) return true;
  for (size_t i = 0; i < decoded_.records.size(); ++i)
    fold_.drop(decoded_.records[i], decoded_.payload(i));
  return true;
}

bool BoundedWindow::write_digest(int fd, uint64_t next_index, uint64_t window_at) {
  const size_t capacity = std::min<size_t>(fold_.bound(), layout_.digest_bytes);
  buffer_.assign(capacity, 0);
  trace::DigestFrame frame{};
  frame.generation = generation_ + 1;
  frame.first_chunk = head_chunks_;
  frame.next_chunk = next_index;
  frame.window_at = window_at;
  const size_t size = fold_.encode(frame, buffer_.data(), buffer_.size());
  if (size == 0) {
    errno = EFBIG;  // the live set outgrew the digest slot (an eighth of the bound)
    return false;
  }
  ++generation_;
  const uint64_t at = layout_.digest_at[generation_ % 2];
  if (!pwrite_all(fd, buffer_.data(), size, at)) return false;
  file_end_ = std::max(file_end_, at + size);
  return true;
}

}  // namespace gpumem::detail
