// See read_ahead.h.
#include "read_ahead.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <new>

namespace gpumem::trace {

namespace {
constexpr uintptr_t kHugePage = 2 << 20;
constexpr size_t kRingBytes = ReadAhead::kChunkBytes * ReadAhead::kChunks;
constexpr size_t kRingMapBytes = kRingBytes + kHugePage;  // room to align the ring
}  // namespace

ssize_t read_at(int fd, char* dst, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, dst + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  // A truncation racing the copy can leave the bytes past the new end torn: some zeroed, some
  // stale (seen: the records after a cut mid-chunk delivered with a hole before them). Bytes
  // before the end the file has now were never touched by it, so keep only those.
  struct stat st;
  if (done > 0 && fstat(fd, &st) == 0 && static_cast<uint64_t>(st.st_size) < offset + done)
    done = static_cast<uint64_t>(st.st_size) > offset ? static_cast<size_t>(st.st_size - offset) : 0;
  return static_cast<ssize_t>(done);
}

ReadAhead::ReadAhead(int fd, size_t direct_bytes) : fd_(fd), direct_bytes_(direct_bytes) {
  if (direct_bytes_ != 0) return;  // its buffer is made by the first get()
  // One 2 MiB-aligned block for all chunks (pages are committed as they are first read into).
  // Not zeroed: only the bytes read are used.
  ring_ = mmap(nullptr, kRingMapBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ring_ == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = (reinterpret_cast<uintptr_t>(ring_) + kHugePage - 1) & ~(kHugePage - 1);
  for (int i = 0; i < kChunks; ++i)
    slots_[i].buffer = reinterpret_cast<Record*>(start + static_cast<uintptr_t>(i) * kChunkBytes);
}

void ReadAhead::start_thread() {
  // A trace long enough to read ahead: let the kernel back the ring with huge pages. The copy
  // into it then costs about a fifth less kernel time (docs/performance.md); a small trace, read
  // in one chunk, never pays for zeroing them.
  madvise(slots_[0].buffer, kRingBytes, MADV_HUGEPAGE);
  thread_ = std::thread([this] { run(); });
}

ReadAhead::~ReadAhead() {
  stop();
  if (thread_.joinable()) thread_.join();
  if (ring_ != nullptr) munmap(ring_, kRingMapBytes);
}

void ReadAhead::stop() {
  std::unique_lock lock(mutex_);
  stop_ = true;
  cv_.notify_all();
  cv_.wait(lock, [this] {
    return std::none_of(std::begin(slots_), std::end(slots_),
                        [](const Slot& s) { return s.state == Slot::reading; });
  });
}

ReadAhead::Slot* ReadAhead::slot_for(uint64_t offset) {
  for (Slot& s : slots_)
    if ((s.state == Slot::reading || s.state == Slot::ready) && s.offset == offset) return &s;
  return nullptr;
}

ReadAhead::Chunk ReadAhead::get(uint64_t offset, uint64_t end) {
  if (direct_bytes_ != 0) {
    const size_t len = static_cast<size_t>(std::min<uint64_t>(direct_bytes_, end - offset));
    // Not zeroed: only the bytes read are used. operator new's alignment suits a Record.
    if (!direct_) direct_ = std::make_unique_for_overwrite<char[]>(direct_bytes_);
    const ssize_t got = read_at(fd_, direct_.get(), len, offset);
    return {reinterpret_cast<Record*>(direct_.get()), got, got < 0 ? errno : 0};
  }
  std::unique_lock lock(mutex_);
  for (Slot& s : slots_)
    if (s.state == Slot::held) s.state = Slot::free;
  end_ = end;
  Slot* slot = slot_for(offset);
  if (slot == nullptr) {
    // A jump (or the first chunk): what was read ahead is of no use. Reads in flight cannot be
    // called back; let them end, then start over from `offset`.
    next_offset_ = end_;  // no new read starts meanwhile
    cv_.wait(lock, [this] {
      return std::none_of(std::begin(slots_), std::end(slots_),
                          [](const Slot& s) { return s.state == Slot::reading; });
    });
    for (Slot& s : slots_) s.state = Slot::free;
    const size_t len = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, end - offset));
    if (!thread_.joinable() && offset + len >= end) {
      // All that is left fits in one chunk, and no thread runs yet: read it here.
      slot = &slots_[0];
      slot->offset = offset;
      slot->len = len;
      slot->got = read_at(fd_, reinterpret_cast<char*>(slot->buffer), len, offset);
      slot->error = slot->got < 0 ? errno : 0;
      slot->state = Slot::held;
      return {slot->buffer, slot->got, slot->error};
    }
    next_offset_ = offset;
    if (!thread_.joinable()) start_thread();
    cv_.notify_all();
    cv_.wait(lock, [&] { return (slot = slot_for(offset)) != nullptr; });
  } else {
    cv_.notify_all();  // a slot was handed back: the thread may read on
  }
  // While the thread is still reading the chunk wanted, read the next one here rather than
  // sleep: when the caller's work on a chunk takes less time than reading one, both cores copy.
  while (slot->state != Slot::ready) {
    Slot* spare = nullptr;
    cv_.wait(lock, [&] { return slot->state == Slot::ready || (spare = claim()) != nullptr; });
    if (spare != nullptr) fill(spare, lock);
  }
  slot->state = Slot::held;
  return {slot->buffer, slot->got, slot->error};
}

ReadAhead::Slot* ReadAhead::claim() {
  if (stop_ || next_offset_ >= end_) return nullptr;
  for (Slot& s : slots_) {
    if (s.state != Slot::free) continue;
    s.state = Slot::reading;
    s.offset = next_offset_;
    s.len = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, end_ - next_offset_));
    next_offset_ += s.len;
    return &s;
  }
  return nullptr;
}

void ReadAhead::fill(Slot* slot, std::unique_lock<std::mutex>& lock) {
  char* dst = reinterpret_cast<char*>(slot->buffer);
  const size_t len = slot->len;
  const uint64_t offset = slot->offset;
  lock.unlock();
  const ssize_t got = read_at(fd_, dst, len, offset);
  const int error = got < 0 ? errno : 0;
  lock.lock();
  slot->got = got;
  slot->error = error;
  slot->state = Slot::ready;
  if (got < static_cast<ssize_t>(len)) next_offset_ = end_;  // the file ends sooner: stop there
  cv_.notify_all();
}

void ReadAhead::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    Slot* slot = nullptr;
    cv_.wait(lock, [&] { return stop_ || (slot = claim()) != nullptr; });
    if (stop_) return;
    fill(slot, lock);
  }
}

}  // namespace gpumem::trace
