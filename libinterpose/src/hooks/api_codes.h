// The one place where an answer's Status becomes an API's return code, per hook family: the hooks
// return it, and the tracking layer writes the same code into the trace (Record::result).
// Upstream errors keep the real call's own code.
#pragma once

#include <cuda.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "gpumem/resources/request.h"

namespace gpumem::hooks {

template <class Code>
struct FamilyCodes {
  Code success, out_of_memory, invalid_value;
};
inline constexpr FamilyCodes<cudaError_t> kRuntimeCodes{cudaSuccess, cudaErrorMemoryAllocation,
                                                        cudaErrorInvalidValue};
inline constexpr FamilyCodes<CUresult> kDriverCodes{CUDA_SUCCESS, CUDA_ERROR_OUT_OF_MEMORY,
                                                    CUDA_ERROR_INVALID_VALUE};

template <class Code>
constexpr int32_t api_code(const FamilyCodes<Code>& codes, resources::Status s,
                           int32_t upstream_code) {
  switch (s) {
    case resources::Status::ok:
      return static_cast<int32_t>(codes.success);
    case resources::Status::out_of_memory:
      return static_cast<int32_t>(codes.out_of_memory);
    case resources::Status::invalid_value:
      return static_cast<int32_t>(codes.invalid_value);
    case resources::Status::upstream_error:
      break;
  }
  return upstream_code;
}

constexpr int32_t api_code(resources::Family family, resources::Status s,
                           int32_t upstream_code = 0) {
  return family == resources::Family::driver ? api_code(kDriverCodes, s, upstream_code)
                                             : api_code(kRuntimeCodes, s, upstream_code);
}

// Out of memory as each family spells it (how the device's raw codes are classified).
constexpr bool is_out_of_memory(int32_t code) {
  return code == cudaErrorMemoryAllocation || code == CUDA_ERROR_OUT_OF_MEMORY;
}

}  // namespace gpumem::hooks
