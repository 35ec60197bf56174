// Python frames as entries of the trace's ordinary stack table. A Python frame (code object +
// instruction offset) gets a pseudo return address, trace::kPythonFrameTag | id, and an Op::symbol
// record naming it "function (file:line)" the first time it is seen, before any stack record
// that uses it; stacks then mix native return addresses and Python frames freely, and every
// reader resolves both through the same symbol table (docs/trace-format.md, "Python frames").
//
// Lock-free: a (code, offset) pair is claimed in a fixed table by compare-and-swap; a thread that
// finds the pair claimed but not yet named, or the table full, names the frame again under a fresh
// id (more bytes, never a wrong name), as TraceWriter::intern_stack does for stacks.
#pragma once

#include <cstdint>

#include "python_frames.h"

namespace gpumem {

class TraceWriter;

namespace stacks::python_sites {

// The pseudo address of frame f (writing its symbol record first when new).
uint64_t address_of(TraceWriter& writer, const python::Frame& f);
// The pseudo address that says "this thread had no Python frame" (symbol written once).
uint64_t no_python_frame(TraceWriter& writer);
// In a forked child, before its own trace opens: ids of the parent's trace mean nothing there.
void reset();

}  // namespace stacks::python_sites
}  // namespace gpumem
