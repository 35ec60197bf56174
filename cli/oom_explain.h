// OOM forensics' last step (docs/oom.md): what would have fitted, and the settings the numbers
// support. The analyzer lists each failure (Report::ooms); this replays each final one's device
// program up to and including the failed request with `gpumem replay`'s smallest-limit search, per
// policy, and derives the advice. `gpumem report` and `gpumem run` call it before rendering.
#pragma once

#include <string>
#include <vector>

#include "gpumem/analyzer/model.h"

namespace gpumem::cli {

// Fills would_fit and advice of every final OOM in `report` (the traces are read again, once
// each). A trace replay cannot read leaves its OOMs as they are, with a note in *notes.
void explain_ooms(analyzer::Report& report, std::vector<std::string>* notes);

// The advice for one OOM from its numbers and its would_fit rows (exposed for the tests).
std::vector<analyzer::OomAdvice> oom_advice(const analyzer::Oom& oom, const std::string& pool);

// `gpumem run`: when `trace` holds an allocation that failed for good, the explanation for
// stderr (one block per final failure, at most three); "" otherwise.
std::string run_explanation(const std::string& trace);

}  // namespace gpumem::cli
