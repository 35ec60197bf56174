// The calling thread's Python frames, read without the GIL (docs/attribution.md says why).
//
// A thread that calls CUDA from Python (ctypes, PyTorch's bindings) has usually released the GIL,
// but its own frame chain cannot change while it is inside that call: the frames are read in
// place, the way sampling profilers read them, through the layouts of the supported CPython
// versions. Nothing links libpython: the interpreter is found with dlsym, so a process without
// Python pays one failed lookup, once.
//
// Supported: CPython 3.11 and 3.12 (the layouts below). Any other version, a build whose objects
// do not look as expected, or no Python at all: runtime().state says so and walk() returns -1.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gpumem::stacks::python {

enum class State : uint8_t {
  absent,       // no Python interpreter in this process
  supported,    // frames can be read
  unsupported,  // an interpreter this code cannot read (version, build); see reason
};

struct RuntimeInfo {
  State state = State::absent;
  unsigned major = 0, minor = 0, micro = 0;  // from Py_Version, when present
  const char* reason = "";                   // for people, when not supported
};

// Looks the interpreter up once (thread-safe; cheap after the first call).
const RuntimeInfo& runtime();

// One Python frame: the code object and the byte offset of the instruction being executed, which
// together give file, function and line (describe()).
struct Frame {
  uintptr_t code = 0;
  int32_t offset = -1;  // -1: the frame has not started (its first line)
};

// Writes the calling thread's Python frames into out[0..max), innermost first. Returns how many,
// 0 when this thread runs no Python code (a C++ thread), -1 when runtime() is not supported.
// Async-signal-safe in the sense that matters here: no lock, no allocation, no Python call.
int walk(Frame* out, int max);

// "function (file:line)" of a frame from walk(), written into buf (cut to fit, NUL-terminated).
// Reads the code object (filename, qualified name, line table via PyCode_Addr2Line); call it
// while the frame is still live, i.e. on the thread that walked it, before it returns.
void describe(const Frame& frame, char* buf, size_t len);

}  // namespace gpumem::stacks::python
