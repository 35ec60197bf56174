// vmm_probe: what the driver says about virtual memory management on device 0, one line:
// "attribute A granularity G reserve R create C" (A the attribute's value or -1, the others the
// calls' CUresult). Run on simcuda with and without SIMCUDA_VMM=0.
#include <cuda.h>

#include <cstdio>

int main() {
  if (cuInit(0) != CUDA_SUCCESS) return 1;
  CUdevice dev = 0;
  if (cuDeviceGet(&dev, 0) != CUDA_SUCCESS) return 1;
  int supported = -1;
  const CUresult a =
      cuDeviceGetAttribute(&supported, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, dev);
  CUmemAllocationProp prop = {};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = dev;
  size_t granularity = 0;
  const CUresult g = cuMemGetAllocationGranularity(&granularity, &prop,
                                                   CU_MEM_ALLOC_GRANULARITY_MINIMUM);
  const size_t bytes = 2u << 20;
  CUdeviceptr va = 0;
  const CUresult r = cuMemAddressReserve(&va, bytes, 0, 0, 0);
  CUmemGenericAllocationHandle h = 0;
  const CUresult c = cuMemCreate(&h, bytes, &prop, 0);
  if (c == CUDA_SUCCESS) cuMemRelease(h);
  if (r == CUDA_SUCCESS) cuMemAddressFree(va, bytes);
  std::printf("attribute %d (%d) granularity %d reserve %d create %d\n", a == CUDA_SUCCESS ? supported : -1,
              static_cast<int>(a), static_cast<int>(g), static_cast<int>(r), static_cast<int>(c));
  return 0;
}
