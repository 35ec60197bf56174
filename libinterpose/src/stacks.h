// Native call stacks per allocation (GPUMEM_STACKS=1), captured with _Unwind_Backtrace into a
// stack buffer and deduplicated by TraceWriter::intern_stack (the writer symbolises them at
// exit). warm_up() runs at load, so the unwinder's first-use setup (loading frame tables) does
// not happen inside a hook.
#pragma once

#include <cstdint>

namespace gpumem {

class TraceWriter;

namespace stacks {

void warm_up();
// Captures the caller's stack, without gpumem's own frames, and returns its id; 0 on failure.
uint32_t capture(TraceWriter& writer);

}  // namespace stacks
}  // namespace gpumem
