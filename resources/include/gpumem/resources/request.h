// What a resource is asked for and what it answers. A hook builds one Request (its arguments, its
// API family, its real call), the tracking layer and the device's resource stack consume it, and
// the hook translates the answer's Status into its own API's return code. Nothing here knows CUDA:
// api/flags are the trace format's values, raw codes are the family's own (0 = success).
#pragma once

#include <cstdint>
#include <type_traits>

#include "gpumem/trace/format.h"

namespace gpumem::resources {

// A non-owning reference to a callable (a hook's lambda): a request carries its real call without
// allocating. Valid only while the callable lives, i.e. during the call that made the request.
template <class Signature>
class CallRef;
template <class R, class... Args>
class CallRef<R(Args...)> {
 public:
  CallRef() = default;
  template <class F>
    requires(!std::is_same_v<std::remove_cv_t<F>, CallRef>)
  CallRef(F& f)
      : obj_(&f), fn_([](void* o, Args... a) -> R { return (*static_cast<F*>(o))(a...); }) {}
  R operator()(Args... a) const { return fn_(obj_, a...); }
  explicit operator bool() const { return fn_ != nullptr; }

 private:
  void* obj_ = nullptr;
  R (*fn_)(void*, Args...) = nullptr;
};

// Which CUDA API a request came through. The device's plain calls (pool segments, synchronize)
// are taken from the same family: a driver-only program may have no runtime at all.
enum class Family : uint8_t { runtime, driver };

// One allocation or free. For a free, `bytes` is the size the matching allocation asked for: the
// top of the stack (the tracking layer) knows it from its own pointer map. Pools ignore it (they
// know their blocks); the limit and the device resource count with it.
struct Request {
  int device = 0;
  uint64_t bytes = 0;
  uint64_t stream = 0;  // cudaStream_t / CUstream value; 0 = legacy default stream
  trace::Api api = trace::Api::unknown;
  uint16_t flags = 0;  // gpumem::trace flags; kFlagAsync marks a stream-ordered call
  Family family = Family::runtime;
  // The program's own call, from a hook: the device resource runs it instead of a plain
  // allocation, so cudaMallocPitch gets its pitch, cuMemCreate its properties. real_alloc stores
  // the address (or handle) in *out on success; both return the family's raw code.
  CallRef<int(void** out)> real_alloc{};
  CallRef<int()> real_free{};
  // For the tracking layer: the device of a free whose pointer is unknown (device is then
  // kDeviceUnresolved, dispatch.h), asked only then: the stream's for a stream-ordered free, else
  // the caller's current one; it gets `stream`. Null elsewhere.
  int (*resolve_device)(uint64_t stream) = nullptr;
};

inline bool is_stream_ordered(const Request& r) {
  return (r.flags & trace::kFlagAsync) != 0;
}

enum class Status : uint8_t {
  ok,
  out_of_memory,   // a limit, a pool or the device refused: translate to the API's OOM code
  invalid_value,   // zero bytes, wrong device, unknown pointer, double free
  upstream_error,  // the device call failed otherwise: upstream_code is its raw code
};

const char* status_name(Status s);

struct Result {
  void* ptr = nullptr;  // the address, or a VMM handle's value (cuMemCreate)
  Status status = Status::ok;
  int upstream_code = 0;  // raw code of the Upstream call that failed (cudaError_t/CUresult), or 0
  uint64_t in_use = 0;    // on out_of_memory: bytes in use as the refusing layer counts them

  bool ok() const { return status == Status::ok; }
};

// What a free answers: the real free's own code comes back through the stack with it.
struct FreeResult {
  Status status = Status::ok;
  int upstream_code = 0;  // raw code of the Upstream free that failed, or 0

  bool ok() const { return status == Status::ok; }
  friend bool operator==(const FreeResult& r, Status s) { return r.status == s; }
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
