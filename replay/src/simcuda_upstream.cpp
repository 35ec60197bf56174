#include "simcuda_upstream.h"

#include "gpumem/trace_format.h"

namespace gpumem::replay {
namespace {
resources::SimulatedUpstream::Options one_device(uint64_t capacity) {
  resources::SimulatedUpstream::Options o;
  o.devices = 1;
  o.capacity = capacity;
  return o;
}
}  // namespace

SimcudaUpstream::SimcudaUpstream(uint64_t capacity)
    : sim_(one_device(capacity)), capacity_(capacity) {}

SimcudaUpstream::Bucket SimcudaUpstream::bucket_for(const resources::Request& req,
                                                    uint64_t rounded) {
  using trace::Api;
  switch (static_cast<Api>(req.api)) {
    case Api::cudaMallocAsync:
    case Api::cudaMallocFromPoolAsync:
    case Api::cuMemAllocAsync:
    case Api::cuMemAllocFromPoolAsync:
      return Bucket::async;
    default:
      break;
  }
  return rounded >= kSmallBelow ? Bucket::large : Bucket::small;
}

int SimcudaUpstream::alloc(void** p, const resources::Request& req) {
  if (p == nullptr || req.bytes == 0) return resources::SimulatedUpstream::kInvalidValue;
  const uint64_t rounded = (req.bytes + 511) / 512 * 512;
  const Bucket b = bucket_for(req, rounded);
  uint64_t after = charged_large_ + pages(small_) + pages(async_);
  switch (b) {
    case Bucket::large:
      after += pages(rounded);
      break;
    case Bucket::small:
      after += pages(small_ + rounded) - pages(small_);
      break;
    case Bucket::async:
      after += pages(async_ + rounded) - pages(async_);
      break;
  }
  if (after > capacity_) {
    *p = nullptr;
    return resources::SimulatedUpstream::kOutOfMemory;
  }
  resources::Request inner = req;
  inner.device = 0;
  const int code = sim_.alloc(p, inner);
  if (code != 0) return code;
  const uint64_t charge = b == Bucket::large ? pages(rounded) : rounded;
  (b == Bucket::large ? charged_large_ : b == Bucket::small ? small_ : async_) += charge;
  live_.emplace(*p, Live{charge, b});
  if (used() > peak_) peak_ = used();
  return 0;
}

int SimcudaUpstream::free(void* p, const resources::Request& req) {
  auto it = live_.find(p);
  if (it == live_.end()) return resources::SimulatedUpstream::kInvalidValue;
  resources::Request inner = req;
  inner.device = 0;
  const int code = sim_.free(p, inner);
  if (code != 0) return code;
  const Live l = it->second;
  (l.bucket == Bucket::large   ? charged_large_
   : l.bucket == Bucket::small ? small_
                               : async_) -= l.charge;
  live_.erase(it);
  return 0;
}

}  // namespace gpumem::replay
