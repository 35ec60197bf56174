// Turns CUPTI activity records (CUDA 13 layouts: CUpti_ActivityMemory4 for
// CUPTI_ACTIVITY_KIND_MEMORY2, CUpti_ActivityMemoryPool3 for CUPTI_ACTIVITY_KIND_MEMORY_POOL) into
// gpumem trace records. Pure functions, no CUPTI calls, so tests feed them hand-built structs.
// The mapping is documented in docs/cupti.md.
#pragma once

#include <cupti_activity.h>

#include <cstdint>

#include "gpumem/trace/format.h"

namespace gpumem::cupti {

// String ids (TraceWriter::intern_string) of the fixed texts that pool records are written with.
struct PoolMarkIds {
  uint64_t created = 0;    // "cupti: memory pool created"
  uint64_t destroyed = 0;  // "cupti: memory pool destroyed"
};

inline constexpr const char* kPoolCreatedText = "cupti: memory pool created";
inline constexpr const char* kPoolDestroyedText = "cupti: memory pool destroyed";

// Adds clock_offset_ns to CUPTI timestamps (0 when CUPTI uses gpumem's clock already).
struct ConvertContext {
  int64_t clock_offset_ns = 0;
  PoolMarkIds pool_marks;
};

// Each returns true and fills *out when the record belongs in the trace; false for records the
// trace does not keep (static module data, pageable host memory, unknown kinds or operations).
bool convert_memory(const CUpti_ActivityMemory4& m, const ConvertContext& ctx, trace::Record* out);
bool convert_memory_pool(const CUpti_ActivityMemoryPool3& p, const ConvertContext& ctx,
                         trace::Record* out);
// Dispatches on activity->kind.
bool convert_activity(const CUpti_Activity* activity, const ConvertContext& ctx,
                      trace::Record* out);

}  // namespace gpumem::cupti
