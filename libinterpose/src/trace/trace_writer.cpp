// Opening, growing, appending to and closing the trace file. The commit protocol is described in
// trace_format.h and docs/trace-format.md.
#include "trace_writer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

namespace gpumem {
namespace {

using trace::Header;
using trace::Record;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kFirstGrowth = 4 * kMiB;    // the file starts with room for 64k records
constexpr uint64_t kMaxGrowth = 64 * kMiB;     // then doubles, by at most this much at a time
constexpr uint64_t kGrowAhead = 2 * kMiB;      // a writer this close to the end extends early
constexpr uint64_t kMappingBytes = 64 * kGiB;  // virtual range reserved; never backed beyond file
constexpr uint64_t kMinMappingBytes = 256 * kMiB;
// close() moves the cursor this far, so every later reservation lands past the mapping.
constexpr uint64_t kClosedCursorJump = 1ull << 62;

uint64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Extends fd to `bytes`, reserving the blocks so that a page written through the mapping later
// cannot fail for lack of disk space (that would be SIGBUS in the writer).
bool extend_file(int fd, uint64_t from, uint64_t bytes) {
  if (fallocate(fd, 0, static_cast<off_t>(from), static_cast<off_t>(bytes - from)) == 0)
    return true;
  if (errno != EOPNOTSUPP && errno != ENOSYS) return false;
  return ftruncate(fd, static_cast<off_t>(bytes)) == 0;
}

template <size_t N>
void terminate_string(char (&s)[N]) {
  s[N - 1] = '\0';
}

void commit(void* slot, uint32_t word, std::memory_order order) {
  std::atomic_ref<uint32_t>(static_cast<Record*>(slot)->commit).store(word, order);
}

}  // namespace

TraceWriter::~TraceWriter() {
  close();
  if (strings_ != nullptr) munmap(strings_, tables_bytes_);
}

bool TraceWriter::open(const char* path, const Header& header, char* err, size_t errlen) {
  auto fail = [&](const char* fmt, auto... args) {
    if (err != nullptr && errlen > 0) std::snprintf(err, errlen, fmt, args...);
    return false;
  };
  if (is_open()) return fail("gpumem: a trace is already open at '%s'; close it first", path_);
  if (path == nullptr || path[0] == '\0')
    return fail("gpumem: empty trace path; set GPUMEM_TRACE to a file path or to 'off'");
  if (std::strlen(path) >= sizeof(path_))
    return fail("gpumem: trace path is longer than %zu bytes; choose a shorter GPUMEM_TRACE",
                sizeof(path_) - 1);

  // O_NOFOLLOW: a symlink planted at the path (in a shared /tmp, say) must not make us write
  // through it. Nothing is truncated before the checks below have passed.
  int fd = ::open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == ELOOP)
      return fail(
          "gpumem: trace path '%s' is a symbolic link; refusing to write through it "
          "(it could point anywhere): remove it or choose another GPUMEM_TRACE path",
          path);
    return fail(
        "gpumem: cannot create trace file '%s': %s; choose a writable GPUMEM_TRACE path "
        "(or GPUMEM_TRACE=off)",
        path, std::strerror(errno));
  }
  auto fail_closing = [&](const char* fmt, auto... args) {
    ::close(fd);
    return fail(fmt, args...);
  };
  struct stat st;
  if (fstat(fd, &st) != 0)
    return fail_closing("gpumem: cannot stat trace file '%s': %s", path, std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return fail_closing(
        "gpumem: trace path '%s' exists and is not a regular file; refusing to "
        "write there: remove it or choose another GPUMEM_TRACE path",
        path);
  if (st.st_uid != geteuid())
    return fail_closing(
        "gpumem: trace path '%s' belongs to another user (uid %u); refusing to "
        "overwrite it: remove it or choose another GPUMEM_TRACE path",
        path, static_cast<unsigned>(st.st_uid));
  if (st.st_nlink > 1)
    return fail_closing(
        "gpumem: trace path '%s' has other hard links; refusing to overwrite the "
        "file they share: remove it or choose another GPUMEM_TRACE path",
        path);
  if ((st.st_mode & 07777) != 0600) fchmod(fd, 0600);  // an older file of ours: tighten it
  const uint64_t initial = trace::kHeaderSize + kFirstGrowth;
  if (ftruncate(fd, 0) != 0 || !extend_file(fd, 0, initial))
    return fail_closing(
        "gpumem: cannot size trace file '%s': %s; free disk space or choose "
        "another GPUMEM_TRACE path",
        path, std::strerror(errno));

  // Reserve a large virtual range once, so the file can grow without ever moving the mapping.
  void* map = MAP_FAILED;
  uint64_t mapped = kMappingBytes;
  for (; mapped >= kMinMappingBytes; mapped /= 2) {
    map = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (map != MAP_FAILED) break;
  }
  if (map == MAP_FAILED)
    return fail_closing(
        "gpumem: cannot map trace file '%s': %s; raise the address-space limit "
        "(ulimit -v) or set GPUMEM_TRACE=off",
        path, std::strerror(errno));

  // Dedup tables: anonymous memory, so the hot path never calls malloc. A new file needs empty
  // tables (ids from an earlier file, e.g. a forked parent's, mean nothing here).
  if (strings_ == nullptr) {
    tables_bytes_ = kStringTableSize * sizeof(StringSlot) + kStackTableSize * sizeof(StackSlot);
    void* t = mmap(nullptr, tables_bytes_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (t != MAP_FAILED) {
      strings_ = static_cast<StringSlot*>(t);
      stacks_ = reinterpret_cast<StackSlot*>(strings_ + kStringTableSize);
    }
  } else {
    madvise(strings_, tables_bytes_, MADV_DONTNEED);  // private anonymous: reads back as zeros
  }

  auto* h = static_cast<Header*>(map);
  std::memcpy(h, &header, sizeof(Header));
  std::memcpy(h->magic, trace::kMagic, sizeof(h->magic));
  h->version = trace::kVersion;
  h->header_size = trace::kHeaderSize;
  h->record_size = trace::kRecordSize;
  if (h->pid == 0) h->pid = static_cast<uint32_t>(getpid());
  if (h->clock_base_ns == 0) h->clock_base_ns = monotonic_ns();
  if (h->start_unix_ns == 0) h->start_unix_ns = realtime_ns();
  h->end_offset = 0;
  h->flags &= ~trace::kHeaderClosed;
  if (h->device_count > trace::kMaxDevices) h->device_count = trace::kMaxDevices;
  terminate_string(h->host);
  terminate_string(h->pool);
  terminate_string(h->command);
  terminate_string(h->config);
  for (auto& d : h->devices) terminate_string(d.name);

  std::memcpy(path_, path, std::strlen(path) + 1);
  fd_ = fd;
  mapped_bytes_ = mapped;
  cursor_.store(trace::kHeaderSize, std::memory_order_relaxed);
  file_bytes_.store(initial, std::memory_order_relaxed);
  dropped_.store(0, std::memory_order_relaxed);
  closing_.store(false, std::memory_order_relaxed);
  next_string_id_.store(1, std::memory_order_relaxed);
  next_stack_id_.store(1, std::memory_order_relaxed);
  end_at_close_ = 0;
  base_.store(static_cast<char*>(map), std::memory_order_release);
  return true;
}

bool TraceWriter::ensure_capacity(uint64_t end, bool wait) {
  std::unique_lock lock(grow_mutex_, std::defer_lock);
  if (wait) {
    lock.lock();
  } else if (!lock.try_lock()) {
    return false;  // another writer is extending the file already
  }
  uint64_t size = file_bytes_.load(std::memory_order_relaxed);
  if (end <= size) return true;
  if (closing_.load(std::memory_order_relaxed) || end > mapped_bytes_) return false;
  const uint64_t step = std::clamp(size - trace::kHeaderSize, kFirstGrowth, kMaxGrowth);
  uint64_t target = size;
  while (target < end) target += step;
  target = std::min(target, mapped_bytes_);
  if (!extend_file(fd_, size, target)) return false;
  file_bytes_.store(target, std::memory_order_release);
  return true;
}

char* TraceWriter::reserve(uint64_t bytes) {
  char* base = base_.load(std::memory_order_acquire);
  if (base == nullptr) return nullptr;
  const uint64_t offset = cursor_.fetch_add(bytes, std::memory_order_relaxed);
  const uint64_t end = offset + bytes;
  const uint64_t size = file_bytes_.load(std::memory_order_acquire);
  if (end + kGrowAhead > size) [[unlikely]] {
    if (end > size) {
      // Past the end of the file: touching it would be SIGBUS, so wait for the extension.
      if (!ensure_capacity(end, /*wait=*/true)) {
        dropped_.fetch_add(bytes / trace::kRecordSize, std::memory_order_relaxed);
        return nullptr;
      }
    } else {
      ensure_capacity(end + kGrowAhead, /*wait=*/false);  // extend early, if nobody else is
    }
  }
  return base + offset;
}

void TraceWriter::append(Record r) {
  if (r.t_ns == 0) r.t_ns = monotonic_ns();
  if (r.tid == 0) r.tid = current_tid();
  char* slot = reserve(trace::kRecordSize);
  if (slot == nullptr) return;
  std::memcpy(slot, &r, offsetof(Record, commit));
  commit(slot, trace::kCommitted, std::memory_order_release);
}

void TraceWriter::append_blob(trace::Op op, uint64_t id, const void* data, size_t len) {
  if (data == nullptr) len = 0;
  const uint64_t slots = (len + trace::kBlobBytesPerSlot - 1) / trace::kBlobBytesPerSlot;
  char* head = reserve((1 + slots) * trace::kRecordSize);
  if (head == nullptr) return;
  // Payload first, head last: a committed head always has its payload.
  const auto* src = static_cast<const char*>(data);
  for (uint64_t i = 0; i < slots; ++i) {
    char* slot = head + (i + 1) * trace::kRecordSize;
    const size_t done = i * trace::kBlobBytesPerSlot;
    const size_t chunk = std::min(trace::kBlobBytesPerSlot, len - done);
    std::memcpy(slot, src + done, chunk);
    std::memset(slot + chunk, 0, trace::kBlobBytesPerSlot - chunk);
    commit(slot, trace::kContinuation, std::memory_order_relaxed);
  }
  Record r{};
  r.t_ns = monotonic_ns();
  r.tid = current_tid();
  r.op = static_cast<uint16_t>(op);
  r.device = -1;
  r.address = slots;
  r.bytes = len;
  r.aux = id;
  std::memcpy(head, &r, offsetof(Record, commit));
  commit(head, trace::kCommitted, std::memory_order_release);
}

void TraceWriter::set_device(int device, uint64_t capacity, uint64_t limit, const char* name) {
  if (device < 0 || device >= trace::kMaxDevices) return;
  char* base = base_.load(std::memory_order_acquire);
  if (base == nullptr) return;
  {
    std::lock_guard lock(strings_mutex_);
    auto* h = reinterpret_cast<Header*>(base);
    trace::DeviceInfo& d = h->devices[device];
    if (std::atomic_ref<uint32_t>(d.present).load(std::memory_order_acquire) != 0) return;
    d.capacity_bytes = capacity;
    d.limit_bytes = limit;
    std::snprintf(d.name, sizeof(d.name), "%s", name != nullptr ? name : "");
    std::atomic_ref<uint32_t>(d.present).store(1, std::memory_order_release);
    std::atomic_ref<uint32_t> count(h->device_count);
    if (count.load(std::memory_order_relaxed) < static_cast<uint32_t>(device + 1))
      count.store(static_cast<uint32_t>(device + 1), std::memory_order_release);
  }
  Record r{};
  r.op = static_cast<uint16_t>(trace::Op::device_info);
  r.api = static_cast<uint16_t>(trace::Api::gpumem);
  r.device = static_cast<int16_t>(device);
  r.bytes = capacity;
  r.aux = limit;
  append(r);
}

uint64_t TraceWriter::records_written() const {
  uint64_t end = end_at_close_;
  if (is_open())
    end = std::min(cursor_.load(std::memory_order_relaxed),
                   file_bytes_.load(std::memory_order_relaxed));
  return end > trace::kHeaderSize ? (end - trace::kHeaderSize) / trace::kRecordSize : 0;
}

void TraceWriter::close() {
  char* base = base_.load(std::memory_order_acquire);
  if (base == nullptr) return;
  std::lock_guard lock(grow_mutex_);  // the file stops growing here
  closing_.store(true, std::memory_order_relaxed);
  const uint64_t size = file_bytes_.load(std::memory_order_relaxed);
  const uint64_t end = std::min(cursor_.fetch_add(kClosedCursorJump), size);
  end_at_close_ = end;
  auto* h = reinterpret_cast<Header*>(base);
  h->end_offset = end;
  std::atomic_ref<uint32_t>(h->flags).fetch_or(trace::kHeaderClosed, std::memory_order_release);
  base_.store(nullptr, std::memory_order_release);
  // An append racing with close may still hold a pointer into the file's pages: swap them for
  // anonymous memory (kept, address space only) so such a write is lost instead of faulting.
  mmap(base, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
       -1, 0);
  if (mapped_bytes_ > size) munmap(base + size, mapped_bytes_ - size);
  if (ftruncate(fd_, static_cast<off_t>(end)) != 0) {
    // The records are intact; the reader stops at end_offset and ignores the zero tail.
  }
  ::close(fd_);
  fd_ = -1;
}

void TraceWriter::abandon() {
  // Only the forking thread lives on in the child: a mutex another thread held at fork() would
  // stay locked forever, so start with fresh ones.
  new (&grow_mutex_) std::mutex();
  new (&strings_mutex_) std::mutex();
  char* base = base_.exchange(nullptr, std::memory_order_acq_rel);
  if (base != nullptr) munmap(base, mapped_bytes_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  end_at_close_ = 0;
}

}  // namespace gpumem
