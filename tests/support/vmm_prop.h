// What the tests' VMM programs hand cuMemCreate: plain (pinned) memory on one device.
#pragma once

#include <cuda.h>

namespace gpumem::test {

inline CUmemAllocationProp device_memory_prop(int device) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = device;
  return prop;
}

}  // namespace gpumem::test
