// What a resource is asked for and what it answers. Hooks translate a CUDA call into a Request,
// hand it to the device's resource stack (memory_resource.h), and translate the Result back into
// their API's return code. Nothing here knows CUDA: api/flags are the trace format's values.
#pragma once

#include <cstdint>

#include "gpumem/trace/format.h"

namespace gpumem::resources {

// One allocation or free. For a free, `bytes` is the size the matching allocation asked for: the
// top of the stack (the tracking layer) knows it from its own pointer map. Pools ignore it (they
// know their blocks); the limit and the device resource count with it.
struct Request {
  int device = 0;
  uint64_t bytes = 0;
  uint64_t stream = 0;  // cudaStream_t / CUstream value; 0 = legacy default stream
  uint16_t api = 0;     // gpumem::trace::Api
  uint16_t flags = 0;   // gpumem::trace flags; kFlagAsync marks a stream-ordered call
};
using AllocRequest = Request;
using FreeRequest = Request;

inline bool is_stream_ordered(const Request& r) {
  return (r.flags & trace::kFlagAsync) != 0;
}

enum class Status {
  ok,
  out_of_memory,   // a limit, a pool or the device refused: translate to the API's OOM code
  invalid_value,   // zero bytes, wrong device, unknown pointer, double free
  upstream_error,  // the device call failed otherwise: Result::upstream_code is its raw code
};

const char* status_name(Status s);

struct Result {
  void* ptr = nullptr;
  Status status = Status::ok;
  int upstream_code = 0;  // raw code of the Upstream call that failed (cudaError_t/CUresult), or 0
  uint64_t in_use = 0;    // on out_of_memory: bytes in use as the refusing layer counts them

  bool ok() const { return status == Status::ok; }
};

// The pooled block that contains an address (pointer queries on pooled memory).
struct BlockInfo {
  void* base = nullptr;      // start of the block handed to the program
  uint64_t bytes = 0;        // bytes the program asked for
  uint64_t block_bytes = 0;  // bytes the block occupies (rounded to 512)
  void* segment_base = nullptr;
  uint64_t segment_bytes = 0;
  int device = 0;
};

}  // namespace gpumem::resources
