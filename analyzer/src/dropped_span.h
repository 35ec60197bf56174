// A bounded trace's dropped middle (GPUMEM_TRACE_MAX; docs/trace-format.md "Bounded traces") in
// the report: the span that went, and the records its digest did not keep added to the counts of
// their devices, so that counts and churn totals stay those of the whole run.
#pragma once

#include <cstdint>
#include <vector>

#include "gpumem/analyzer/model.h"
#include "gpumem/trace/reader.h"

namespace gpumem::analyzer {

// `devices`: the trace's own device reports (already made from what was read).
void add_dropped_span(const trace::DroppedSpan& span, uint64_t clock_base_ns,
                      TraceSummary* summary, DeviceReport* devices, size_t device_count);

}  // namespace gpumem::analyzer
