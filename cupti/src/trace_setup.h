// Where the CUPTI capture writes its trace and what its header says. Same GPUMEM_TRACE template
// semantics as the preload library (libinterpose/src/config.cpp): %p pid, %h host, %r rank (or
// "norank"), %t start time (UTC, YYYYMMDD-HHMMSS), %% a percent sign; default "gpumem-%p.trace";
// "off" for none. A small local copy because the preload's config is not a library of its own.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gpumem/trace_format.h"

namespace gpumem::cupti {

inline constexpr const char* kDefaultTraceTemplate = "gpumem-%p.trace";

// RANK, LOCAL_RANK, OMPI_COMM_WORLD_RANK, SLURM_PROCID, PMI_RANK: the first that is a number
// >= 0; -1 when none is.
int rank_from_environment();

// Expands a trace template. Returns false if the result does not fit in outlen.
bool expand_trace_template(const char* tmpl, int pid, const char* host, int rank,
                           uint64_t start_unix_ns, char* out, size_t outlen);

// Fills the header fields the writer does not: rank, host, pool ("none"), command line, config.
void fill_header(trace::Header* h, int rank, const char* trace_template, const char* cupti_path);

}  // namespace gpumem::cupti
