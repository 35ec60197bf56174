// Call stacks per allocation (GPUMEM_STACKS), deduplicated by TraceWriter::intern_stack:
//   native  return addresses, captured with _Unwind_Backtrace (symbolised by the writer at exit);
//   python  the thread's Python frames (python_frames.h), innermost first; a thread with no
//           Python frame gets a "[no Python frame]" entry followed by its native stack;
//   mixed   the native stack followed by the Python frames (both when the thread has Python).
// Python frames are pseudo return addresses with their own symbol records (python_sites.h), so
// a stack is a stack for every reader. warm_up() runs at load, so the unwinder's first-use set-up
// (loading frame tables) does not happen inside a hook.
#pragma once

#include <cstdint>

namespace gpumem {

class TraceWriter;

namespace stacks {

enum class Mode : uint8_t { off, native, python, mixed };

void warm_up(Mode mode);
// Captures the caller's stack, without gpumem's own frames, and returns its id; 0 on failure.
uint32_t capture(TraceWriter& writer, Mode mode);
// In a forked child, before its own trace opens.
void reset_after_fork();

}  // namespace stacks
}  // namespace gpumem
