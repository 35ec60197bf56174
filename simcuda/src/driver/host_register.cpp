// Host registration (cuMemHostRegister_v2 / cuMemHostUnregister): page-locking the program's own
// memory. Nothing is charged to a device; simcuda keeps the registered ranges so that the errors
// CUDA documents come back: a range overlapping a registered one or pinned host memory is
// CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, unregistering anything but a registered base is
// CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED.
#include <map>

#include "state.h"

namespace simcuda {
namespace {

constexpr unsigned kKnownFlags = CU_MEMHOSTREGISTER_PORTABLE | CU_MEMHOSTREGISTER_DEVICEMAP |
                                 CU_MEMHOSTREGISTER_IOMEMORY | CU_MEMHOSTREGISTER_READ_ONLY;

// base -> bytes, guarded by state().mu (fork copies it with the rest). Never destroyed.
std::map<uintptr_t, uint64_t>& registered() {
  static auto* map = new std::map<uintptr_t, uint64_t>();
  return *map;
}

// Does [p, p + n) meet a range of `ranges` (base -> length)? Caller holds the lock.
template <class Map, class Length>
bool overlaps(const Map& ranges, uintptr_t p, uint64_t n, Length length) {
  auto it = ranges.lower_bound(p + n);  // first range starting at or after the end
  if (it == ranges.begin()) return false;
  --it;
  return it->first + length(it->second) > p;
}

}  // namespace
}  // namespace simcuda

using namespace simcuda;

SIMCUDA_EXPORT CUresult CUDAAPI cuMemHostRegister_v2(void* p, size_t bytesize, unsigned int flags) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  int device = 0;
  if (CUresult r = current_device(&device)) return r;
  if (p == nullptr || bytesize == 0 || (flags & ~kKnownFlags) != 0) return CUDA_ERROR_INVALID_VALUE;
  const auto base = reinterpret_cast<uintptr_t>(p);
  if (base + bytesize < base) return CUDA_ERROR_INVALID_VALUE;
  // I/O memory (a third-party device's PCIe window) does not exist on a simulated machine.
  if ((flags & CU_MEMHOSTREGISTER_IOMEMORY) != 0) return CUDA_ERROR_NOT_SUPPORTED;
  State& s = state();
  std::lock_guard lock(s.mu);
  if (overlaps(registered(), base, bytesize, [](uint64_t n) { return n; }) ||
      overlaps(s.host, base, bytesize, [](const HostBlock& b) { return b.mapped; }))
    return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
  registered().emplace(base, bytesize);
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemHostUnregister(void* p) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  int device = 0;
  if (CUresult r = current_device(&device)) return r;
  if (p == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(state().mu);
  if (registered().erase(reinterpret_cast<uintptr_t>(p)) == 0)
    return CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
  return CUDA_SUCCESS;
}
