// libcupti, found and opened at run time (never linked), so libgpumem_cupti.so loads on any
// machine and says clearly why CUPTI cannot be used instead of failing to start.
#pragma once

#include <cupti.h>

#include <cstddef>

namespace gpumem::cupti {

struct CuptiApi {
  void* handle = nullptr;
  char path[4096] = {};  // the file that was opened
  CUptiResult (*GetVersion)(uint32_t*) = nullptr;
  CUptiResult (*GetResultString)(CUptiResult, const char**) = nullptr;
  CUptiResult (*Subscribe)(CUpti_SubscriberHandle*, CUpti_CallbackFunc, void*) = nullptr;
  CUptiResult (*Unsubscribe)(CUpti_SubscriberHandle) = nullptr;
  CUptiResult (*ActivityRegisterCallbacks)(CUpti_BuffersCallbackRequestFunc,
                                           CUpti_BuffersCallbackCompleteFunc) = nullptr;
  CUptiResult (*ActivityRegisterTimestampCallback)(CUpti_TimestampCallbackFunc) = nullptr;
  CUptiResult (*ActivityEnable)(CUpti_ActivityKind) = nullptr;
  CUptiResult (*ActivityDisable)(CUpti_ActivityKind) = nullptr;
  CUptiResult (*ActivityGetNextRecord)(uint8_t*, size_t, CUpti_Activity**) = nullptr;
  CUptiResult (*ActivityGetNumDroppedRecords)(CUcontext, uint32_t, size_t*) = nullptr;
  CUptiResult (*ActivityFlushAll)(uint32_t) = nullptr;
  CUptiResult (*GetTimestamp)(uint64_t*) = nullptr;
};

// Opens libcupti.so.13: `override_path` when given (GPUMEM_CUPTI_LIB), else, in order, the
// cupti/ folder beside this library (what scripts/gpu-build carries), the normal library search,
// the toolkit this was built with, and the usual /usr/local/cuda folders. On failure returns false
// and writes one line into err saying what was tried and what to do.
bool load_cupti(const char* override_path, CuptiApi* api, char* err, size_t errlen);

// The CUPTI result's name (via cuptiGetResultString when loaded), e.g. "CUPTI_ERROR_UNKNOWN".
const char* result_name(const CuptiApi& api, CUptiResult result);

// What a CUPTI error at start-up means for the user and what to do about it, one sentence.
const char* unavailable_advice(CUptiResult result);

}  // namespace gpumem::cupti
