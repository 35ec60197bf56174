// The device: the only place where resources reach real (or simulated) device memory. The preload
// implements it over the real CUDA calls (policy.cpp: a request's own real call, or the plain
// calls of its family for pool segments); SimulatedUpstream implements it for tests, benchmarks
// and `gpumem replay`. Return values are the API's raw codes, 0 = success.
#pragma once

#include <cstdint>

#include "gpumem/resources/request.h"

namespace gpumem::resources {

class Upstream {
 public:
  virtual ~Upstream() = default;

  // Allocates req.bytes on req.device. A request from a hook carries its real call
  // (req.real_alloc), which the preload runs; pool segments come with api = trace::Api::pool,
  // stream 0, flags 0 and no real call: the plain synchronous allocation of req.family.
  virtual int alloc(void** p, const Request& req) = 0;
  // Frees p: req.real_free, or for a segment the plain free of req.family. req.flags has
  // kFlagAsync for a stream-ordered free on req.stream.
  virtual int free(void* p, const Request& req) = 0;
  // True when `code` (from alloc) means out of memory rather than another failure.
  virtual bool is_oom(int code) const = 0;
  // Waits until all work queued on `device` is done (cudaDeviceSynchronize / cuCtxSynchronize).
  virtual int synchronize(int device, Family family) = 0;
};

}  // namespace gpumem::resources
