// The table of every function gpumem wraps, shared by the lookup hooks (dlsym, cuGetProcAddress,
// cudaGetDriverEntryPoint). Each wrapped name has one wrapper per lookup path, so the trace
// records how the caller reached it (Record::flags, trace::Lookup).
#pragma once

#include <cstddef>

#include "gpumem/trace/format.h"

#define GPUMEM_EXPORT extern "C" __attribute__((visibility("default")))

namespace gpumem::hooks {

struct Wrapped {
  const char* name;    // the exported name, exactly (cuMemAlloc_v2, cudaMallocAsync_ptsz)
  void* by_lookup[3];  // indexed by trace::Lookup: direct, dlsym, resolver
};

// Tables defined by the family files (runtime.cpp, driver.cpp, resolver.cpp, nvml.cpp).
extern const Wrapped kRuntimeWrapped[];
extern const size_t kRuntimeWrappedCount;
extern const Wrapped kDriverWrapped[];
extern const size_t kDriverWrappedCount;
extern const Wrapped kResolverWrapped[];
extern const size_t kResolverWrappedCount;
extern const Wrapped kArrayWrapped[];  // hooks/array.cpp: CUDA arrays, runtime and driver
extern const size_t kArrayWrappedCount;
extern const Wrapped kHostRegisterWrapped[];  // hooks/host_register.cpp
extern const size_t kHostRegisterWrappedCount;
extern const Wrapped kNvmlWrapped[];  // hooks/nvml.cpp: symbol and dlsym paths only
extern const size_t kNvmlWrappedCount;
extern const Wrapped kIpcWrapped[];  // hooks/ipc.cpp: runtime and driver IPC imports
extern const size_t kIpcWrappedCount;
extern const Wrapped kPeerWrapped[];  // hooks/peer.cpp: peer access, runtime and driver
extern const size_t kPeerWrappedCount;

// The wrapper for exactly this name (no prefix match, no version guessing), or nullptr.
void* wrapper_for_name(const char* name, trace::Lookup lookup);
// The resolver wrapper for a driver function pointer that a real resolver returned: non-null
// only when `real` is exactly the address of a real driver function we wrap (as found by
// dlsym(libcuda, its exported name)).
void* wrapper_for_real_driver_function(void* real);

}  // namespace gpumem::hooks

// The exported function itself (declared by the CUDA headers or the family file) is the direct
// entry, so that a driver whose resolver hands out its exported, interposable addresses (it then
// hands out ours) is recognised too; hook_<name><L> serves the other two paths.
#define GPUMEM_WRAPPED(name)                                                       \
  {                                                                                \
#name, {                                                                       \
      reinterpret_cast<void*>(&::name),                                            \
          reinterpret_cast<void*>(&hook_##name<::gpumem::trace::Lookup::dlsym>),   \
          reinterpret_cast<void*>(&hook_##name<::gpumem::trace::Lookup::resolver>) \
    }                                                                              \
  }
