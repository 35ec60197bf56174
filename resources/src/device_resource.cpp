#include "gpumem/resources/device_resource.h"

namespace gpumem::resources {

Result DeviceResource::do_allocate(const Request& req) {
  Result r;
  if (refused_size(req, &r)) return r;
  const int code = device_.alloc(&r.ptr, req);
  if (code == 0 && r.ptr != nullptr) {
    count_alloc(req.bytes);
    return r;
  }
  r.ptr = nullptr;
  r.upstream_code = code;
  r.status = device_.is_oom(code) ? Status::out_of_memory : Status::upstream_error;
  r.in_use = allocated_bytes();
  count_failed();
  return r;
}

FreeResult DeviceResource::do_deallocate(void* p, const Request& req) {
  const int code = device_.free(p, req);
  if (code != 0) return {Status::upstream_error, code};
  count_free(req.bytes);
  return {};
}

Status DeviceResource::do_synchronize(int device, Family family) {
  return device_.synchronize(device, family) == 0 ? Status::ok : Status::upstream_error;
}

}  // namespace gpumem::resources
