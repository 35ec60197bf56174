// A byte budget that several processes share: a POSIX shared-memory region holding the budget's
// limit, its total and one slot per process (pid, start time, bytes charged). The limit resource
// asks it instead of its own counter under GPUMEM_LIMIT_SCOPE=shared, and simcuda keeps a device
// that processes share (SIMCUDA_SHARED) in one, so both answer "does it fit?" for every process.
//
// Exact under concurrency: every change (a charge, an uncharge, a reclaim) happens under one
// robust process-shared mutex. A process killed while holding it leaves it EOWNERDEAD; the next
// locker recomputes the total from the slots (the truth; the total is updated after the slot)
// and goes on. A dead process's slot is reclaimed, its bytes returned to the budget, when it is
// found dead: its pid has no /proc entry, is a zombie, or belongs to a process that started at
// another time (pid reuse). Slots are searched for the dead when a charge would not fit, when a
// process takes a slot, and at reclaim_dead() (capacity queries call it).
//
// The region is created with the mode given (0600: the user's own processes only); a process
// that cannot open it gets the reason from open() and must refuse its allocations rather than
// fall back to a private budget. Pids are those of the creator's pid namespace: processes in
// different pid namespaces must not share a ledger. See docs/policies.md "Shared budget".
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace gpumem::resources {

struct LedgerRegion;  // the shared layout (shared_ledger.cpp)

class SharedLedger {
 public:
  static constexpr int kSlots = 512;
  static constexpr size_t kMaxName = 200;

  struct Slot {
    pid_t pid = 0;
    uint64_t start_time = 0;  // clock ticks after boot, /proc/PID/stat field 22
    uint64_t charge = 0;
  };

  // Opens the ledger at the shared-memory name `shm_name` ("/..."), creating it with `limit`
  // and `mode` when it does not exist (owned by `group` when it is not -1, for a mode such as
  // 0660 that lets that group's processes share it). An existing ledger must have the same limit.
  // On failure returns null and writes one sentence (what is wrong and what to do) into err.
  static SharedLedger* open(const char* shm_name, uint64_t limit, unsigned mode, char* err,
                            size_t errlen, long group = -1);
  ~SharedLedger();
  SharedLedger(const SharedLedger&) = delete;
  SharedLedger& operator=(const SharedLedger&) = delete;

  // Charges `bytes` to the calling process's slot when the budget's total stays within the
  // limit; false otherwise (or when no slot is free), *total_before = the total it saw.
  bool charge(uint64_t bytes, uint64_t* total_before = nullptr);
  // Returns bytes this process charged (at most what its slot holds: a forked child starts with
  // an empty slot and does not own its parent's memory).
  void uncharge(uint64_t bytes);

  uint64_t limit() const;
  uint64_t total() const;      // every live process's charge
  uint64_t high_water() const;  // the most the total has been
  uint64_t mine() const;       // the calling process's charge
  // Returns the charge of every dead process's slot to the budget; the bytes returned.
  uint64_t reclaim_dead();
  // The occupied slots (up to max); their count.
  int slots(Slot* out, int max) const;
  const char* name() const { return name_; }

  // For tests: a slot as another process would hold it (pid, start time, charge), charged as one.
  bool charge_as_for_testing(pid_t pid, uint64_t start_time, uint64_t bytes);

  // The start time of `pid` (/proc/PID/stat field 22); 0 when it has none (no such process).
  static uint64_t start_time_of(pid_t pid);
  // Whether the slot's process still runs: the pid exists, is not a zombie, started at that time.
  static bool slot_alive(pid_t pid, uint64_t start_time);

 private:
  SharedLedger(LedgerRegion* region, int fd, const char* name);
  void lock() const;
  void unlock() const;
  // Under the lock: the calling process's slot, taken (and dead slots reclaimed) when needed.
  int own_slot_locked();
  uint64_t reclaim_locked();

  LedgerRegion* region_;
  int fd_;
  char name_[kMaxName + 1] = {};
  pid_t owner_ = 0;  // the process that took slot_ (a forked child takes its own)
  int slot_ = -1;
};

// Whether `name` may name a budget or a shared device: 1 to 64 of [A-Za-z0-9._-].
bool valid_ledger_name(const char* name);

}  // namespace gpumem::resources
