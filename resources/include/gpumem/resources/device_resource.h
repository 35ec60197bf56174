// The bottom of every stack: forwards each request to the Upstream (the request's real call, or
// the simulated device) and turns its raw code into a Status. Counts what it holds: every byte
// taken from the device, segments and direct allocations (allocated == reserved here).
#pragma once

#include "gpumem/resources/memory_resource.h"
#include "gpumem/resources/statistics.h"
#include "gpumem/resources/upstream.h"

namespace gpumem::resources {

class DeviceResource final : public MemoryResource, public AllocationCounters {
 public:
  explicit DeviceResource(Upstream& device) : device_(device) {}

  Upstream& upstream() const { return device_; }

 private:
  Result do_allocate(const Request& req) override;
  // Uses req.bytes (the allocation's size, given by the caller) to keep the count.
  FreeResult do_deallocate(void* p, const Request& req) override;
  Status do_synchronize(int device, Family family) override;

  Upstream& device_;
};

}  // namespace gpumem::resources
