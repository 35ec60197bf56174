#include "real_vmm.h"

#include <cuda.h>

#include "real.h"
#include "reentry.h"

namespace gpumem::policy {
namespace {

CUmemAllocationProp device_prop(CUdevice dev) {
  CUmemAllocationProp prop = {};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = dev;
  return prop;
}

int device_of(int ordinal, CUdevice* dev) {
  auto get = GPUMEM_REAL_DRIVER(cuDeviceGet);
  return get != nullptr ? get(dev, ordinal) : CUDA_ERROR_NOT_INITIALIZED;
}

class RealVmm final : public resources::VmmUpstream {
 public:
  int granularity(int device, uint64_t* bytes) override {
    HookScope scope;
    auto f = GPUMEM_REAL_DRIVER(cuMemGetAllocationGranularity);
    CUdevice dev = 0;
    if (f == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
    if (int e = device_of(device, &dev); e != CUDA_SUCCESS) return e;
    // The documented test (PyTorch's expandable segments asks it too): a device that says it has
    // no VMM is taken at its word, whatever the granularity query would answer.
    if (auto attr = GPUMEM_REAL_DRIVER(cuDeviceGetAttribute)) {
      int supported = 1;
      if (attr(&supported, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, dev) ==
              CUDA_SUCCESS &&
          supported == 0)
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    const CUmemAllocationProp prop = device_prop(dev);
    size_t g = 0;
    const int e = f(&g, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    *bytes = g;
    return e;
  }
  int reserve(int /*device*/, uint64_t bytes, uint64_t alignment, uintptr_t* va) override {
    HookScope scope;
    auto f = GPUMEM_REAL_DRIVER(cuMemAddressReserve);
    if (f == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
    CUdeviceptr p = 0;
    const int e = f(&p, bytes, alignment, 0, 0);
    *va = static_cast<uintptr_t>(p);
    return e;
  }
  int free_range(uintptr_t va, uint64_t bytes) override {
    HookScope scope;
    auto f = GPUMEM_REAL_DRIVER(cuMemAddressFree);
    return f != nullptr ? f(static_cast<CUdeviceptr>(va), bytes) : CUDA_ERROR_NOT_SUPPORTED;
  }
  int create(int device, uint64_t bytes, uint64_t* handle) override {
    HookScope scope;
    auto f = GPUMEM_REAL_DRIVER(cuMemCreate);
    CUdevice dev = 0;
    if (f == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
    if (int e = device_of(device, &dev); e != CUDA_SUCCESS) return e;
    const CUmemAllocationProp prop = device_prop(dev);
    CUmemGenericAllocationHandle h = 0;
    const int e = f(&h, bytes, &prop, 0);
    *handle = static_cast<uint64_t>(h);
    return e;
  }
  int release(uint64_t handle) override {
    HookScope scope;
    auto f = GPUMEM_REAL_DRIVER(cuMemRelease);
    return f != nullptr ? f(static_cast<CUmemGenericAllocationHandle>(handle))
                        : CUDA_ERROR_NOT_SUPPORTED;
  }
  int map(uintptr_t va, uint64_t bytes, uint64_t handle) override {
    HookScope scope;
    auto f = GPUMEM_REAL_DRIVER(cuMemMap);
    return f != nullptr ? f(static_cast<CUdeviceptr>(va), bytes, 0,
                            static_cast<CUmemGenericAllocationHandle>(handle), 0)
                        : CUDA_ERROR_NOT_SUPPORTED;
  }
  int unmap(uintptr_t va, uint64_t bytes) override {
    HookScope scope;
    auto f = GPUMEM_REAL_DRIVER(cuMemUnmap);
    return f != nullptr ? f(static_cast<CUdeviceptr>(va), bytes) : CUDA_ERROR_NOT_SUPPORTED;
  }
  int set_access(int device, uintptr_t va, uint64_t bytes, bool read_write) override {
    HookScope scope;
    auto f = GPUMEM_REAL_DRIVER(cuMemSetAccess);
    CUdevice dev = 0;
    if (f == nullptr) return CUDA_ERROR_NOT_SUPPORTED;
    if (int e = device_of(device, &dev); e != CUDA_SUCCESS) return e;
    CUmemAccessDesc desc = {};
    desc.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    desc.location.id = dev;
    desc.flags = read_write ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE : CU_MEM_ACCESS_FLAGS_PROT_NONE;
    return f(static_cast<CUdeviceptr>(va), bytes, &desc, 1);
  }
  bool is_oom(int code) const override { return code == CUDA_ERROR_OUT_OF_MEMORY; }
};

}  // namespace

resources::VmmUpstream& real_vmm() {
  static RealVmm* v = new RealVmm();
  return *v;
}

}  // namespace gpumem::policy
