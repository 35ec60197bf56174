#include "gpumem/resources/device_resource.h"

namespace gpumem::resources {

Result DeviceResource::do_allocate(const AllocRequest& req) {
  Result r;
  int code = upstream_.alloc(&r.ptr, req);
  if (code == 0 && r.ptr != nullptr) return r;
  r.ptr = nullptr;
  r.upstream_code = code;
  r.status = upstream_.is_oom(code) ? Status::out_of_memory : Status::upstream_error;
  r.in_use = allocated_bytes();
  return r;
}

MemoryResource::Freed DeviceResource::do_deallocate(void* p, const FreeRequest& req) {
  int code = upstream_.free(p, req);
  if (code != 0) return {Status::upstream_error, 0};
  return {Status::ok, req.bytes};
}

Status DeviceResource::do_synchronize(int device) {
  return upstream_.synchronize(device) == 0 ? Status::ok : Status::upstream_error;
}

}  // namespace gpumem::resources
