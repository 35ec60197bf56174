#include "gpumem/resources/shared_ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace gpumem::resources {

// Lives in shared memory: only trivially copyable fields, atomics that are lock-free, and a
// process-shared robust mutex. The slots and the total change only under the mutex; the total
// and the slots are atomics so that readers without the lock (capacity queries) see whole values.
struct LedgerRegion {
  static constexpr uint32_t kMagic = 0x67706c67;  // "gplg"
  static constexpr uint32_t kVersion = 1;
  std::atomic<uint32_t> magic;  // set last by the creator (release): the region is ready
  uint32_t version;
  uint64_t limit;
  pthread_mutex_t mu;
  std::atomic<uint64_t> total;
  std::atomic<uint64_t> high;
  struct Slot {
    std::atomic<int32_t> pid;
    std::atomic<uint64_t> start_time;
    std::atomic<uint64_t> charge;
  } slots[SharedLedger::kSlots];
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<int32_t>::is_always_lock_free);

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

void say(char* err, size_t errlen, const char* fmt, const char* name, const char* detail) {
  if (err != nullptr && errlen != 0) std::snprintf(err, errlen, fmt, name, detail);
}

// /proc/PID/stat: "pid (comm) S ppid ..."; the comm may hold spaces and parentheses, so the
// fields are counted from the last ')'. state is field 3, starttime field 22.
bool read_stat(pid_t pid, char* state, uint64_t* start) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ') return false;
  p += 2;
  *state = *p;
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return false;
    ++p;
  }
  char* end = nullptr;
  *start = std::strtoull(p, &end, 10);
  return end != p;
}

}  // namespace

bool valid_ledger_name(const char* name) {
  if (name == nullptr) return false;
  size_t n = 0;
  for (const char* p = name; *p != '\0'; ++p, ++n) {
    const char c = *p;
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok || n >= 64) return false;
  }
  return n > 0 && std::strcmp(name, ".") != 0 && std::strcmp(name, "..") != 0;
}

uint64_t SharedLedger::start_time_of(pid_t pid) {
  char state = 0;
  uint64_t start = 0;
  return read_stat(pid, &state, &start) ? start : 0;
}

bool SharedLedger::slot_alive(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return false;
  char state = 0;
  uint64_t start = 0;
  if (!read_stat(pid, &state, &start)) {
    // No /proc entry: gone, unless /proc is not there at all (then ask the kernel).
    if (access("/proc/self/stat", R_OK) == 0) return false;
    return kill(pid, 0) == 0 || errno == EPERM;
  }
  if (state == 'Z' || state == 'X') return false;  // killed, not yet reaped: its memory is back
  return start == start_time;
}

SharedLedger* SharedLedger::open(const char* shm_name, uint64_t limit, unsigned mode, char* err,
                                 size_t errlen, long group) {
  if (shm_name == nullptr || shm_name[0] != '/' || std::strlen(shm_name) > kMaxName) {
    say(err, errlen, "the shared ledger name '%s' is not valid%s; use a short name", shm_name, "");
    return nullptr;
  }
  bool created = false;
  int fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd >= 0) {
    created = true;
    if (group >= 0 && fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(group)) != 0) {
      say(err, errlen,
          "cannot give the shared ledger /dev/shm%s to the group asked for: %s; name a group you "
          "belong to",
          shm_name, std::strerror(errno));
      ::close(fd);
      shm_unlink(shm_name);
      return nullptr;
    }
    (void)fchmod(fd, mode);  // the umask may have narrowed it
    if (ftruncate(fd, sizeof(LedgerRegion)) != 0) {
      say(err, errlen, "cannot size the shared ledger /dev/shm%s: %s; free space in /dev/shm",
          shm_name, std::strerror(errno));
      ::close(fd);
      shm_unlink(shm_name);
      return nullptr;
    }
  } else if (errno == EEXIST) {
    fd = shm_open(shm_name, O_RDWR | O_CLOEXEC, 0);
  }
  if (fd < 0) {
    const int e = errno;
    say(err, errlen,
        e == EACCES ? "cannot open the shared ledger /dev/shm%s: %s (it belongs to another user or "
                      "group; run every process of the budget as the same user, or use another "
                      "name)"
                    : "cannot open the shared ledger /dev/shm%s: %s; check that /dev/shm is "
                      "mounted and writable",
        shm_name, std::strerror(e));
    return nullptr;
  }
  // The creator sizes the region before it writes it: wait (bounded) for the size and the magic.
  struct stat st {};
  void* mem = MAP_FAILED;
  for (int tries = 0; tries < 5000; ++tries) {  // 5 s at 1 ms
    if (fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) >= sizeof(LedgerRegion)) {
      if (mem == MAP_FAILED)
        mem = mmap(nullptr, sizeof(LedgerRegion), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (mem == MAP_FAILED) break;
      if (created) break;
      if (static_cast<LedgerRegion*>(mem)->magic.load(std::memory_order_acquire) != 0) break;
    }
    timespec ts{0, 1000000};
    nanosleep(&ts, nullptr);
  }
  if (mem == MAP_FAILED) {
    say(err, errlen,
        "the shared ledger /dev/shm%s is not usable (%s); if no process uses it, remove it",
        shm_name, static_cast<size_t>(st.st_size) < sizeof(LedgerRegion) ? "too small" : "mmap");
    ::close(fd);
    return nullptr;
  }
  auto* r = static_cast<LedgerRegion*>(mem);
  if (created) {
    r->version = LedgerRegion::kVersion;
    r->limit = limit;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&r->mu, &a);
    pthread_mutexattr_destroy(&a);
    r->magic.store(LedgerRegion::kMagic, std::memory_order_release);
  }
  const char* problem = nullptr;
  char detail[96];
  if (r->magic.load(std::memory_order_acquire) != LedgerRegion::kMagic ||
      r->version != LedgerRegion::kVersion) {
    problem = "the shared ledger /dev/shm%s is incomplete or of another gpumem version%s; if no "
              "process uses it, remove it";
    detail[0] = '\0';
  } else if (r->limit != limit) {
    problem = "the shared ledger /dev/shm%s already has a limit of %s; give every process that "
              "shares it the same limit, or use another name";
    std::snprintf(detail, sizeof detail, "%llu bytes (this process asks for %llu)",
                  static_cast<unsigned long long>(r->limit), static_cast<unsigned long long>(limit));
  }
  if (problem != nullptr) {
    say(err, errlen, problem, shm_name, detail);
    munmap(mem, sizeof(LedgerRegion));
    ::close(fd);
    return nullptr;
  }
  return new SharedLedger(r, fd, shm_name);
}

SharedLedger::SharedLedger(LedgerRegion* region, int fd, const char* name)
    : region_(region), fd_(fd) {
  std::snprintf(name_, sizeof name_, "%s", name);
}

SharedLedger::~SharedLedger() {
  // The slot stays charged with what this process still holds; it is reclaimed at its death.
  munmap(region_, sizeof(LedgerRegion));
  ::close(fd_);
}

void SharedLedger::lock() const {
  const int r = pthread_mutex_lock(&region_->mu);
  if (r == EOWNERDEAD) {
    // Its holder died inside a change: the slots are the truth (each change updates the slot
    // before the total), so the total is recomputed from them.
    uint64_t sum = 0;
    for (auto& s : region_->slots)
      if (s.pid.load(kRelaxed) != 0) sum += s.charge.load(kRelaxed);
    region_->total.store(sum, kRelaxed);
    pthread_mutex_consistent(&region_->mu);
  }
}

void SharedLedger::unlock() const {
  pthread_mutex_unlock(&region_->mu);
}

uint64_t SharedLedger::reclaim_locked() {
  uint64_t returned = 0;
  const pid_t self = getpid();
  for (auto& s : region_->slots) {
    const pid_t pid = s.pid.load(kRelaxed);
    if (pid == 0 || pid == self) continue;
    if (slot_alive(pid, s.start_time.load(kRelaxed))) continue;
    const uint64_t c = s.charge.load(kRelaxed);
    s.charge.store(0, kRelaxed);
    s.pid.store(0, kRelaxed);
    region_->total.fetch_sub(c, kRelaxed);
    returned += c;
  }
  return returned;
}

int SharedLedger::own_slot_locked() {
  const pid_t self = getpid();
  if (slot_ >= 0 && owner_ == self) return slot_;
  // A new process (or a forked child, whose inherited slot is its parent's).
  const uint64_t start = start_time_of(self);
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) reclaim_locked();
    for (int i = 0; i < kSlots; ++i) {
      auto& s = region_->slots[i];
      const pid_t pid = s.pid.load(kRelaxed);
      // Our own slot from before an exec: the exec released what that image held.
      if (pid == self && s.start_time.load(kRelaxed) == start) {
        region_->total.fetch_sub(s.charge.load(kRelaxed), kRelaxed);
        s.charge.store(0, kRelaxed);
        slot_ = i;
        owner_ = self;
        return i;
      }
    }
    for (int i = 0; i < kSlots; ++i) {
      auto& s = region_->slots[i];
      if (s.pid.load(kRelaxed) != 0) continue;
      s.charge.store(0, kRelaxed);
      s.start_time.store(start, kRelaxed);
      s.pid.store(self, kRelaxed);
      slot_ = i;
      owner_ = self;
      return i;
    }
  }
  return -1;
}

bool SharedLedger::charge(uint64_t bytes, uint64_t* total_before) {
  lock();
  const int i = own_slot_locked();
  uint64_t total = region_->total.load(kRelaxed);
  const auto fits = [&] { return total <= region_->limit && bytes <= region_->limit - total; };
  if (i >= 0 && !fits()) {
    reclaim_locked();
    total = region_->total.load(kRelaxed);
  }
  if (total_before != nullptr) *total_before = total;
  if (i < 0 || !fits()) {
    unlock();
    return false;
  }
  auto& s = region_->slots[i];
  s.charge.store(s.charge.load(kRelaxed) + bytes, kRelaxed);
  region_->total.store(total + bytes, kRelaxed);
  if (total + bytes > region_->high.load(kRelaxed)) region_->high.store(total + bytes, kRelaxed);
  unlock();
  return true;
}

void SharedLedger::uncharge(uint64_t bytes) {
  lock();
  if (slot_ >= 0 && owner_ == getpid()) {
    auto& s = region_->slots[slot_];
    const uint64_t c = s.charge.load(kRelaxed);
    const uint64_t d = bytes < c ? bytes : c;
    s.charge.store(c - d, kRelaxed);
    region_->total.fetch_sub(d, kRelaxed);
  }
  unlock();
}

uint64_t SharedLedger::limit() const {
  return region_->limit;
}
uint64_t SharedLedger::total() const {
  return region_->total.load(kRelaxed);
}
uint64_t SharedLedger::high_water() const {
  return region_->high.load(kRelaxed);
}
uint64_t SharedLedger::mine() const {
  if (slot_ < 0 || owner_ != getpid()) return 0;
  return region_->slots[slot_].charge.load(kRelaxed);
}

uint64_t SharedLedger::reclaim_dead() {
  lock();
  const uint64_t r = reclaim_locked();
  unlock();
  return r;
}

int SharedLedger::slots(Slot* out, int max) const {
  lock();
  int n = 0;
  for (auto& s : region_->slots) {
    const pid_t pid = s.pid.load(kRelaxed);
    if (pid == 0) continue;
    if (n < max) out[n] = Slot{pid, s.start_time.load(kRelaxed), s.charge.load(kRelaxed)};
    ++n;
  }
  unlock();
  return n;
}

bool SharedLedger::charge_as_for_testing(pid_t pid, uint64_t start_time, uint64_t bytes) {
  lock();
  bool ok = false;
  const uint64_t total = region_->total.load(kRelaxed);
  if (total <= region_->limit && bytes <= region_->limit - total) {
    for (auto& s : region_->slots) {
      if (s.pid.load(kRelaxed) != 0) continue;
      s.charge.store(bytes, kRelaxed);
      s.start_time.store(start_time, kRelaxed);
      s.pid.store(pid, kRelaxed);
      region_->total.store(total + bytes, kRelaxed);
      ok = true;
      break;
    }
  }
  unlock();
  return ok;
}

}  // namespace gpumem::resources
