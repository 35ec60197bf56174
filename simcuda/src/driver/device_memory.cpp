// simcuda_device_memory: a device's capacity and free bytes as cuMemGetInfo_v2 reports them, for
// simcuda's NVML (libnvidia-ml.so.1), which asks the driver loaded in its process so that NVML,
// the runtime and the driver give one answer. Outside the CUDA ABI; needs no current context.
#include <mutex>

#include "state.h"

using namespace simcuda;

// 0 and the figures when the driver is initialised and `device` exists; -1 otherwise (NVML then
// counts nothing of this process's: nothing was allocated before cuInit).
SIMCUDA_EXPORT int simcuda_device_memory(int device, unsigned long long* total,
                                         unsigned long long* free_bytes) {
  if (!initialized() || total == nullptr || free_bytes == nullptr || !valid_device(device))
    return -1;
  State& s = state();
  std::lock_guard lock(s.mu);
  const Device& dev = *s.devices[static_cast<size_t>(device)];
  *total = dev.capacity;
  *free_bytes = dev.free_bytes();
  return 0;
}
