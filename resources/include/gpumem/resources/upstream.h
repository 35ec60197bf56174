// The device: the only place where resources reach real (or simulated) device memory. The hooks
// implement it over the real CUDA calls found at run time; SimulatedUpstream implements it for
// tests, benchmarks and `gpumem replay`. Return values are the API's raw codes, 0 = success.
#pragma once

#include <cstdint>

#include "gpumem/resources/request.h"

namespace gpumem::resources {

class Upstream {
 public:
  virtual ~Upstream() = default;

  // Allocates req.bytes on req.device. req.api says which API the program used (so an
  // implementation can call the same family, e.g. cudaMallocAsync on req.stream); pool segments
  // come with api = trace::Api::pool, stream 0, flags 0: use the plain synchronous allocation.
  virtual int alloc(void** p, const Request& req) = 0;
  // Frees p. req.flags has kFlagAsync for a stream-ordered free on req.stream.
  virtual int free(void* p, const Request& req) = 0;
  // True when `code` (from alloc) means out of memory rather than another failure.
  virtual bool is_oom(int code) const = 0;
  // Waits until all work queued on `device` is done (cudaDeviceSynchronize / cuCtxSynchronize).
  virtual int synchronize(int device) = 0;
  // Physical capacity of `device` in bytes (0 when unknown).
  virtual uint64_t capacity(int device) const = 0;
};

}  // namespace gpumem::resources
