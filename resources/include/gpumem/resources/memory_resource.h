// The base of every resource: public non-virtual allocate/deallocate around private virtuals, in
// the shape of RAPIDS RMM's device_memory_resource, and nothing else a stack does not need from
// every layer. Statistics live in the layers that own them (statistics.h: the device, the limit,
// the pools), and queries only one layer can answer (reserved bytes, the limit, free blocks,
// pointer lookup, empty_cache) are that layer's own; DeviceStack (stack.h) gathers them.
//
// Thread safety: allocate/deallocate/synchronize may be called from any thread.
#pragma once

#include <cstdint>

#include "gpumem/resources/request.h"

namespace gpumem::resources {

// Requests above this can never be served; refused with out_of_memory before any rounding.
inline constexpr uint64_t kMaxRequestBytes = uint64_t{1} << 56;

class MemoryResource {
 public:
  virtual ~MemoryResource() = default;
  MemoryResource(const MemoryResource&) = delete;
  MemoryResource& operator=(const MemoryResource&) = delete;

  // Zero bytes is invalid_value (hooks answer zero-size calls themselves, as their API does);
  // above kMaxRequestBytes, out_of_memory. Each layer checks with refused_size (statistics.h),
  // so the refusal is counted where the counters are.
  Result allocate(const Request& req) { return do_allocate(req); }
  // invalid_value for p == nullptr or a pointer this resource does not know (pools); the real
  // free's own code comes back in upstream_code.
  FreeResult deallocate(void* p, const Request& req) {
    if (p == nullptr) return {Status::invalid_value, 0};
    return do_deallocate(p, req);
  }
  // Waits for the device's queued work (through the plain call of `family`); pools also make
  // blocks freed before it reusable.
  Status synchronize(int device, Family family = Family::runtime) {
    return do_synchronize(device, family);
  }

 protected:
  MemoryResource() = default;

 private:
  virtual Result do_allocate(const Request& req) = 0;
  virtual FreeResult do_deallocate(void* p, const Request& req) = 0;
  virtual Status do_synchronize(int device, Family family) = 0;
};

}  // namespace gpumem::resources
