#include "simcuda_upstream.h"

#include "gpumem/trace/format.h"

namespace gpumem::replay {
namespace {
resources::SimulatedUpstream::Options one_device(uint64_t capacity) {
  resources::SimulatedUpstream::Options o;
  o.devices = 1;
  o.capacity = capacity;
  return o;
}

// cudaMallocAsync and its kin: served by the device's default pool, not by cudaMalloc's pages.
bool is_stream_ordered_alloc(const resources::Request& req) {
  using trace::Api;
  switch (static_cast<Api>(req.api)) {
    case Api::cudaMallocAsync:
    case Api::cudaMallocFromPoolAsync:
    case Api::cuMemAllocAsync:
    case Api::cuMemAllocFromPoolAsync:
      return true;
    default:
      return false;
  }
}
}  // namespace

SimcudaUpstream::SimcudaUpstream(uint64_t capacity)
    : sim_(one_device(capacity)), capacity_(capacity) {}

int SimcudaUpstream::alloc(void** p, const resources::Request& req) {
  if (p == nullptr || req.bytes == 0) return resources::SimulatedUpstream::kInvalidValue;
  uint64_t large = 0, small = 0, async = 0;
  if (is_stream_ordered_alloc(req))
    async = simcuda::round_up(req.bytes, simcuda::kSmallQuantum);
  else
    simcuda::charge_for(req.bytes, &large, &small);
  const uint64_t after = simcuda::charged_bytes(charged_large_ + large, small_ + small) +
                         simcuda::charged_bytes(0, async_ + async);
  if (after > capacity_) {
    *p = nullptr;
    return resources::SimulatedUpstream::kOutOfMemory;
  }
  resources::Request inner = req;
  inner.device = 0;
  const int code = sim_.alloc(p, inner);
  if (code != 0) return code;
  charged_large_ += large;
  small_ += small;
  async_ += async;
  const Live live = large != 0   ? Live{large, Bucket::large}
                    : small != 0 ? Live{small, Bucket::small}
                                 : Live{async, Bucket::async};
  live_.emplace(*p, live);
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
