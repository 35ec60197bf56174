// Rows by call site -> rows by Python source line (GPUMEM_STACKS=python|mixed). A user asks
// "which line of my script holds the memory", not "which of the 40 stacks through it": rows whose
// stacks share their innermost Python frame become one row, with the full stack of the largest of
// them kept as its frames. Rows without a Python frame (native-only traces, or a native thread's
// "[no Python frame]" stacks, each its own site) are kept as they are.
#pragma once

#include <vector>

#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

// Merges rows by GroupRow::python_line (set by the caller from the innermost Python frame);
// returns true when any row has one (the caller then reports grouped_by = "python_line").
// Sums are kept exactly: the merged rows add up to what the site rows added up to.
bool merge_by_python_line(std::vector<GroupRow>& rows);

}  // namespace gpumem::analyzer
