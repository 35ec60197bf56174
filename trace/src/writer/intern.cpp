// String and call-stack tables: each distinct string or stack is written to the trace once, and
// records refer to it by id. Both tables are fixed-size (allocated by open()); when one is full,
// entries are written again under fresh ids, which costs bytes but never correctness. A slot
// keeps its string's bytes or its stack's frames (in an arena beside the tables), and a lookup
// compares them: two strings or stacks with the same hash never share an id.
#include <cstring>

#include "gpumem/trace/writer.h"
#include "intern_hash.h"

namespace gpumem {
namespace {

constexpr size_t kMaxProbes = 64;  // linear probing stops here and treats the table as full

}  // namespace

uint64_t TraceWriter::intern_string(const char* text) {
  if (text == nullptr) text = "";
  const size_t len = strnlen(text, kMaxStringBytes);
  const uint64_t h = intern::hash_string(text, len);
  // try_lock: a signal handler interrupting this thread inside the table (gpumem_mark from a
  // handler) must not wait for itself; without the table the string is written again, under a
  // fresh id: more bytes, never a wrong one.
  std::unique_lock lock(strings_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) {
    const uint64_t id = next_string_id_.fetch_add(1, std::memory_order_relaxed);
    append_blob(trace::Op::string, id, text, len);
    return id;
  }
  StringSlot* slot = nullptr;
  for (size_t probe = 0; strings_ != nullptr && probe < kMaxProbes; ++probe) {
    StringSlot& s = strings_[(h + probe) % kStringTableSize];
    if (s.id == 0) {
      slot = &s;
      break;
    }
    if (s.hash == h && s.len == len && std::memcmp(string_arena_ + s.text, text, len) == 0)
      return s.id;
  }
  const uint64_t id = next_string_id_.fetch_add(1, std::memory_order_relaxed);
  append_blob(trace::Op::string, id, text, len);
  if (slot != nullptr && string_arena_used_ + len <= kStringArenaBytes) {
    std::memcpy(string_arena_ + string_arena_used_, text, len);
    *slot = StringSlot{h, len, id, string_arena_used_};
    string_arena_used_ += len;
  }
  return id;
}

// Lock-free set insert of each return address (a new stack only: rare once a program runs). A
// Python frame (bit 63, trace::kPythonFrameTag) is named when first seen, not here; no code
// address has that bit, so the set uses it to mark an address write_symbols() has named.
void TraceWriter::remember_pcs(const uint64_t* pcs, int depth) {
  if (pcs_ == nullptr) return;
  for (int i = 0; i < depth; ++i) {
    const uint64_t pc = pcs[i];
    if (pc == 0 || trace::is_python_frame(pc)) continue;
    const uint64_t h = pc * 0x9E3779B97F4A7C15ull;
    for (size_t probe = 0; probe < kMaxProbes; ++probe) {
      std::atomic<uint64_t>& slot = pcs_[(h + probe) % kPcTableSize];
      uint64_t seen = slot.load(std::memory_order_relaxed);
      if (seen == 0 && slot.compare_exchange_strong(seen, pc, std::memory_order_relaxed)) break;
      if ((seen & ~trace::kPythonFrameTag) == pc) break;
    }  // a full run of probes: the address goes unnamed (the reader shows it as a number)
  }
}

uint32_t TraceWriter::intern_stack(const uint64_t* pcs, int depth) {
  if (pcs == nullptr || depth < 0) depth = 0;
  if (depth > kMaxStackDepth) depth = kMaxStackDepth;
  auto write_new = [&] {
    remember_pcs(pcs, depth);
    uint32_t id = next_stack_id_.fetch_add(1, std::memory_order_relaxed);
    if (id == 0) id = next_stack_id_.fetch_add(1, std::memory_order_relaxed);  // wrapped
    append_blob(trace::Op::stack, id, pcs, static_cast<size_t>(depth) * sizeof(uint64_t));
    return id;
  };
  if (stacks_ == nullptr) return write_new();
  const uint64_t h = intern::hash_stack(pcs, depth);
  const size_t n = static_cast<size_t>(depth);
  for (size_t probe = 0; probe < kMaxProbes; ++probe) {
    StackSlot& s = stacks_[(h + probe) % kStackTableSize];
    uint64_t seen = s.hash.load(std::memory_order_acquire);
    if (seen == 0) {
      // No room left for its frames: as a full table (a slot that cannot be checked is no use).
      if (stack_arena_used_.load(std::memory_order_relaxed) + n > kStackArenaPcs)
        return write_new();
      if (s.hash.compare_exchange_strong(seen, h, std::memory_order_acq_rel)) {
        // Ours: write the stack and keep its frames, then publish its id. The blob's slots are
        // reserved before the id is visible, so every record that uses the id lies after the
        // stack in the file.
        const uint32_t id = write_new();
        const uint64_t at = stack_arena_used_.fetch_add(n, std::memory_order_relaxed);
        s.depth = kNoFrames;  // another thread took the arena's last room meanwhile
        if (at + n <= kStackArenaPcs) {
          if (n > 0) std::memcpy(stack_arena_ + at, pcs, n * sizeof(uint64_t));
          s.pcs = at;
          s.depth = static_cast<uint32_t>(depth);
        }
        s.id.store(id, std::memory_order_release);
        return id;
      }
      // Lost the race; `seen` now holds the winner's hash.
    }
    if (seen == h) {
      const uint32_t id = s.id.load(std::memory_order_acquire);
      if (id == 0) return write_new();  // still being written: never wait, write our own
      if (s.depth == static_cast<uint32_t>(depth) &&
          (n == 0 || std::memcmp(stack_arena_ + s.pcs, pcs, n * sizeof(uint64_t)) == 0))
        return id;
      // Another stack with the same hash: probe on.
    }
  }
  return write_new();
}

}  // namespace gpumem
