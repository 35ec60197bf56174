// Where the CUPTI capture writes its trace and what its header says. Same GPUMEM_TRACE template
// semantics as the preload library (libinterpose/src/config.cpp): %p pid, %h host, %r rank (or
// "norank"), %t start time (UTC, YYYYMMDD-HHMMSS), %% a percent sign; default "gpumem-%p.trace";
// "off" for none. A small local copy because the preload's config is not a library of its own.
#pragma once

#include "gpumem/trace_name.h"

#include <cstddef>
#include <cstdint>

#include "gpumem/trace/format.h"

namespace gpumem::cupti {

inline constexpr const char* kDefaultTraceTemplate = "gpumem-%p.trace";


// Trace names and ranks: gpumem/trace_name.h, shared with the preload.

// Fills the header fields the writer does not: rank, host, pool ("none"), command line, config.
void fill_header(trace::Header* h, int rank, const char* trace_template, const char* cupti_path);

}  // namespace gpumem::cupti
