// See decode_ahead.h.
#include "decode_ahead.h"

#include <algorithm>
#include <utility>

#include "read_ahead.h"

namespace gpumem::trace {

ChunkStep next_compact_chunk(int fd, uint64_t offset, uint64_t limit, std::vector<uint8_t>* body,
                             compact::DecodedChunk* out) {
  ChunkStep step;
  step.next_offset = offset;
  out->records.clear();
  for (;;) {
    uint8_t head[compact::kChunkHeaderBytes];
    if (read_at(fd, reinterpret_cast<char*>(head), sizeof head, offset) !=
        static_cast<ssize_t>(sizeof head))
      return step;
    compact::ChunkInfo info;
    const compact::ChunkCheck check = compact::check_chunk(head, sizeof head, &info);
    if (check == compact::ChunkCheck::bad_magic || check == compact::ChunkCheck::damaged)
      return step;  // zeros (the end) or a header no writer wrote
    if (offset + info.size() > limit) return step;  // cut, or a seal cut by a kill
    body->resize(info.size());
    if (read_at(fd, reinterpret_cast<char*>(body->data()), body->size(), offset) !=
        static_cast<ssize_t>(body->size()))
      return step;
    if (compact::decode_chunk(body->data(), body->size(), out, &info)) {
      step.found = true;
      step.next_offset = offset + info.size();
      ++step.chunks;
      return step;
    }
    // Damaged. A whole chunk after it: rot in the middle, skip it and count its records. At the
    // end: a seal that a kill cut short; its raw chunk is still in the ring.
    uint8_t after[compact::kChunkHeaderBytes];
    compact::ChunkInfo next_info;
    if (read_at(fd, reinterpret_cast<char*>(after), sizeof after, offset + info.size()) !=
            static_cast<ssize_t>(sizeof after) ||
        compact::check_chunk(after, sizeof after, &next_info) != compact::ChunkCheck::short_)
      return step;
    offset += info.size();
    step.next_offset = offset;
    ++step.chunks;
    ++step.damaged;
    step.torn += info.records;
  }
}

DecodeAhead::DecodeAhead(int fd, uint64_t offset, uint64_t limit)
    : fd_(fd), limit_(limit), walk_at_(offset) {
  thread_ = std::thread([this] { run(); });
}

DecodeAhead::~DecodeAhead() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  freed_.notify_all();
  thread_.join();
}

bool DecodeAhead::window_holds(uint64_t at, uint64_t len) {
  if (at >= window_at_ && at + len <= window_at_ + window_.size()) return true;
  window_.resize(std::max<uint64_t>(kWindowBytes, len));
  const ssize_t got = read_at(fd_, reinterpret_cast<char*>(window_.data()), window_.size(), at);
  window_.resize(got > 0 ? static_cast<size_t>(got) : 0);
  window_at_ = at;
  return window_.size() >= len;
}

DecodeAhead::Slot* DecodeAhead::claim() {
  if (stop_ || walk_ended_ || free_slots() == 0) return nullptr;
  // A sane header whose chunk the file holds within the limit: anything else ends the walk here.
  compact::ChunkInfo info;
  if (!window_holds(walk_at_, compact::kChunkHeaderBytes) ||
      compact::check_chunk(window_.data() + (walk_at_ - window_at_), compact::kChunkHeaderBytes,
                           &info) != compact::ChunkCheck::short_ ||
      walk_at_ + info.size() > limit_ || !window_holds(walk_at_, info.size())) {
    walk_ended_ = true;
    return nullptr;
  }
  Slot& slot = slots_[claimed_ % kSlots];
  slot.offset = walk_at_;
  slot.size = info.size();
  slot.state = Slot::decoding;
  const uint8_t* chunk = window_.data() + (walk_at_ - window_at_);
  slot.bytes.assign(chunk, chunk + info.size());
  walk_at_ += info.size();
  ++claimed_;
  return &slot;
}

void DecodeAhead::decode(Slot* slot, std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  const bool ok = compact::decode_chunk(slot->bytes.data(), slot->size, &slot->chunk, nullptr);
  lock.lock();
  slot->state = ok ? Slot::decoded : Slot::failed;
  if (caller_waiting_) decoded_.notify_one();
}

void DecodeAhead::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (Slot* slot = claim(); slot != nullptr) {
      decode(slot, lock);
      continue;
    }
    if (stop_ || walk_ended_) return;
    thread_waiting_ = true;
    freed_.wait(lock, [this] { return stop_ || walk_ended_ || free_slots() >= kWakeAtFree; });
    thread_waiting_ = false;
  }
}

bool DecodeAhead::next(compact::DecodedChunk* out, uint64_t* offset) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (consumed_ < claimed_) {
      Slot& slot = slots_[consumed_ % kSlots];
      if (slot.state == Slot::decoded) {
        std::swap(*out, slot.chunk);
        *offset = slot.offset + slot.size;
        ++consumed_;
        if (thread_waiting_ && free_slots() >= kWakeAtFree) freed_.notify_one();
        return true;
      }
      if (slot.state == Slot::failed) {
        out->records.clear();
        *offset = slot.offset;
        return false;
      }
    } else if (walk_ended_) {
      out->records.clear();
      *offset = walk_at_;
      return false;
    }
    // The chunk wanted is not decoded yet: decode the next one here rather than wait (or the one
    // wanted, when nobody has claimed it).
    if (Slot* spare = claim(); spare != nullptr) {
      decode(spare, lock);
      continue;
    }
    if (consumed_ == claimed_) continue;  // the walk ended in claim()
    caller_waiting_ = true;
    decoded_.wait(lock, [this] { return slots_[consumed_ % kSlots].state != Slot::decoding; });
    caller_waiting_ = false;
  }
}

}  // namespace gpumem::trace
