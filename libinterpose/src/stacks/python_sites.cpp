// See python_sites.h.
#include "python_sites.h"

#include <sys/mman.h>

#include <atomic>

#include "gpumem/trace/writer.h"

namespace gpumem::stacks::python_sites {
namespace {

constexpr unsigned kLog2Slots = 16;  // 65536 distinct (code, line) frames deduplicated
constexpr uint64_t kSlots = 1ull << kLog2Slots;
constexpr unsigned kMaxProbe = 64;
constexpr unsigned kOffsetBits = 17;  // byte offsets up to 128 KiB of bytecode are cached
constexpr uint64_t kCodeLimit = 1ull << (64 - kOffsetBits);

struct Slot {
  std::atomic<uint64_t> key;  // 0 = free, else (code << kOffsetBits) | (offset + 1)
  std::atomic<uint32_t> id;   // 0 = claimed, symbol not written yet
};

std::atomic<Slot*> g_slots{nullptr};
std::atomic<uint32_t> g_next_id{1};
std::atomic<bool> g_marker_written{false};

Slot* slots() {
  Slot* s = g_slots.load(std::memory_order_acquire);
  if (s != nullptr) [[likely]]
    return s;
  void* m = mmap(nullptr, kSlots * sizeof(Slot), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  Slot* expected = nullptr;
  if (!g_slots.compare_exchange_strong(expected, static_cast<Slot*>(m),
                                       std::memory_order_acq_rel)) {
    munmap(m, kSlots * sizeof(Slot));  // another thread won
    return expected;
  }
  return static_cast<Slot*>(m);
}

uint64_t write_symbol(TraceWriter& w, uint32_t id, const char* text) {
  const uint64_t address = trace::kPythonFrameTag | id;
  trace::Record r{};
  r.op = static_cast<uint16_t>(trace::Op::symbol);
  r.api = static_cast<uint16_t>(trace::Api::gpumem);
  r.device = -1;
  r.address = address;
  r.aux = w.intern_string(text);
  w.append(r);
  return address;
}

uint64_t name_new_frame(TraceWriter& w, const python::Frame& f, uint32_t id) {
  char text[1600];
  python::describe(f, text, sizeof text);
  return write_symbol(w, id, text);
}

uint64_t hash(uint64_t key) {
  return (key * 0x9E3779B97F4A7C15ull) >> (64 - kLog2Slots);
}

}  // namespace

uint64_t address_of(TraceWriter& w, const python::Frame& f) {
  const uint64_t offset1 = static_cast<uint64_t>(static_cast<int64_t>(f.offset) + 1);
  Slot* table = slots();
  if (table == nullptr || f.code >= kCodeLimit || offset1 >= (1ull << kOffsetBits))
    return name_new_frame(w, f, g_next_id.fetch_add(1, std::memory_order_relaxed));
  const uint64_t key = (static_cast<uint64_t>(f.code) << kOffsetBits) | offset1;
  uint64_t i = hash(key);
  for (unsigned probe = 0; probe < kMaxProbe; ++probe, i = (i + 1) & (kSlots - 1)) {
    Slot& s = table[i];
    uint64_t k = s.key.load(std::memory_order_acquire);
    if (k == 0 && s.key.compare_exchange_strong(k, key, std::memory_order_acq_rel)) {
      // Ours: name it, then publish the id, so no stack can use it before its symbol exists.
      const uint32_t id = g_next_id.fetch_add(1, std::memory_order_relaxed);
      const uint64_t address = name_new_frame(w, f, id);
      s.id.store(id, std::memory_order_release);
      return address;
    }
    if (k != key) continue;
    const uint32_t id = s.id.load(std::memory_order_acquire);
    if (id != 0) [[likely]]
      return trace::kPythonFrameTag | id;
    break;  // claimed by a thread still naming it: name it again rather than wait
  }
  return name_new_frame(w, f, g_next_id.fetch_add(1, std::memory_order_relaxed));
}

uint64_t no_python_frame(TraceWriter& w) {
  if (!g_marker_written.load(std::memory_order_acquire) &&
      !g_marker_written.exchange(true, std::memory_order_acq_rel))
    write_symbol(w, 0, "[no Python frame] (native thread)");
  return trace::kPythonFrameTag;
}

void reset() {
  if (Slot* s = g_slots.load(std::memory_order_relaxed))
    madvise(s, kSlots * sizeof(Slot), MADV_DONTNEED);  // private anonymous: reads back as zeros
  g_next_id.store(1, std::memory_order_relaxed);
  g_marker_written.store(false, std::memory_order_relaxed);
}

}  // namespace gpumem::stacks::python_sites
