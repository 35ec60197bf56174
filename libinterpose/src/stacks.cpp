// See stacks.h.
#include "stacks.h"

#include <link.h>
#include <unwind.h>

#include <cstdint>

#include "trace/trace_writer.h"

namespace gpumem::stacks {
namespace {

constexpr int kMaxDepth = 48;

struct Walk {
  uint64_t* pcs;
  int depth;
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
  return w->depth < kMaxDepth ? _URC_NO_REASON : _URC_END_OF_STACK;
}

}  // namespace

void warm_up() {
  dl_iterate_phdr(find_self, nullptr);
  uint64_t pcs[kMaxDepth];
  Walk w{pcs, 0};
  _Unwind_Backtrace(on_frame, &w);
}

uint32_t capture(TraceWriter& writer) {
  uint64_t pcs[kMaxDepth];
  Walk w{pcs, 0};
  _Unwind_Backtrace(on_frame, &w);
  return w.depth > 0 ? writer.intern_stack(pcs, w.depth) : 0;
}

}  // namespace gpumem::stacks
