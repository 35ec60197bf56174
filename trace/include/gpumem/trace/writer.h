// The trace writer (gpumem_trace_writer: the preload, the CUPTI mode and tests write with it): one
// file per process, written by all threads through a MAP_SHARED mapping and one atomic cursor.
// Format: gpumem/trace/format.h, explained for people in docs/trace-format.md.
//
// Hot-path contract (append, append_blob, intern_stack): no heap allocation, no lock, no getenv,
// no system call except the rare file extension; the caller never waits for the disk. Records of
// calls that returned survive SIGKILL because they live in the page cache of a shared mapping.
//
// Lifetime: open() once, then any thread may append. close() waits (briefly, bounded) for the
// appends in flight, and marks the slots of those still unfinished kAbandoned, so a clean exit
// from one thread while others append reads as a clean close; an append that starts after close()
// is dropped or lands in memory that is no longer the file, but never faults. In a forked child
// call abandon() before anything else touches the writer.
//
// A full disk: the first time the file cannot grow, the writer stops trying (every later append
// past the end only counts), says so once through the warning sink, and keeps the count of lost
// records in the header (Header::records_dropped), so every reader reports the trace incomplete.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "gpumem/trace/format.h"
#include "gpumem/trace/owned_mutex.h"

namespace gpumem {
namespace detail {
class BoundedWindow;
}

uint64_t monotonic_ns();  // CLOCK_MONOTONIC in ns
uint32_t current_tid();   // gettid(), cached per thread (reset in a forked child)

class TraceWriter {
 public:
  TraceWriter() = default;
  ~TraceWriter();  // close()s a writer still open
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // Creates `path`, which must not exist (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600): a file that is
  // there already (another process's trace, a planted symlink, a device) is never opened, let
  // alone truncated. The descriptor is kept at 3 or above, off stdin/stdout/stderr. Copies
  // `header` (magic/version/sizes are filled in; pid, clock_base_ns and start_unix_ns too when
  // 0). On failure removes what it created, returns false and writes one line to err saying what
  // is wrong and what to do.
  bool open(const char* path, const trace::Header& header, char* err, size_t errlen);
  // As open(), under the first of `wanted`, `wanted.1`, `wanted.2`, ... that does not exist yet
  // (processes racing on one name each get their own file); path() tells which.
  bool open_unused(const char* wanted, const trace::Header& header, char* err, size_t errlen);
  static constexpr unsigned long kMaxSuffix = 999999;  // then open_unused gives up, clearly

  // Where the one "records are being dropped" warning goes (one line, no "gpumem: " prefix, no
  // newline); by default straight to stderr with write(2). Must not allocate.
  using WarningSink = void (*)(const char* line);
  void set_warning_sink(WarningSink sink) { warning_sink_ = sink; }
  bool is_open() const { return base_.load(std::memory_order_acquire) != nullptr; }

  // The file's layout, chosen before open(): raw (version 1: every record a 64-byte slot) or
  // compact (version 2: the same slots in a ring of raw chunks, each full chunk sealed into a
  // compact chunk of a few bytes per record; gpumem/trace/format_v2.h). from_environment:
  // GPUMEM_TRACE_FORMAT=compact, else raw.
  enum class Format { from_environment, raw, compact };
  void set_format(Format format) { format_ = format; }
  // A bounded trace (compact, at most `bytes` long: the beginning, a digest of the middle, the
  // newest window; docs/trace-format.md "Bounded traces"), chosen before open(). 0: from
  // GPUMEM_TRACE_MAX when the format comes from the environment, else unbounded. Below
  // trace::kMinTraceMax it is raised to it.
  void set_max_bytes(uint64_t bytes) { max_bytes_ = bytes; }
  bool compact() const { return ring_bytes_ != 0; }
  static constexpr uint32_t kChunkSlots = 2048;  // slots per raw chunk (compact format)
  static constexpr uint32_t kRingChunks = 8;     // raw chunks in the ring

  // Reserves one slot, fills it and commits it. Fills t_ns (if 0) and tid (if 0).
  void append(trace::Record r);
  // Writes a blob record (Op::string or Op::stack) of `len` bytes with id `id`.
  void append_blob(trace::Op op, uint64_t id, const void* data, size_t len);
  // Returns the id of a string, writing an Op::string record the first time it is seen.
  // Thread-safe; meant for marks and symbols (not the allocation hot path). Never returns 0.
  // Strings longer than kMaxStringBytes are cut. Once the table (kStringTableSize) is full, new
  // strings are written again on every call (correct, just not deduplicated).
  uint64_t intern_string(const char* text);
  // Returns the id of a call stack (return addresses, innermost first), writing an Op::stack
  // record the first time it is seen. Lock-free. Never returns 0. The stack record is always
  // earlier in the file than any record the caller writes with the returned id. Deeper stacks are
  // cut to kMaxStackDepth frames. Once the table is full (or two threads race on a new stack),
  // the stack is written again under a fresh id instead of waiting.
  uint32_t intern_stack(const uint64_t* pcs, int depth);

  // Fills the header's device entry (and device_count) once per device, and appends an
  // Op::device_info record; later calls for the same device are no-ops. False when it could not
  // now (a signal handler interrupted this thread inside the writer's table): ask again later.
  bool set_device(int device, uint64_t capacity, uint64_t limit, const char* name);
  // Rewrites the header's pool name (cut to fit): what served, when it is not what the
  // configuration asked for (the expandable pool falls back to the growth pool without VMM).
  void set_pool(const char* name);

  // Exit path (may allocate): for every distinct return address in the stacks interned so far
  // (kept aside as they are written, in kPcTableSize entries: a compact trace's stack records are
  // sealed into the file and gone from memory), appends an Op::symbol record whose aux names
  // "function (module+0xoff)" (dladdr, then the module's ELF symbol table from disk for what dladdr
  // cannot name: elf_symbols.h; names demangled). Returns how many symbol records it wrote.
  size_t write_symbols();

  // Clean shutdown: waits up to kCloseWait for appends in flight and marks the slots of those
  // still unfinished kAbandoned, then sets end_offset and kHeaderClosed, unmaps, trims the file to
  // its records.
  void close();
  static constexpr uint64_t kCloseWaitNs = 100'000'000;
  // In a forked child: drop the parent's mapping without writing to it, so the parent's trace is
  // untouched; the child may then open() its own file.
  void abandon();

  // Slots reserved and backed by the file so far (blob payload slots included).
  uint64_t records_written() const;
  // Records that could not be written (file could not grow: disk full, file-size limit, address
  // range exhausted); a blob counts once. Also in the header (Header::records_dropped).
  uint64_t records_dropped() const { return dropped_.load(std::memory_order_relaxed); }
  const char* path() const { return path_; }

  static constexpr size_t kMaxStringBytes = 65536;
  static constexpr int kMaxStackDepth = 256;
  static constexpr size_t kStringTableSize = 4096;  // distinct strings deduplicated
  static constexpr size_t kStackTableSize = 65536;  // distinct stacks deduplicated
  static constexpr size_t kPcTableSize = 1 << 20;   // distinct return addresses kept to symbolise
  // The bytes of the strings and the frames of the stacks in the tables, compared on every hit:
  // a hash only finds the slot. Virtual until used; once one is used up, new strings or stacks
  // are written again on every call, as when their table is full.
  static constexpr size_t kStringArenaBytes = 4 << 20;
  static constexpr size_t kStackArenaPcs = 4 << 20;  // 32 MiB, 40 frames for each of 100k stacks

 private:
  struct StringSlot {  // guarded by strings_mutex_
    uint64_t hash;
    uint64_t len;
    uint64_t id;
    uint64_t text;  // where its bytes are in string_arena_
  };
  // Lock-free: hash claimed by CAS, then depth and pcs written, then id published with release
  // (0 = pending); a reader that loads a nonzero id (acquire) may read depth and pcs.
  struct StackSlot {
    std::atomic<uint64_t> hash;
    std::atomic<uint32_t> id;
    uint32_t depth;  // kNoFrames: the arena was used up, the frames were not kept
    uint64_t pcs;    // where its frames are in stack_arena_
  };
  static constexpr uint32_t kNoFrames = UINT32_MAX;

  // Reserves `bytes` at the cursor; returns where to write, or nullptr when the slot cannot be
  // backed by the file (counted as dropped, unless the writer is closing).
  char* reserve(uint64_t bytes);
  bool grow_for(uint64_t end, uint64_t size);     // reserve's slow path (cold)
  bool ensure_capacity(uint64_t end, bool wait);  // extends the file (rare, mutex)
  void note_dropped();                            // counts one lost record; warns the first time
  bool create(const char* path, const trace::Header& header, char* err, size_t errlen,
              bool* exists);
  void settle_in_flight(char* base, uint64_t cursor_at_close);  // close(): wait, then mark
  // Compact format (ring.cpp): the reservation's ring slot, sealing when the ring is full.
  char* reserve_ring(char* base, uint64_t offset, uint64_t bytes);
  // Seals raw chunks in order until `until` are sealed (wait: for slots still being written and
  // for the seal lock, until deadline_ns unless 0) or, without wait, as many complete chunks as
  // are ready. `end`: the cursor below which slots are reserved. False when the chunks could not
  // be sealed (disk full, or the deadline passed).
  bool seal(uint64_t until, uint64_t end, bool wait, uint64_t deadline_ns);
  bool seal_chunk(char* base, uint64_t chunk, uint64_t end);
  void close_compact(char* base, uint64_t cursor_at_close);  // close(), compact format
  char* ring_slot(char* base, uint64_t offset) const {
    return base + trace::kHeaderSize + (offset - trace::kHeaderSize) % ring_bytes_;
  }
  void release_tables();
  // The trace file's descriptor, or -1 (errno EBADF): fd_ while it still names the file, else the
  // file opened again by its absolute path. A program that closes every descriptor (a daemon) may
  // have given fd_'s number to a file of its own, which must never be grown, written or closed.
  int file_fd();
  bool names_trace_file(int fd) const;

  std::atomic<char*> base_{nullptr};  // mapping of the whole reserved virtual range
  int fd_ = -1;
  uint64_t mapped_bytes_ = 0;  // virtual size reserved for the mapping
  // The one word every append writes, alone on its cache line: base_ and file_bytes_, which every
  // append reads, stay shared in all cores' caches instead of bouncing with the cursor.
  alignas(64) std::atomic<uint64_t> cursor_{trace::kHeaderSize};  // next free byte
  alignas(64) std::atomic<uint64_t> file_bytes_{0};  // current file size (valid to touch below it)
  std::atomic<uint64_t> dropped_{0};
  std::atomic<bool> full_{false};   // the file could not grow once: never try again
  std::atomic<int> full_errno_{0};  // why
  std::atomic<bool> reservation_full_{false};  // why: the file reached the mapping's end
  std::atomic<bool> closing_{false};
  WarningSink warning_sink_ = nullptr;
  uint64_t end_at_close_ = 0;
  detail::OwnedMutex grow_mutex_;     // file extension only
  detail::OwnedMutex strings_mutex_;  // intern_string and set_device
  std::atomic<uint64_t> next_string_id_{1};
  std::atomic<uint32_t> next_stack_id_{1};
  StringSlot* strings_ = nullptr;  // kStringTableSize entries, anonymous mapping made by open()
  StackSlot* stacks_ = nullptr;    // kStackTableSize entries, same mapping
  // kPcTableSize entries, same mapping: each distinct return address of the stacks written, its
  // top bit set once write_symbols() has named it; 0 = empty.
  std::atomic<uint64_t>* pcs_ = nullptr;
  char* string_arena_ = nullptr;     // kStringArenaBytes, same mapping
  uint64_t string_arena_used_ = 0;   // guarded by strings_mutex_
  uint64_t* stack_arena_ = nullptr;  // kStackArenaPcs entries, same mapping
  std::atomic<uint64_t> stack_arena_used_{0};
  void remember_pcs(const uint64_t* pcs, int depth);
  size_t tables_bytes_ = 0;
  Format format_ = Format::from_environment;
  uint64_t max_bytes_ = 0;
  detail::BoundedWindow* window_ = nullptr;  // bounded compact trace only; guarded by seal_mutex_
  // Compact format: the ring (mapped twice in a row, so a reservation that wraps is contiguous),
  // the raw chunks sealed so far, where the next compact chunk goes, and the sealer's scratch.
  uint64_t ring_bytes_ = 0;  // 0: raw format
  char* map_ = nullptr;      // the mapping (header first), kept until close() has sealed
  static constexpr uint64_t kClosedCursor = 1ull << 62;  // close() moves the cursor this far
  alignas(64) std::atomic<uint64_t> sealed_{0};
  uint64_t compact_end_ = 0;  // guarded by seal_mutex_, as are the two below
  uint64_t spill_slots_ = 0;  // payload slots of a sealed blob at the start of the next chunk
  detail::OwnedMutex seal_mutex_;
  unsigned char* seal_buffer_ = nullptr;  // the compact chunk being built, then its payloads
  size_t seal_buffer_bytes_ = 0;
  char path_[4096] = {};
  char absolute_path_[4096] = {};  // path_ from the directory it was opened in ('' if too long)
  char candidate_[4096] = {};      // open_unused's name being tried (kept off the opener's stack)
  uint64_t file_dev_ = 0;          // the file's identity, to recognise its descriptor
  uint64_t file_ino_ = 0;
};

}  // namespace gpumem
