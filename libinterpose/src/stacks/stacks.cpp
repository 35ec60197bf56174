// See stacks.h.
#include "stacks.h"

#include <link.h>
#include <unwind.h>

#include <cstdint>

#include "gpumem/trace/writer.h"
#include "python_sites.h"

namespace gpumem::stacks {
namespace {

constexpr int kMaxNativeDepth = 48;
constexpr int kMaxPythonDepth = 128;

struct Walk {
  uint64_t* pcs;
  int depth;
  int max;
};

// gpumem's own code range: leading frames inside it (hook, dispatch, capture) are not recorded,
// whatever the compiler inlined.
uintptr_t g_self_begin = 0, g_self_end = 0;

int find_self(struct dl_phdr_info* info, size_t, void*) {
  const uintptr_t self = reinterpret_cast<uintptr_t>(&warm_up);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    uintptr_t b = info->dlpi_addr + ph.p_vaddr;
    if (b < lo) lo = b;
    if (b + ph.p_memsz > hi) hi = b + ph.p_memsz;
  }
  if (self < lo || self >= hi) return 0;
  g_self_begin = lo;
  g_self_end = hi;
  return 1;
}

_Unwind_Reason_Code on_frame(struct _Unwind_Context* ctx, void* arg) {
  Walk* w = static_cast<Walk*>(arg);
  uintptr_t pc = _Unwind_GetIP(ctx);
  if (pc == 0) return _URC_END_OF_STACK;
  if (w->depth == 0 && pc >= g_self_begin && pc < g_self_end) return _URC_NO_REASON;
  w->pcs[w->depth++] = pc;
  return w->depth < w->max ? _URC_NO_REASON : _URC_END_OF_STACK;
}

int native(uint64_t* pcs, int max) {
  Walk w{pcs, 0, max};
  _Unwind_Backtrace(on_frame, &w);
  return w.depth;
}

// The thread's Python frames as pseudo addresses; -1 when no supported Python runs here.
int python_frames(TraceWriter& writer, uint64_t* pcs, int max) {
  python::Frame frames[kMaxPythonDepth];
  const int n = python::walk(frames, max < kMaxPythonDepth ? max : kMaxPythonDepth);
  for (int i = 0; i < n; ++i) pcs[i] = python_sites::address_of(writer, frames[i]);
  return n;
}

}  // namespace

void warm_up(Mode mode) {
  dl_iterate_phdr(find_self, nullptr);
  uint64_t pcs[kMaxNativeDepth];
  native(pcs, kMaxNativeDepth);
  if (mode == Mode::python || mode == Mode::mixed) python::runtime();
}

uint32_t capture(TraceWriter& writer, Mode mode) {
  uint64_t pcs[kMaxNativeDepth + kMaxPythonDepth + 1];
  int depth = 0;
  switch (mode) {
    case Mode::off:
      return 0;
    case Mode::native:
      depth = native(pcs, kMaxNativeDepth);
      break;
    case Mode::python: {
      depth = python_frames(writer, pcs, kMaxPythonDepth);
      if (depth > 0) break;
      if (depth < 0) {  // no Python we can read: native stacks (the header says why)
        depth = native(pcs, kMaxNativeDepth);
        break;
      }
      // A thread without Python frames (a C++ thread): say so, then its native stack.
      pcs[0] = python_sites::no_python_frame(writer);
      depth = 1 + native(pcs + 1, kMaxNativeDepth);
      break;
    }
    case Mode::mixed: {
      depth = native(pcs, kMaxNativeDepth);
      const int py = python_frames(writer, pcs + depth, kMaxPythonDepth);
      if (py > 0)
        depth += py;
      else if (py == 0)
        pcs[depth++] = python_sites::no_python_frame(writer);
      break;
    }
  }
  return depth > 0 ? writer.intern_stack(pcs, depth) : 0;
}

void reset_after_fork() {
  python_sites::reset();
}

}  // namespace gpumem::stacks
