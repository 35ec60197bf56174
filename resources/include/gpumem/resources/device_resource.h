// The bottom of every stack: forwards each request to the Upstream (the real or simulated CUDA
// call) and turns its raw code into a Status. Counts what it holds (allocated == reserved here).
#pragma once

#include "gpumem/resources/memory_resource.h"
#include "gpumem/resources/upstream.h"

namespace gpumem::resources {

class DeviceResource final : public MemoryResource {
 public:
  explicit DeviceResource(Upstream& upstream) : upstream_(upstream) {}

  Upstream& upstream() const { return upstream_; }
  uint64_t capacity(int device) const override { return upstream_.capacity(device); }

 private:
  Result do_allocate(const AllocRequest& req) override;
  // Uses req.bytes (the allocation's size, given by the caller) to keep the count.
  Freed do_deallocate(void* p, const FreeRequest& req) override;
  Status do_synchronize(int device) override;

  Upstream& upstream_;
};

}  // namespace gpumem::resources
