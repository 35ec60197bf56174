// The frame reader's offsets (libinterpose/src/stacks/python_layouts.h) against the installed
// Python's own headers: offsetof() on the real structs, for the version the headers are.
#define Py_BUILD_CORE 1
#include <Python.h>
#include <gtest/gtest.h>
#include <internal/pycore_frame.h>

#include <cstddef>

#include "stacks/python_layouts.h"

namespace {

TEST(PythonLayout, TableMatchesTheInstalledHeaders) {
  const auto* l = gpumem::stacks::python::layout_for(PY_MAJOR_VERSION, PY_MINOR_VERSION);
  if (l == nullptr) GTEST_SKIP() << "Python " PY_VERSION " is not a supported version";
  EXPECT_EQ(l->tstate_cframe, offsetof(PyThreadState, cframe));
  EXPECT_EQ(l->cframe_current_frame, offsetof(_PyCFrame, current_frame));
  EXPECT_EQ(l->frame_code, offsetof(_PyInterpreterFrame, f_code));
  EXPECT_EQ(l->frame_previous, offsetof(_PyInterpreterFrame, previous));
  EXPECT_EQ(l->frame_instr, offsetof(_PyInterpreterFrame, prev_instr));
  EXPECT_EQ(l->frame_owner, offsetof(_PyInterpreterFrame, owner));
  EXPECT_EQ(l->code_filename, offsetof(PyCodeObject, co_filename));
  EXPECT_EQ(l->code_qualname, offsetof(PyCodeObject, co_qualname));
  EXPECT_EQ(l->code_adaptive, offsetof(PyCodeObject, co_code_adaptive));
  EXPECT_EQ(l->ascii_size, sizeof(PyASCIIObject));
  EXPECT_EQ(l->compact_size, sizeof(PyCompactUnicodeObject));
  EXPECT_EQ(l->compact_utf8_length, offsetof(PyCompactUnicodeObject, utf8_length));
  EXPECT_EQ(l->compact_utf8, offsetof(PyCompactUnicodeObject, utf8));
  EXPECT_EQ(gpumem::stacks::python::kObType, offsetof(PyObject, ob_type));
  EXPECT_EQ(gpumem::stacks::python::kUnicodeLength, offsetof(PyASCIIObject, length));
  EXPECT_EQ(gpumem::stacks::python::kUnicodeState, offsetof(PyASCIIObject, state));
}

}  // namespace
