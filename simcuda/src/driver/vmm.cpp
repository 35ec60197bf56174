// Virtual memory management. A reservation is an anonymous PROT_NONE mapping; a physical handle
// is a memfd of its size (pages appear only when touched); cuMemMap maps the memfd over the
// reserved range with MAP_FIXED (still PROT_NONE), cuMemSetAccess makes it readable/writable,
// and cuMemUnmap puts a PROT_NONE anonymous mapping back. Handles are charged to their device
// from cuMemCreate until they are both released and unmapped everywhere.
// SIMCUDA_VMM=0 models a device or driver without VMM: cuDeviceGetAttribute says so
// (CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED = 0) and every call here returns
// CUDA_ERROR_NOT_SUPPORTED, as the CUDA documentation gives for such devices.
#include <sys/mman.h>
#include <unistd.h>

#include "allocate.h"
#include "shareable.h"

using namespace simcuda;

namespace {

bool aligned(uint64_t v) {
  return v % kPage == 0;
}

// Drops the charge and the memfd of a handle nobody references or maps. Caller holds the lock.
void maybe_destroy(PhysicalAllocation* h) {
  if (h->references > 0 || h->mappings > 0) return;
  if (!h->imported) state().devices[h->device]->give(h->size, 0);
  state().handles.erase(h);
  close(h->fd);
  delete h;
}

// The reservation wholly containing [p, p + size), or end(). Caller holds the lock.
std::map<uintptr_t, Reservation>::iterator reservation_of(uintptr_t p, uint64_t size) {
  auto& r = state().reservations;
  auto it = r.upper_bound(p);
  if (it == r.begin()) return r.end();
  --it;
  if (p - it->first >= it->second.size || size > it->second.size - (p - it->first)) return r.end();
  return it;
}

bool valid_location(const CUmemLocation& loc) {
  return loc.type == CU_MEM_LOCATION_TYPE_DEVICE && valid_device(loc.id);
}

// Checked after initialization, as the driver reports NOT_INITIALIZED first.
bool vmm_off() {
  return !config().vmm;
}

}  // namespace

// The one device attribute simcuda models, whether the VMM calls work; any other attribute is
// not simulated (CUDA_ERROR_NOT_SUPPORTED, as the stub answered before).
SIMCUDA_EXPORT CUresult CUDAAPI cuDeviceGetAttribute(int* value, CUdevice_attribute attribute,
                                                     CUdevice dev) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (value == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_device(dev)) return CUDA_ERROR_INVALID_DEVICE;
  if (attribute != CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED)
    return CUDA_ERROR_NOT_SUPPORTED;
  *value = config().vmm ? 1 : 0;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemGetAllocationGranularity(
    size_t* granularity, const CUmemAllocationProp* prop, CUmemAllocationGranularity_flags option) {
  (void)option;  // minimum and recommended are both 2 MiB
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (vmm_off()) return CUDA_ERROR_NOT_SUPPORTED;
  if (granularity == nullptr || prop == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (!valid_location(prop->location)) return CUDA_ERROR_INVALID_DEVICE;
  *granularity = kPage;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemAddressReserve(CUdeviceptr* ptr, size_t size, size_t alignment,
                                                    CUdeviceptr addr, unsigned long long flags) {
  (void)addr;  // a hint only, as in CUDA
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (vmm_off()) return CUDA_ERROR_NOT_SUPPORTED;
  if (ptr == nullptr || size == 0 || !aligned(size) || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  if (alignment == 0) alignment = kPage;
  if ((alignment & (alignment - 1)) != 0) return CUDA_ERROR_INVALID_VALUE;
  // No address space holds it (size + alignment would wrap and the trim below would unmap others).
  if (size > UINT64_MAX - alignment) return CUDA_ERROR_OUT_OF_MEMORY;
  // Over-reserve, then trim the ends so that the start is aligned.
  uint64_t len = size + alignment;
  void* raw = mmap(nullptr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
  uintptr_t start = round_up(reinterpret_cast<uintptr_t>(raw), alignment);
  uintptr_t head = start - reinterpret_cast<uintptr_t>(raw);
  if (head) munmap(raw, head);
  if (len - head - size) munmap(reinterpret_cast<void*>(start + size), len - head - size);
  std::lock_guard lock(state().mu);
  state().reservations.emplace(start, Reservation{size});
  *ptr = start;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemAddressFree(CUdeviceptr ptr, size_t size) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (vmm_off()) return CUDA_ERROR_NOT_SUPPORTED;
  std::lock_guard lock(state().mu);
  auto it = state().reservations.find(ptr);
  if (it == state().reservations.end() || it->second.size != size) return CUDA_ERROR_INVALID_VALUE;
  // CUDA requires the range to be unmapped first.
  auto m = state().mappings.lower_bound(ptr);
  if (m != state().mappings.end() && m->first < ptr + size) return CUDA_ERROR_INVALID_VALUE;
  munmap(reinterpret_cast<void*>(ptr), size);
  state().reservations.erase(it);
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemCreate(CUmemGenericAllocationHandle* handle, size_t size,
                                            const CUmemAllocationProp* prop,
                                            unsigned long long flags) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (vmm_off()) return CUDA_ERROR_NOT_SUPPORTED;
  if (handle == nullptr || prop == nullptr || size == 0 || !aligned(size) || flags != 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (prop->type != CU_MEM_ALLOCATION_TYPE_PINNED) return CUDA_ERROR_NOT_SUPPORTED;
  if (!valid_location(prop->location)) return CUDA_ERROR_INVALID_DEVICE;
  if (!count_allocation()) return CUDA_ERROR_OUT_OF_MEMORY;
  alloc_latency();
  int device = prop->location.id;
  // The memfd first, then charge and record in one critical section (fork-consistent).
  // The name carries the device, for an importer of the exported fd (shareable.cpp).
  int fd = memfd_create(vmm_memfd_name(device).c_str(), MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) {
    if (fd >= 0) close(fd);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  auto* h = new PhysicalAllocation{device, size, fd, 1, 0};
  h->exportable = (prop->requestedHandleTypes & CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) != 0;
  {
    std::lock_guard lock(state().mu);
    Device& dev = *state().devices[device];
    if (dev.take(size, 0)) {
      state().handles.insert(h);
      *handle = reinterpret_cast<CUmemGenericAllocationHandle>(h);
      return CUDA_SUCCESS;
    }
  }
  close(fd);
  delete h;
  return CUDA_ERROR_OUT_OF_MEMORY;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemRelease(CUmemGenericAllocationHandle handle) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (vmm_off()) return CUDA_ERROR_NOT_SUPPORTED;
  auto* h = reinterpret_cast<PhysicalAllocation*>(handle);
  {
    std::lock_guard lock(state().mu);
    if (state().handles.count(h) == 0 || h->references == 0) return CUDA_ERROR_INVALID_VALUE;
    h->references--;
    maybe_destroy(h);
  }
  free_latency();
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                                         CUmemGenericAllocationHandle handle,
                                         unsigned long long flags) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (vmm_off()) return CUDA_ERROR_NOT_SUPPORTED;
  auto* h = reinterpret_cast<PhysicalAllocation*>(handle);
  if (size == 0 || !aligned(ptr) || !aligned(size) || !aligned(offset) || flags != 0)
    return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(state().mu);
  State& s = state();
  if (s.handles.count(h) == 0 || h->references == 0) return CUDA_ERROR_INVALID_HANDLE;
  if (offset > h->size || size > h->size - offset) return CUDA_ERROR_INVALID_VALUE;
  if (reservation_of(ptr, size) == s.reservations.end()) return CUDA_ERROR_INVALID_VALUE;
  auto next = s.mappings.lower_bound(ptr);
  if (next != s.mappings.end() && next->first < ptr + size) return CUDA_ERROR_INVALID_VALUE;
  if (next != s.mappings.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.size > ptr) return CUDA_ERROR_INVALID_VALUE;
  }
  void* p = mmap(reinterpret_cast<void*>(ptr), size, PROT_NONE, MAP_SHARED | MAP_FIXED, h->fd,
                 static_cast<off_t>(offset));
  if (p == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
  s.mappings.emplace(ptr, Mapping{size, h});
  h->mappings++;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemUnmap(CUdeviceptr ptr, size_t size) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (vmm_off()) return CUDA_ERROR_NOT_SUPPORTED;
  std::lock_guard lock(state().mu);
  State& s = state();
  // The range must start at a mapping and cover whole mappings only.
  auto first = s.mappings.find(ptr);
  if (first == s.mappings.end() || size == 0 || size > UINT64_MAX - ptr)
    return CUDA_ERROR_INVALID_VALUE;
  auto end = s.mappings.lower_bound(ptr + size);
  for (auto it = first; it != end; ++it)
    if (it->first + it->second.size > ptr + size) return CUDA_ERROR_INVALID_VALUE;
  for (auto it = first; it != end;) {
    mmap(reinterpret_cast<void*>(it->first), it->second.size, PROT_NONE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    PhysicalAllocation* h = it->second.handle;
    it = s.mappings.erase(it);
    h->mappings--;
    maybe_destroy(h);
  }
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemSetAccess(CUdeviceptr ptr, size_t size,
                                               const CUmemAccessDesc* desc, size_t count) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (vmm_off()) return CUDA_ERROR_NOT_SUPPORTED;
  if (desc == nullptr || count == 0 || size == 0 || size > UINT64_MAX - ptr)
    return CUDA_ERROR_INVALID_VALUE;
  for (size_t i = 0; i < count; ++i) {
    if (!valid_location(desc[i].location)) return CUDA_ERROR_INVALID_DEVICE;
    if (desc[i].flags != CU_MEM_ACCESS_FLAGS_PROT_READ &&
        desc[i].flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE &&
        desc[i].flags != CU_MEM_ACCESS_FLAGS_PROT_NONE)
      return CUDA_ERROR_INVALID_VALUE;
  }
  std::lock_guard lock(state().mu);
  State& s = state();
  // Every byte of the range must be mapped.
  uintptr_t at = ptr;
  auto first = s.mappings.upper_bound(ptr);
  if (first == s.mappings.begin()) return CUDA_ERROR_INVALID_VALUE;
  --first;
  auto it = first;
  for (; at < ptr + size; ++it) {
    if (it == s.mappings.end() || it->first > at || it->first + it->second.size <= at)
      return CUDA_ERROR_INVALID_VALUE;
    at = it->first + it->second.size;
  }
  // Each named device's flags are set; other devices keep theirs. The host pages are readable
  // or writable when any device may read or write them. Flags are kept per mapping: a range
  // over part of a mapping sets them for the whole mapping.
  for (auto m = first; m != it; ++m) {
    Mapping& map = m->second;
    for (size_t i = 0; i < count; ++i) {
      const uint64_t bit = uint64_t{1} << desc[i].location.id;
      map.readers &= ~bit;
      map.writers &= ~bit;
      if (desc[i].flags != CU_MEM_ACCESS_FLAGS_PROT_NONE) map.readers |= bit;
      if (desc[i].flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE) map.writers |= bit;
    }
    const int prot = (map.readers ? PROT_READ : PROT_NONE) | (map.writers ? PROT_WRITE : 0);
    if (mprotect(reinterpret_cast<void*>(m->first), map.size, prot) != 0)
      return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemRetainAllocationHandle(CUmemGenericAllocationHandle* handle,
                                                            void* addr) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (vmm_off()) return CUDA_ERROR_NOT_SUPPORTED;
  if (handle == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(state().mu);
  auto& m = state().mappings;
  auto it = m.upper_bound(reinterpret_cast<uintptr_t>(addr));
  if (it == m.begin()) return CUDA_ERROR_INVALID_VALUE;
  --it;
  if (reinterpret_cast<uintptr_t>(addr) - it->first >= it->second.size)
    return CUDA_ERROR_INVALID_VALUE;
  it->second.handle->references++;
  *handle = reinterpret_cast<CUmemGenericAllocationHandle>(it->second.handle);
  return CUDA_SUCCESS;
}
