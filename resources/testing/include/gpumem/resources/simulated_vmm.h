// The virtual memory calls of a simulated device (VmmUpstream), for tests, benchmarks and `gpumem
// replay`, with the rules simcuda and CUDA apply (docs/simcuda.md "Virtual memory management"):
// sizes and addresses in multiples of the granularity, a mapping inside one reservation and over
// no other, an unmap of whole mappings only, a range freed only once nothing in it is mapped, an
// unknown handle refused. Codes are the driver's. Physical capacity is not checked here: the
// expandable pool allocates each handle through SimulatedUpstream, which counts it against the
// device's capacity. With back_with_host_memory a reservation is PROT_NONE host memory that
// becomes read/write where mapped, so a test touching an unmapped page crashes. With
// supported = false every call answers CUDA_ERROR_NOT_SUPPORTED (a device without VMM). Access is
// kept per device and per mapping, as CUDA and simcuda do (accessible()); a set_access over part
// of a mapping sets it for the whole mapping.
// Thread-safe (one mutex).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include "gpumem/resources/vmm_upstream.h"

namespace gpumem::resources {

class SimulatedVmm final : public VmmUpstream {
 public:
  static constexpr int kSuccess = 0;
  static constexpr int kInvalidValue = 1;    // CUDA_ERROR_INVALID_VALUE
  static constexpr int kOutOfMemory = 2;     // CUDA_ERROR_OUT_OF_MEMORY
  static constexpr int kInvalidHandle = 400; // CUDA_ERROR_INVALID_HANDLE
  static constexpr int kNotSupported = 801;  // CUDA_ERROR_NOT_SUPPORTED

  struct Options {
    int devices = 1;
    uint64_t granularity = uint64_t{2} << 20;
    bool back_with_host_memory = false;
    bool supported = true;
    uint64_t map_latency_ns = 0;    // per map and per unmap (the cost model of bench/)
  };

  SimulatedVmm() : SimulatedVmm(Options{}) {}
  explicit SimulatedVmm(const Options& options) : options_(options) {}
  ~SimulatedVmm() override;

  int granularity(int device, uint64_t* bytes) override;
  int reserve(int device, uint64_t bytes, uint64_t alignment, uintptr_t* va) override;
  int free_range(uintptr_t va, uint64_t bytes) override;
  int create(int device, uint64_t bytes, uint64_t* handle) override;
  int release(uint64_t handle) override;
  int map(uintptr_t va, uint64_t bytes, uint64_t handle) override;
  int unmap(uintptr_t va, uint64_t bytes) override;
  int set_access(int device, uintptr_t va, uint64_t bytes, bool read_write) override;
  bool is_oom(int code) const override { return code == kOutOfMemory; }

  size_t live_handles() const;
  size_t live_mappings() const;
  size_t live_ranges() const;
  uint64_t mapped_bytes() const;
  uint64_t map_calls() const;
  uint64_t unmap_calls() const;
  // Whether every byte of [va, va + bytes) is mapped and `device` was given read/write access to
  // it (what a kernel on that device touching the range needs).
  bool accessible(int device, uintptr_t va, uint64_t bytes) const;

 private:
  struct Handle {
    uint64_t bytes;
    bool released = false;
    int mappings = 0;
  };
  struct Mapping {
    uint64_t bytes;
    uint64_t handle;
    uint64_t devices = 0;  // bit d: device d has read/write access (set_access)
  };
  struct Reservation {
    uint64_t bytes;
    void* host = nullptr;  // the host mapping behind it (back_with_host_memory)
    uint64_t host_bytes = 0;
  };
  bool aligned(uint64_t v) const { return v % options_.granularity == 0; }
  void maybe_destroy(uint64_t id);

  Options options_;
  mutable std::mutex mutex_;
  uint64_t next_handle_ = 1;
  uint64_t next_address_ = uint64_t{0x7e00} << 32;
  std::unordered_map<uint64_t, Handle> handles_;
  std::map<uintptr_t, Mapping> mappings_;
  std::map<uintptr_t, Reservation> ranges_;
  uint64_t map_calls_ = 0;
  uint64_t unmap_calls_ = 0;
};

}  // namespace gpumem::resources
