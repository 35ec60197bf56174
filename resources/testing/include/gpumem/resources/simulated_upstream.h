// A device made of counters, for tests, benchmarks and `gpumem replay`: fake addresses handed out
// from a per-device counter (contiguous, 512 B aligned, never reused), a capacity per device, an
// optional "fail every allocation after the first N" switch (like SIMCUDA_FAIL_ALLOC_AFTER), an
// optional busy-wait per call (the cost model of SIMCUDA_ALLOC_LATENCY_US/FREE_LATENCY_US), and a
// log of every call for tests that check order. With back_with_host_memory the addresses are real
// host memory, so tests can write into blocks. A request with its own call (Request::real_alloc,
// real_free: the expandable pool's VMM handles) is made by that call and only counted here.
// Thread-safe (one mutex).
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "gpumem/resources/upstream.h"

namespace gpumem::resources {

class SimulatedUpstream final : public Upstream {
 public:
  // Codes as the runtime API spells them.
  static constexpr int kSuccess = 0;
  static constexpr int kInvalidValue = 1;  // cudaErrorInvalidValue
  static constexpr int kOutOfMemory = 2;   // cudaErrorMemoryAllocation
  static constexpr uint64_t kNoFailure = ~uint64_t{0};

  struct Options {
    int devices = 1;
    uint64_t capacity = uint64_t{80} << 30;  // per device
    uint64_t fail_alloc_after = kNoFailure;  // successful allocations before every alloc fails
    uint64_t alloc_latency_ns = 0;
    uint64_t free_latency_ns = 0;
    uint64_t sync_latency_ns = 0;
    bool back_with_host_memory = false;
    bool record_calls = false;
  };

  enum class Call : uint8_t { alloc, alloc_failed, free, synchronize };
  struct CallRecord {
    Call call;
    int device;
    uint64_t address;
    uint64_t bytes;
  };

  SimulatedUpstream() : SimulatedUpstream(Options{}) {}
  explicit SimulatedUpstream(const Options& options);
  ~SimulatedUpstream() override;

  int alloc(void** p, const Request& req) override;
  int free(void* p, const Request& req) override;
  bool is_oom(int code) const override { return code == kOutOfMemory; }
  int synchronize(int device, Family family) override;
  uint64_t capacity(int device) const;

  void set_fail_alloc_after(uint64_t n);
  uint64_t in_use(int device) const;
  uint64_t peak_in_use(int device) const;
  uint64_t live_count() const;
  uint64_t alloc_calls() const;  // successful and failed
  uint64_t free_calls() const;
  uint64_t sync_calls() const;
  std::vector<CallRecord> calls() const;

 private:
  struct DeviceState {
    uint64_t next_address;
    uint64_t in_use = 0;
    uint64_t peak = 0;
  };
  static void busy_wait(uint64_t ns);
  void record(Call call, int device, uint64_t address, uint64_t bytes);

  Options options_;
  mutable std::mutex mutex_;
  std::vector<DeviceState> devices_;
  std::unordered_map<uint64_t, uint64_t> live_;  // address -> bytes
  std::unordered_set<uint64_t> own_calls_;       // live_ entries made by the request's own call
  uint64_t successful_allocs_ = 0;
  uint64_t alloc_calls_ = 0;
  uint64_t free_calls_ = 0;
  uint64_t sync_calls_ = 0;
  std::vector<CallRecord> calls_;
};

}  // namespace gpumem::resources
