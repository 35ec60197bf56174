// Where CPython keeps what python_frames.cpp reads, per supported version: byte offsets of
// fields in PyThreadState, _PyCFrame, _PyInterpreterFrame, PyCodeObject and the compact str
// objects, as CPython's own headers lay them out on LP64 (x86-64, aarch64). The numbers come from
// those headers (Include/cpython/pystate.h, Include/internal/pycore_frame.h,
// Include/cpython/code.h, Include/cpython/unicodeobject.h of each version);
// tests/attribution/python_layout_test.cpp checks the row of the installed Python against
// offsetof() on its headers.
#pragma once

#include <cstddef>

namespace gpumem::stacks::python {

struct Layout {
  unsigned minor;  // 3.minor
  // PyThreadState -> _PyCFrame -> the innermost _PyInterpreterFrame
  size_t tstate_cframe;
  size_t cframe_current_frame;
  // _PyInterpreterFrame
  size_t frame_code;
  size_t frame_previous;
  size_t frame_instr;  // prev_instr: the instruction being executed (a CALL, while we run)
  size_t frame_owner;
  int cstack_owner;  // owner value of the C-stack shim frames to skip, -1 = none
  // PyCodeObject
  size_t code_filename;
  size_t code_qualname;
  size_t code_adaptive;  // co_code_adaptive: the bytecode, what prev_instr points into
  // PyASCIIObject / PyCompactUnicodeObject
  size_t ascii_size;
  size_t compact_size;
  size_t compact_utf8_length;
  size_t compact_utf8;
};

inline constexpr Layout kLayouts[] = {
    {11, 56, 8, 32, 48, 56, 69, -1, 112, 128, 184, 48, 72, 48, 56},
    {12, 56, 0, 0, 8, 56, 70, 3, 112, 128, 192, 40, 56, 40, 48},
};

inline constexpr const Layout* layout_for(unsigned major, unsigned minor) {
  if (major != 3) return nullptr;
  for (const Layout& l : kLayouts)
    if (l.minor == minor) return &l;
  return nullptr;
}

// Fields every supported version shares.
inline constexpr size_t kObType = 8;          // PyObject::ob_type
inline constexpr size_t kUnicodeLength = 16;  // PyASCIIObject::length
inline constexpr size_t kUnicodeState = 32;   // PyASCIIObject::state (bit field word)

}  // namespace gpumem::stacks::python
