// The simulated device replay runs against: gpumem_resources' SimulatedUpstream (addresses,
// capacity, call counts) charged by simcuda's own rule (gpumem/simcuda/accounting.h, the code the
// simulated driver runs; docs/simcuda.md, "Accounting"), so a replay fails exactly where simcuda's
// cudaMalloc would:
//   - an allocation of 1 MiB or more is charged whole 2 MiB pages;
//   - smaller ones are rounded to 512 B and packed into shared 2 MiB small pages;
//   - stream-ordered allocations (cudaMallocAsync, cuMemAllocAsync, ...FromPoolAsync) come from the
//     device's default pool with release threshold 0: it holds its live allocations, each rounded
//     to 512 B, in whole 2 MiB pages.
// SimulatedUpstream alone rounds to 512 B only; it still sees every call, so its own capacity
// check never refuses what this accounting allowed.
#pragma once

#include <unordered_map>

#include "gpumem/resources/simulated_upstream.h"
#include "gpumem/simcuda/accounting.h"

namespace gpumem::replay {

class SimcudaUpstream final : public resources::Upstream {
 public:
  explicit SimcudaUpstream(uint64_t capacity);

  int alloc(void** p, const resources::Request& req) override;
  int free(void* p, const resources::Request& req) override;
  bool is_oom(int code) const override { return sim_.is_oom(code); }
  // Replay runs one device per stack: every device ordinal maps to the inner device 0.
  int synchronize(int /*device*/, resources::Family family) override {
    return sim_.synchronize(0, family);
  }

  uint64_t used() const {
    return simcuda::charged_bytes(charged_large_, small_) + simcuda::charged_bytes(0, async_);
  }
  uint64_t peak() const { return peak_; }

 private:
  enum class Bucket : uint8_t { large, small, async };
  struct Live {
    uint64_t charge;  // large: pages; small/async: bytes rounded to 512
    Bucket bucket;
  };

  resources::SimulatedUpstream sim_;
  uint64_t capacity_;
  uint64_t charged_large_ = 0;
  uint64_t small_ = 0;
  uint64_t async_ = 0;
  uint64_t peak_ = 0;
  std::unordered_map<void*, Live> live_;
};

}  // namespace gpumem::replay
