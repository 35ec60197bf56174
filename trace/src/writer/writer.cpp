// Opening, growing, appending to and closing the trace file. The commit protocol is described in
// gpumem/trace/format.h and docs/trace-format.md.
#include "gpumem/trace/writer.h"

#include "gpumem/trace/compact.h"
#include "gpumem/trace/format_v2.h"
#include "gpumem/units.h"
#include "positional_io.h"
#include "window.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
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

uint64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Extends fd to `bytes`, reserving the blocks so that a page written through the mapping later
// cannot fail for lack of disk space (that would be SIGBUS in the writer).
bool extend_file(int fd, uint64_t from, uint64_t bytes) {
  if (bytes > detail::file_size_limit()) {  // would be SIGXFSZ
    errno = EFBIG;
    return false;
  }
  if (fallocate(fd, 0, static_cast<off_t>(from), static_cast<off_t>(bytes - from)) == 0)
    return true;
  if (errno != EOPNOTSUPP && errno != ENOSYS) return false;
  // No fallocate on this file system: ftruncate alone would leave a hole, and a page of it
  // touched on a full disk is SIGBUS. Writing zeros takes the space now (or fails with ENOSPC).
  static const char kZeros[64 * 1024] = {};
  for (uint64_t at = from; at < bytes;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof kZeros, bytes - at));
    if (!detail::pwrite_all(fd, kZeros, n, at)) return false;
    at += n;
  }
  return true;
}

// The virtual range a raw trace reserves: 64 GiB, or under an address-space limit (ulimit -v) an
// eighth of it (not under 256 MiB), so that the program keeps the rest. Taking all the limit
// allowed (the reservation halving until it fitted) left a program that maps 5/8 of its limit
// after its first CUDA call failing under gpumem where it ran without.
uint64_t mapping_bytes_for_limits() {
  rlimit as{};
  if (getrlimit(RLIMIT_AS, &as) != 0 || as.rlim_cur == RLIM_INFINITY) return kMappingBytes;
  const uint64_t share = std::bit_floor(static_cast<uint64_t>(as.rlim_cur) / 8);
  return std::clamp(share, kMinMappingBytes, kMappingBytes);
}

template <size_t N>
void terminate_string(char (&s)[N]) {
  s[N - 1] = '\0';
}

void commit(void* slot, uint32_t word, std::memory_order order) {
  std::atomic_ref<uint32_t>(static_cast<Record*>(slot)->commit).store(word, order);
}

void warn_to_stderr(const char* line) {
  char buf[768];
  const int n = std::snprintf(buf, sizeof buf, "gpumem: %s\n", line);
  if (n <= 0) return;
  ssize_t ignored = ::write(STDERR_FILENO, buf, std::min(static_cast<size_t>(n), sizeof buf - 1));
  (void)ignored;
}

// Appends in flight, so that close() can wait for them and mark the unfinished ones: one entry
// per thread, which only that thread writes (no shared cache line on the hot path). The entry
// holds the address of the slot being written, kReserving between announcing an append and
// knowing its slot, 0 when idle. Process-wide (an address tells which writer it belongs to).
struct alignas(64) InFlight {
  std::atomic<uintptr_t> slot{0};
  std::atomic<uint64_t> slots{0};  // slots of that reservation (a blob's payload too)
  std::atomic<uint32_t> owner{0};  // tid of the thread holding the entry, 0 = free
};
constexpr size_t kInFlightEntries = 1024;
constexpr uintptr_t kReserving = 1;
InFlight g_in_flight[kInFlightEntries];
std::atomic<uint32_t> g_in_flight_used{0};  // entries handed out so far
// Appends of threads beyond the table's size (more than kInFlightEntries alive at once): only
// counted, so close() can wait for them but not mark them.
std::atomic<uint64_t> g_untracked_in_flight{0};
thread_local InFlight* t_in_flight __attribute__((tls_model("initial-exec"))) = nullptr;
thread_local bool t_no_entry __attribute__((tls_model("initial-exec"))) = false;

// A thread's first append: a fresh entry, or the entry of a thread that has exited.
InFlight* claim_in_flight() {
  const uint32_t tid = current_tid();
  uint32_t used = g_in_flight_used.load(std::memory_order_relaxed);
  while (used < kInFlightEntries) {
    if (g_in_flight_used.compare_exchange_weak(used, used + 1, std::memory_order_relaxed)) {
      g_in_flight[used].owner.store(tid, std::memory_order_relaxed);
      return &g_in_flight[used];
    }
  }
  const long pid = static_cast<long>(getpid());
  for (InFlight& e : g_in_flight) {
    uint32_t owner = e.owner.load(std::memory_order_relaxed);
    if (owner == 0 || owner == tid || e.slot.load(std::memory_order_relaxed) != 0) continue;
    if (syscall(SYS_tgkill, pid, static_cast<long>(owner), 0) == 0 || errno != ESRCH) continue;
    if (e.owner.compare_exchange_strong(owner, tid, std::memory_order_relaxed)) return &e;
  }
  return nullptr;
}

// Announces an append before its slot is reserved (begin_append), names the slot once it is known
// (writing_slot) and clears the announcement when the slot is committed or the append gave up
// (end_append). Plain stores to the thread's own entry: the ordering with close() comes from the
// cursor's fetch_add (release here, acquire in close()). Free functions on locals, so that the
// compiler keeps everything in registers.
struct Announced {
  InFlight* entry;
  uintptr_t outer;  // non-zero only when a signal handler appends in the middle of this thread's
  uint64_t outer_slots;  // own append: that one is announced again when the handler's is done
};

[[gnu::always_inline]] inline Announced begin_append() {
  Announced a{t_in_flight, 0, 0};
  if (a.entry == nullptr && !t_no_entry) [[unlikely]] {
    a.entry = t_in_flight = claim_in_flight();
    t_no_entry = a.entry == nullptr;
  }
  if (a.entry == nullptr) [[unlikely]] {
    g_untracked_in_flight.fetch_add(1, std::memory_order_relaxed);
    return a;
  }
  a.outer = a.entry->slot.load(std::memory_order_relaxed);
  if (a.outer != 0) [[unlikely]]
    a.outer_slots = a.entry->slots.load(std::memory_order_relaxed);
  a.entry->slot.store(kReserving, std::memory_order_relaxed);
  return a;
}

[[gnu::always_inline]] inline void writing_slot(const Announced& a, char* slot, uint64_t slots) {
  if (a.entry == nullptr) [[unlikely]]
    return;
  a.entry->slots.store(slots, std::memory_order_relaxed);
  a.entry->slot.store(reinterpret_cast<uintptr_t>(slot), std::memory_order_release);
}

[[gnu::always_inline]] inline void end_append(const Announced& a) {
  if (a.entry == nullptr) [[unlikely]] {
    g_untracked_in_flight.fetch_sub(1, std::memory_order_release);
    return;
  }
  if (a.outer != 0) [[unlikely]]
    a.entry->slots.store(a.outer_slots, std::memory_order_relaxed);
  a.entry->slot.store(a.outer, std::memory_order_release);
}

}  // namespace

TraceWriter::~TraceWriter() {
  close();
  if (strings_ != nullptr) munmap(strings_, tables_bytes_);
  if (seal_buffer_ != nullptr) munmap(seal_buffer_, seal_buffer_bytes_);
}

bool TraceWriter::open(const char* path, const Header& header, char* err, size_t errlen) {
  bool exists = false;
  return create(path, header, err, errlen, &exists);
}

bool TraceWriter::open_unused(const char* wanted, const Header& header, char* err, size_t errlen) {
  if (wanted == nullptr || wanted[0] == '\0') return open(wanted, header, err, errlen);
  char* candidate = candidate_;
  for (unsigned long i = 0; i <= kMaxSuffix; ++i) {
    const int n = i == 0 ? std::snprintf(candidate, sizeof candidate_, "%s", wanted)
                         : std::snprintf(candidate, sizeof candidate_, "%s.%lu", wanted, i);
    if (n < 0 || static_cast<size_t>(n) >= sizeof candidate_)
      return open(wanted, header, err, errlen);
    bool exists = false;
    if (create(candidate, header, err, errlen, &exists)) return true;
    if (!exists) return false;
  }
  if (err != nullptr && errlen > 0)
    std::snprintf(err, errlen,
                  "gpumem: '%s' and '%s.1' to '%s.%lu' all exist already; remove old traces or "
                  "choose another GPUMEM_TRACE path",
                  wanted, wanted, wanted, kMaxSuffix);
  return false;
}

bool TraceWriter::create(const char* path, const Header& header, char* err, size_t errlen,
                         bool* exists) {
  *exists = false;
  auto fail = [&](const char* fmt, auto... args) {
    if (err == nullptr || errlen == 0) return false;
    if constexpr (sizeof...(args) == 0)
      std::snprintf(err, errlen, "%s", fmt);  // a message without conversions is printed as is
    else
      std::snprintf(err, errlen, fmt, args...);
    return false;
  };
  if (is_open()) return fail("gpumem: a trace is already open at '%s'; close it first", path_);
  if (path == nullptr || path[0] == '\0')
    return fail("gpumem: empty trace path; set GPUMEM_TRACE to a file path or to 'off'");
  if (std::strlen(path) >= sizeof(path_))
    return fail("gpumem: trace path is longer than %zu bytes; choose a shorter GPUMEM_TRACE",
                sizeof(path_) - 1);

  // O_EXCL: only a file this call creates is ever written, so two processes given the same name
  // never share (or truncate) one file. With O_CREAT it also refuses a symlink at the path, even
  // a dangling one, so a link planted in a shared /tmp never makes us write through it.
  int fd = ::open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int error = errno;
    struct stat st;
    if (error == EEXIST && ::lstat(path, &st) == 0) {
      *exists = true;
      if (S_ISLNK(st.st_mode))
        return fail(
            "gpumem: trace path '%s' is a symbolic link; refusing to write through it "
            "(it could point anywhere): remove it or choose another GPUMEM_TRACE path",
            path);
      if (!S_ISREG(st.st_mode))
        return fail(
            "gpumem: trace path '%s' exists and is not a regular file; refusing to "
            "write there: remove it or choose another GPUMEM_TRACE path",
            path);
      if (st.st_uid != geteuid())
        return fail(
            "gpumem: trace path '%s' belongs to another user (uid %u); refusing to "
            "overwrite it: remove it or choose another GPUMEM_TRACE path",
            path, static_cast<unsigned>(st.st_uid));
      if (st.st_nlink > 1)
        return fail(
            "gpumem: trace path '%s' has other hard links; refusing to overwrite the "
            "file they share: remove it or choose another GPUMEM_TRACE path",
            path);
      return fail(
          "gpumem: trace path '%s' exists already; refusing to overwrite it: remove it or "
          "choose another GPUMEM_TRACE path",
          path);
    }
    *exists = error == EEXIST;
    return fail(
        "gpumem: cannot create trace file '%s': %s; choose a writable GPUMEM_TRACE path "
        "(or GPUMEM_TRACE=off)",
        path, std::strerror(error));
  }
  // Off descriptors 0-2: with stderr closed the file would be fd 2, and every log line would
  // land in the trace's header.
  if (fd < 3) {
    const int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    const int error = errno;
    ::close(fd);
    if (high < 0) {
      ::unlink(path);
      return fail(
          "gpumem: cannot move trace file '%s' off descriptors 0-2: %s; set "
          "GPUMEM_TRACE=off or raise the open-files limit (ulimit -n)",
          path, std::strerror(error));
    }
    fd = high;
  }
  // What this call created is removed again when the rest of the open fails: no empty file left.
  auto fail_removing = [&](const char* fmt, auto... args) {
    ::close(fd);
    ::unlink(path);
    return fail(fmt, args...);
  };
  struct stat st;
  if (fstat(fd, &st) != 0)
    return fail_removing("gpumem: cannot stat trace file '%s': %s", path, std::strerror(errno));
  if ((st.st_mode & 07777) != 0600) fchmod(fd, 0600);  // a umask never widens (or narrows) it
  const char* wanted_format = secure_getenv("GPUMEM_TRACE_FORMAT");
  // GPUMEM_TRACE_MAX (checked by the preload's settings parser): a bounded trace is compact.
  uint64_t max_bytes = max_bytes_;
  if (max_bytes == 0 && format_ == Format::from_environment) {
    const char* wanted_max = secure_getenv("GPUMEM_TRACE_MAX");
    if (wanted_max != nullptr && wanted_max[0] != '\0' &&
        parse_size(wanted_max, &max_bytes) != SizeParse::ok)
      max_bytes = 0;
  }
  if (max_bytes != 0) max_bytes = std::max(max_bytes, trace::kMinTraceMax);
  const bool compact = format_ == Format::compact || max_bytes != 0 ||
                       (format_ == Format::from_environment && wanted_format != nullptr &&
                        std::strcmp(wanted_format, "compact") == 0);
  if (format_ == Format::from_environment && wanted_format != nullptr && !compact &&
      wanted_format[0] != '\0' && std::strcmp(wanted_format, "raw") != 0) {
    char line[320];
    std::snprintf(line, sizeof line,
                  "GPUMEM_TRACE_FORMAT='%.100s' is neither 'compact' nor 'raw': the trace is "
                  "written raw (version 1); set GPUMEM_TRACE_FORMAT=compact for the compact one",
                  wanted_format);
    (warning_sink_ != nullptr ? warning_sink_ : warn_to_stderr)(line);
  }
  const uint64_t ring = compact ? uint64_t{kRingChunks} * kChunkSlots * trace::kRecordSize : 0;
  // The compact format's file starts as the header and the ring; compact chunks are appended.
  const uint64_t initial = trace::kHeaderSize + (compact ? ring : kFirstGrowth);
  const bool sized = extend_file(fd, 0, initial);
  if (!sized && errno == EFBIG)
    return fail_removing(
        "gpumem: cannot size trace file '%s' to %llu bytes: the file-size limit (ulimit -f) is "
        "%llu bytes; raise it or set GPUMEM_TRACE=off",
        path, static_cast<unsigned long long>(initial),
        static_cast<unsigned long long>(detail::file_size_limit()));
  if (!sized)
    return fail_removing(
        "gpumem: cannot size trace file '%s': %s; free disk space or choose "
        "another GPUMEM_TRACE path",
        path, std::strerror(errno));

  // Reserve a large virtual range once, so the file can grow without ever moving the mapping.
  void* map = MAP_FAILED;
  uint64_t mapped = mapping_bytes_for_limits();
  if (compact) {
    // The header and the ring, then the ring again right after it: a reservation that wraps
    // around the ring's end is one contiguous run of slots.
    mapped = trace::kHeaderSize + 2 * ring;
    map = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (map != MAP_FAILED &&
        mmap(static_cast<char*>(map) + trace::kHeaderSize + ring, ring, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_FIXED, fd, trace::kHeaderSize) == MAP_FAILED) {
      munmap(map, mapped);
      map = MAP_FAILED;
    }
    if (map != MAP_FAILED && seal_buffer_ == nullptr) {
      seal_buffer_bytes_ = trace::compact::kChunkHeaderBytes +
                           kChunkSlots * (trace::compact::kMaxRecordBytes + trace::kBlobBytesPerSlot) +
                           kChunkSlots * trace::kBlobBytesPerSlot;
      void* b = mmap(nullptr, seal_buffer_bytes_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (b == MAP_FAILED) {
        munmap(map, mapped);
        map = MAP_FAILED;
      } else {
        seal_buffer_ = static_cast<unsigned char*>(b);
      }
    }
  }
  for (; !compact && mapped >= kMinMappingBytes; mapped /= 2) {
    map = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (map != MAP_FAILED) break;
  }
  if (map == MAP_FAILED)
    return fail_removing(
        "gpumem: cannot map trace file '%s': %s; raise the address-space limit "
        "(ulimit -v) or set GPUMEM_TRACE=off",
        path, std::strerror(errno));

  // Dedup tables: anonymous memory, so the hot path never calls malloc. A new file needs empty
  // tables (ids from an earlier file, e.g. a forked parent's, mean nothing here).
  if (strings_ == nullptr) {
    tables_bytes_ = kStringTableSize * sizeof(StringSlot) + kStackTableSize * sizeof(StackSlot) +
                    kPcTableSize * sizeof(std::atomic<uint64_t>) + kStringArenaBytes +
                    kStackArenaPcs * sizeof(uint64_t);
    void* t = mmap(nullptr, tables_bytes_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (t != MAP_FAILED) {
      strings_ = static_cast<StringSlot*>(t);
      stacks_ = reinterpret_cast<StackSlot*>(strings_ + kStringTableSize);
      pcs_ = reinterpret_cast<std::atomic<uint64_t>*>(stacks_ + kStackTableSize);
      string_arena_ = reinterpret_cast<char*>(pcs_ + kPcTableSize);
      stack_arena_ = reinterpret_cast<uint64_t*>(string_arena_ + kStringArenaBytes);
    }
  } else {
    madvise(strings_, tables_bytes_, MADV_DONTNEED);  // private anonymous: reads back as zeros
  }

  auto* h = static_cast<Header*>(map);
  std::memcpy(h, &header, sizeof(Header));
  std::memcpy(h->magic, trace::kMagic, sizeof(h->magic));
  h->version = compact ? trace::kVersionCompact : trace::kVersion;
  std::memset(h->reserved0, 0, sizeof h->reserved0);
  if (compact) {
    const trace::CompactLayout layout{kChunkSlots, kRingChunks, trace::kHeaderSize + ring, 0,
                                      trace::kHeaderSize + ring, max_bytes};
    std::memcpy(h->reserved0, &layout, sizeof layout);
    trace::BoundedLayout bounded;
    window_ = max_bytes != 0 && trace::bounded_layout(layout, &bounded)
                  ? new detail::BoundedWindow(
                        bounded, kChunkSlots,
                        kChunkSlots * (trace::compact::kMaxRecordBytes + trace::kBlobBytesPerSlot))
                  : nullptr;
  }
  h->header_size = trace::kHeaderSize;
  h->record_size = trace::kRecordSize;
  if (h->pid == 0) h->pid = static_cast<uint32_t>(getpid());
  if (h->clock_base_ns == 0) h->clock_base_ns = monotonic_ns();
  if (h->start_unix_ns == 0) h->start_unix_ns = realtime_ns();
  h->end_offset = 0;
  h->records_dropped = 0;
  h->flags &= ~trace::kHeaderClosed;
  if (h->device_count > trace::kMaxDevices) h->device_count = trace::kMaxDevices;
  terminate_string(h->host);
  terminate_string(h->pool);
  terminate_string(h->command);
  terminate_string(h->config);
  for (auto& d : h->devices) terminate_string(d.name);

  std::memcpy(path_, path, std::strlen(path) + 1);
  // Built in place (no 4 KiB buffer on the stack of the thread that opens the trace).
  if (path[0] == '/') {
    std::snprintf(absolute_path_, sizeof absolute_path_, "%s", path);
  } else if (getcwd(absolute_path_, sizeof absolute_path_) != nullptr) {
    const size_t used = std::strlen(absolute_path_);
    const size_t room = sizeof absolute_path_ - used;
    if (std::snprintf(absolute_path_ + used, room, "/%s", path) >= static_cast<int>(room))
      absolute_path_[0] = '\0';
  } else {
    absolute_path_[0] = '\0';
  }
  file_dev_ = st.st_dev;
  file_ino_ = st.st_ino;
  fd_ = fd;
  mapped_bytes_ = mapped;
  cursor_.store(trace::kHeaderSize, std::memory_order_relaxed);
  file_bytes_.store(compact ? kClosedCursor : initial, std::memory_order_relaxed);
  ring_bytes_ = ring;
  map_ = static_cast<char*>(map);
  sealed_.store(0, std::memory_order_relaxed);
  compact_end_ = trace::kHeaderSize + ring;
  spill_slots_ = 0;
  dropped_.store(0, std::memory_order_relaxed);
  full_.store(false, std::memory_order_relaxed);
  full_errno_.store(0, std::memory_order_relaxed);
  reservation_full_.store(false, std::memory_order_relaxed);
  closing_.store(false, std::memory_order_relaxed);
  next_string_id_.store(1, std::memory_order_relaxed);
  next_stack_id_.store(1, std::memory_order_relaxed);
  string_arena_used_ = 0;
  stack_arena_used_.store(0, std::memory_order_relaxed);
  end_at_close_ = 0;
  base_.store(static_cast<char*>(map), std::memory_order_release);
  return true;
}

bool TraceWriter::names_trace_file(int fd) const {
  struct stat st;
  return fstat(fd, &st) == 0 && st.st_dev == file_dev_ && st.st_ino == file_ino_;
}

int TraceWriter::file_fd() {
  if (fd_ >= 0 && names_trace_file(fd_)) return fd_;
  // fd_'s number is someone else's now (or closed): never close it. The mapping still writes to
  // the file, so only growing, sealing and trimming need it opened again.
  fd_ = -1;
  if (absolute_path_[0] != '\0') {
    int fd = ::open(absolute_path_, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && fd < 3) {  // off 0-2, which the program is about to reopen as stdio
      const int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      ::close(fd);
      fd = high;
    }
    if (fd >= 0 && names_trace_file(fd)) return fd_ = fd;
    if (fd >= 0) ::close(fd);
  }
  errno = EBADF;
  return -1;
}

bool TraceWriter::ensure_capacity(uint64_t end, bool wait) {
  if (full_.load(std::memory_order_acquire)) return false;  // tried once, failed: never again
  // A signal handler interrupting this thread's own extension: the record is dropped (counted).
  if (grow_mutex_.held_here()) return false;
  std::unique_lock lock(grow_mutex_, std::defer_lock);
  if (wait) {
    lock.lock();
  } else if (!lock.try_lock()) {
    return false;  // another writer is extending the file already
  }
  uint64_t size = file_bytes_.load(std::memory_order_relaxed);
  if (end <= size) return true;
  if (closing_.load(std::memory_order_relaxed) || full_.load(std::memory_order_relaxed))
    return false;
  if (end > mapped_bytes_) {
    reservation_full_.store(true, std::memory_order_relaxed);
    full_errno_.store(EFBIG, std::memory_order_relaxed);
    full_.store(true, std::memory_order_release);
    return false;
  }
  const uint64_t step = std::clamp(size - trace::kHeaderSize, kFirstGrowth, kMaxGrowth);
  uint64_t target = size;
  while (target < end) target += step;
  // Up to the file-size limit, when that still holds `end` (past it extend_file refuses).
  target = std::min({target, mapped_bytes_, std::max(end, detail::file_size_limit())});
  if (!extend_file(file_fd(), size, target)) {
    // A full disk (or a file-size limit): retrying for every later record would cost a system
    // call each (~1500x slower) for nothing. What fits in the file so far is still written.
    full_errno_.store(errno, std::memory_order_relaxed);
    full_.store(true, std::memory_order_release);
    return false;
  }
  file_bytes_.store(target, std::memory_order_release);
  return true;
}

void TraceWriter::note_dropped() {
  const uint64_t before = dropped_.fetch_add(1, std::memory_order_relaxed);
  // Into the header as it happens (its page is allocated, so this write cannot fail), so that a
  // process killed later still tells how many records it lost.
  if (char* base = base_.load(std::memory_order_acquire); base != nullptr)
    std::atomic_ref<uint64_t>(reinterpret_cast<Header*>(base)->records_dropped)
        .fetch_add(1, std::memory_order_relaxed);
  if (before != 0) return;
  const int error = full_errno_.load(std::memory_order_relaxed);
  char line[768];
  const char* base = base_.load(std::memory_order_acquire);
  if (error == EBADF) {
    std::snprintf(line, sizeof line,
                  "the program closed the trace file's descriptor, and '%.300s' cannot be opened "
                  "again (moved or removed?); records from here on are dropped, and counted in "
                  "the trace, which every report then shows as incomplete: leave the trace file "
                  "in place while the program runs",
                  path_);
    (warning_sink_ != nullptr ? warning_sink_ : warn_to_stderr)(line);
    return;
  }
  if (reservation_full_.load(std::memory_order_relaxed)) {
    rlimit as{};
    const bool limited = getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY;
    std::snprintf(line, sizeof line,
                  "the trace '%.280s' filled the %llu MiB of address space reserved for it%s; "
                  "records from here on are dropped, and counted in the trace, which every report "
                  "then shows as incomplete: %s",
                  path_, static_cast<unsigned long long>(mapped_bytes_ >> 20),
                  limited ? " (an eighth of the address-space limit, ulimit -v)" : "",
                  limited ? "raise the limit (ulimit -v unlimited) or write the compact format "
                            "(GPUMEM_TRACE_FORMAT=compact), whose mapping stays small"
                          : "write the compact format (GPUMEM_TRACE_FORMAT=compact)");
    (warning_sink_ != nullptr ? warning_sink_ : warn_to_stderr)(line);
    return;
  }
  if (error == EFBIG && detail::file_size_limit() != UINT64_MAX) {
    std::snprintf(line, sizeof line,
                  "cannot grow the trace file '%.300s' past the file-size limit (ulimit -f, %llu "
                  "bytes); records from here on are dropped, and counted in the trace, which "
                  "every report then shows as incomplete: raise the limit (ulimit -f unlimited)",
                  path_, static_cast<unsigned long long>(detail::file_size_limit()));
    (warning_sink_ != nullptr ? warning_sink_ : warn_to_stderr)(line);
    return;
  }
  if (error == EFBIG && base != nullptr &&
      trace::compact_layout(*reinterpret_cast<const Header*>(base)).max_bytes != 0) {
    // A bounded trace whose digest (what it keeps of the dropped middle) outgrew its slot.
    std::snprintf(line, sizeof line,
                  "the trace '%.300s' cannot stay within GPUMEM_TRACE_MAX: the allocations live "
                  "across its dropped middle no longer fit in an eighth of the bound; records "
                  "from here on are dropped, and counted in the trace, which every report then "
                  "shows as incomplete: raise GPUMEM_TRACE_MAX",
                  path_);
    (warning_sink_ != nullptr ? warning_sink_ : warn_to_stderr)(line);
    return;
  }
  std::snprintf(line, sizeof line,
                "cannot grow the trace file '%.300s' (%s); records from here on are dropped, and "
                "counted in the trace, which every report then shows as incomplete: free disk "
                "space or set GPUMEM_TRACE to a larger volume",
                path_, std::strerror(error != 0 ? error : ENOSPC));
  (warning_sink_ != nullptr ? warning_sink_ : warn_to_stderr)(line);
}

bool TraceWriter::grow_for(uint64_t end, uint64_t size) {
  if (end <= size) {
    ensure_capacity(end + kGrowAhead, /*wait=*/false);  // extend early, if nobody else is
    return true;
  }
  // Past the end of the file: touching it would be SIGBUS, so wait for the extension.
  if (ensure_capacity(end, /*wait=*/true)) return true;
  // A reservation racing with close() is not a record lost from the trace: its call had not
  // returned when the process ended.
  if (!closing_.load(std::memory_order_relaxed)) note_dropped();
  return false;
}

// Inlined into both appends: the common path is a handful of instructions.
[[gnu::always_inline]] inline char* TraceWriter::reserve(uint64_t bytes) {
  char* base = base_.load(std::memory_order_acquire);
  if (base == nullptr) return nullptr;
  // acq_rel: publishes this thread's in-flight announcement to close(), whose own fetch_add on
  // the cursor comes after this one when the slot lies inside the file.
  const uint64_t offset = cursor_.fetch_add(bytes, std::memory_order_acq_rel);
  if (ring_bytes_ != 0) return reserve_ring(base, offset, bytes);
  const uint64_t end = offset + bytes;
  const uint64_t size = file_bytes_.load(std::memory_order_acquire);
  if (end + kGrowAhead > size) [[unlikely]] {
    if (!grow_for(end, size)) return nullptr;
  }
  return base + offset;
}

void TraceWriter::append(Record r) {
  if (r.t_ns == 0) r.t_ns = monotonic_ns();
  if (r.tid == 0) r.tid = current_tid();
  const Announced announced = begin_append();
  if (char* slot = reserve(trace::kRecordSize); slot != nullptr) [[likely]] {
    writing_slot(announced, slot, 1);
    std::memcpy(slot, &r, offsetof(Record, commit));
    commit(slot, trace::kCommitted, std::memory_order_release);
  }
  end_append(announced);
}

void TraceWriter::append_blob(trace::Op op, uint64_t id, const void* data, size_t len) {
  if (data == nullptr) len = 0;
  // The compact format seals a blob with the chunk of its head: it must fit in one chunk.
  if (ring_bytes_ != 0) len = std::min<size_t>(len, (kChunkSlots - 1) * trace::kBlobBytesPerSlot);
  const uint64_t slots = (len + trace::kBlobBytesPerSlot - 1) / trace::kBlobBytesPerSlot;
  const Announced announced = begin_append();
  char* head = reserve((1 + slots) * trace::kRecordSize);
  if (head == nullptr) return end_append(announced);
  writing_slot(announced, head, 1 + slots);
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
  end_append(announced);
}

bool TraceWriter::set_device(int device, uint64_t capacity, uint64_t limit, const char* name) {
  if (device < 0 || device >= trace::kMaxDevices) return true;
  char* base = base_.load(std::memory_order_acquire);
  if (base == nullptr) return true;
  // A signal handler that interrupted this thread inside the table: not now (the caller asks
  // again at the device's next event).
  if (strings_mutex_.held_here()) return false;
  {
    std::lock_guard lock(strings_mutex_);
    auto* h = reinterpret_cast<Header*>(base);
    trace::DeviceInfo& d = h->devices[device];
    if (std::atomic_ref<uint32_t>(d.present).load(std::memory_order_acquire) != 0) return true;
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
  return true;
}

void TraceWriter::set_pool(const char* name) {
  char* base = base_.load(std::memory_order_acquire);
  if (base == nullptr || name == nullptr || strings_mutex_.held_here()) return;
  std::lock_guard lock(strings_mutex_);
  auto* h = reinterpret_cast<Header*>(base);
  std::snprintf(h->pool, sizeof h->pool, "%s", name);
}

uint64_t TraceWriter::records_written() const {
  uint64_t end = end_at_close_;
  if (is_open())
    end = std::min(cursor_.load(std::memory_order_relaxed),
                   file_bytes_.load(std::memory_order_relaxed));
  return end > trace::kHeaderSize ? (end - trace::kHeaderSize) / trace::kRecordSize : 0;
}

void TraceWriter::settle_in_flight(char* base, uint64_t cursor_at_close) {
  // Slots below the cursor as it was at close belong to appends that were reserved before it;
  // those reserved later land past the file. Wait for the first kind, briefly: a thread that
  // called exit() must not be held up by others that go on appending.
  const uintptr_t low = reinterpret_cast<uintptr_t>(base) + trace::kHeaderSize;
  const uintptr_t high =
      reinterpret_cast<uintptr_t>(base) +
      (ring_bytes_ != 0 ? mapped_bytes_ : std::min(cursor_at_close, mapped_bytes_));
  auto ours = [&](uintptr_t slot) { return slot == kReserving || (slot >= low && slot < high); };
  const uint32_t used =
      std::min<uint32_t>(g_in_flight_used.load(std::memory_order_acquire), kInFlightEntries);
  const uint64_t deadline = monotonic_ns() + kCloseWaitNs;
  bool timed_out = false;
  for (;;) {
    bool pending = g_untracked_in_flight.load(std::memory_order_acquire) != 0;
    for (uint32_t i = 0; i < used && !pending; ++i)
      // This thread's own entry is an append that a signal handler (calling exit) interrupted:
      // it cannot finish while we wait.
      pending = &g_in_flight[i] != t_in_flight &&
                ours(g_in_flight[i].slot.load(std::memory_order_acquire));
    if (!pending) break;
    if (monotonic_ns() > deadline) {
      timed_out = true;
      break;
    }
    sched_yield();
  }
  // Still unfinished: mark the slots, so that the reader skips them as "in flight at exit"
  // rather than "torn by a kill". A slot committed meanwhile keeps its commit word.
  auto abandon = [](char* at) {
    std::atomic_ref<uint32_t> word(reinterpret_cast<Record*>(at)->commit);
    uint32_t seen = word.load(std::memory_order_acquire);
    while (seen != trace::kCommitted && seen != trace::kContinuation && seen != trace::kAbandoned &&
           !word.compare_exchange_weak(seen, trace::kAbandoned, std::memory_order_acq_rel)) {
    }
  };
  // An append announced after the wait reserves past the file: only one still announced when the
  // wait gave up (or this thread's own) may hold a slot below the end that nobody has named.
  bool unknown_slot = timed_out && g_untracked_in_flight.load(std::memory_order_acquire) != 0;
  for (uint32_t i = 0; i < used; ++i) {
    const uintptr_t slot = g_in_flight[i].slot.load(std::memory_order_acquire);
    if (slot == kReserving && (timed_out || &g_in_flight[i] == t_in_flight)) unknown_slot = true;
    if (slot == kReserving || !ours(slot)) continue;
    const uint64_t slots = g_in_flight[i].slots.load(std::memory_order_relaxed);
    for (uint64_t k = 0; k < slots; ++k) {
      char* at = reinterpret_cast<char*>(slot) + k * trace::kRecordSize;
      if (reinterpret_cast<uintptr_t>(at) >= high) break;
      abandon(at);
    }
  }
  if (!unknown_slot) return;
  // A thread stopped between reserving its slot and naming it (a few instructions), or one
  // without an entry: its slot is unknown, but every slot below the end that is not committed
  // by now is in flight. Rare (a thread stopped there for all of the wait), so a scan is fine.
  if (ring_bytes_ != 0) {  // the slots not sealed yet, in the ring
    const uint64_t from = trace::kHeaderSize + sealed_.load(std::memory_order_acquire) *
                                                   kChunkSlots * trace::kRecordSize;
    const uint64_t to =
        std::min(cursor_at_close, from + (kRingChunks - 1) * kChunkSlots * trace::kRecordSize);
    for (uint64_t offset = from; offset + trace::kRecordSize <= to;
         offset += trace::kRecordSize)
      abandon(ring_slot(base, offset));
    return;
  }
  const uint64_t backed = std::min(cursor_at_close, file_bytes_.load(std::memory_order_acquire));
  for (uint64_t offset = trace::kHeaderSize; offset + trace::kRecordSize <= backed;
       offset += trace::kRecordSize)
    abandon(base + offset);
}

void TraceWriter::close() {
  char* base = base_.load(std::memory_order_acquire);
  if (base == nullptr || closing_.exchange(true, std::memory_order_relaxed)) return;
  // New appends stop at once (base_); the mapping stays the file's until the appends in flight
  // are settled.
  base_.store(nullptr, std::memory_order_release);
  // From here on no reservation lands in the file (acquire: see reserve()).
  const uint64_t cursor_at_close = cursor_.fetch_add(kClosedCursor, std::memory_order_acq_rel);
  settle_in_flight(base, cursor_at_close);
  if (ring_bytes_ != 0) return close_compact(base, cursor_at_close);
  // The file stops growing here. exit() from a signal handler that interrupted this thread's own
  // extension closes without the lock: that extension never resumes (file_bytes_ is the size
  // before it).
  std::unique_lock lock(grow_mutex_, std::defer_lock);
  if (!grow_mutex_.held_here()) lock.lock();
  const uint64_t size = file_bytes_.load(std::memory_order_relaxed);
  const uint64_t end = std::min(cursor_at_close, size);
  end_at_close_ = end;
  auto* h = reinterpret_cast<Header*>(base);
  h->end_offset = end;
  std::atomic_ref<uint64_t>(h->records_dropped)
      .store(dropped_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(h->flags).fetch_or(trace::kHeaderClosed, std::memory_order_release);
  // An append racing with close may still hold a pointer into the file's pages: swap them for
  // anonymous memory (kept, address space only) so such a write is lost instead of faulting.
  mmap(base, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
       -1, 0);
  if (mapped_bytes_ > size) munmap(base + size, mapped_bytes_ - size);
  if (const int fd = file_fd(); fd >= 0) {
    if (ftruncate(fd, static_cast<off_t>(end)) != 0) {
      // The records are intact; the reader stops at end_offset and ignores the zero tail.
    }
    ::close(fd);
  }
  fd_ = -1;
}

void TraceWriter::abandon() {
  // Only the forking thread lives on in the child: a mutex another thread held at fork() would
  // stay locked forever, so start with fresh ones; the parent's threads' in-flight entries mean
  // nothing here either.
  grow_mutex_.reset();
  strings_mutex_.reset();
  seal_mutex_.reset();
  for (InFlight& e : g_in_flight) {
    e.slot.store(0, std::memory_order_relaxed);
    e.owner.store(0, std::memory_order_relaxed);
  }
  g_in_flight_used.store(0, std::memory_order_relaxed);
  g_untracked_in_flight.store(0, std::memory_order_relaxed);
  t_in_flight = nullptr;
  t_no_entry = false;
  char* base = base_.exchange(nullptr, std::memory_order_acq_rel);
  if (base != nullptr) munmap(base, mapped_bytes_);
  if (fd_ >= 0 && names_trace_file(fd_)) ::close(fd_);  // else the number is the program's
  fd_ = -1;
  end_at_close_ = 0;
  ring_bytes_ = 0;
  map_ = nullptr;
}

}  // namespace gpumem
