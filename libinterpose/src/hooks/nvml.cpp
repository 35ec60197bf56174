// NVML family: nvmlDeviceGetMemoryInfo and _v2, the memory query of nvidia-smi, pynvml, nvitop
// and vLLM's checks. Under a cap they answer as cudaMemGetInfo does (the same
// AllocationPath::capacity, hence policy::clamp_capacity): total = the cap, free = the cap less
// what this process holds, used = total - free (v2: reserved 0). Without a cap the real answer
// passes unchanged. Each query is an Op::meminfo record with Api::nvml. A query before CUDA is
// initialised leaves it so (clamp_capacity answers from the setting, without the stack).
//
// libgpumem.so links no NVML and never loads it: the real functions are found in the process
// that called them (dlsym(RTLD_NEXT) for a program linked with -lnvidia-ml, else the
// libnvidia-ml.so.1 a ctypes/dlopen caller loaded, with RTLD_NOLOAD). The device is NVML's index
// (nvmlDeviceGetIndex), which GPUMEM_LIMIT_<n> names as it names CUDA ordinal n.
#include <dlfcn.h>

#include "gpumem/nvml_api.h"
#include "hooks/hook_family.h"
#include "hooks/wrapped.h"
#include "real.h"

namespace gpumem::hooks {
namespace {

using trace::Api;
using trace::Lookup;
using trace::MemKind;

struct Nvml {
  using Result = nvmlReturn_t;
  using Stream = void*;
  static constexpr Result kSuccess = NVML_SUCCESS;
  static constexpr resources::Family kFamily = resources::Family::driver;
  static constexpr Result kNotInitialised = NVML_ERROR_UNINITIALIZED;
  static constexpr const char* kMissingWhy = "no NVML (libnvidia-ml.so.1) is loaded";
  static constexpr const char* kNotInitialisedName = "NVML_ERROR_UNINITIALIZED";
  static int current_device() { return -1; }
};

// Cached for good, as the runtime's functions: the library stays loaded (pin_library_of).
void* real_nvml_symbol(const char* name) {
  void* f = real_dlsym(RTLD_NEXT, name);
  if (f == nullptr) {
    // pynvml and nvitop load NVML with ctypes (RTLD_LOCAL): not in the global scope.
    void* h = dlopen("libnvidia-ml.so.1", RTLD_LAZY | RTLD_NOLOAD);
    if (h == nullptr) return nullptr;
    f = real_dlsym(h, name);
    dlclose(h);  // drops NOLOAD's reference; pin_library_of keeps the library
  }
  pin_library_of(f);
  return f;
}

template <class F>
F resolved(std::atomic<F>& slot, const char* name) {
  F f = slot.load(std::memory_order_acquire);
  if (f == nullptr) {
    f = reinterpret_cast<F>(real_nvml_symbol(name));
    if (f != nullptr) slot.store(f, std::memory_order_release);
  }
  return f;
}
#define GPUMEM_REAL_NVML(name)                       \
  ([]() {                                            \
    static std::atomic<decltype(&::name)> slot{};    \
    return resolved<decltype(&::name)>(slot, #name); \
  }())

// NVML's index of the handle; -1 (no device, so no cap) when NVML cannot say.
int nvml_index(nvmlDevice_t device) {
  auto get = GPUMEM_REAL_NVML(nvmlDeviceGetIndex);
  unsigned index = 0;
  if (get == nullptr || get(device, &index) != NVML_SUCCESS) return -1;
  return static_cast<int>(index);
}

// Runs the query `call(m)` through the device's capacity path; *m holds the real answer and
// *total / *free_bytes what the program is told. True when the real call succeeded.
template <Lookup L, class M, class Call>
nvmlReturn_t query(nvmlDevice_t device, M* m, unsigned long long* total,
                   unsigned long long* free_bytes, Call call) {
  Request req = request<Nvml, L>(Api::nvml, 0, MemKind::device, nullptr, false, nvml_index(device));
  size_t f = 0, t = 0;
  const nvmlReturn_t e = capacity<Nvml>(req, &f, &t, [&](size_t* rf, size_t* rt) {
    const nvmlReturn_t r = call(m);
    *rf = r == NVML_SUCCESS ? m->free : 0;
    *rt = r == NVML_SUCCESS ? m->total : 0;
    return r;
  });
  *total = t;
  *free_bytes = f;
  return e;
}

template <Lookup L>
nvmlReturn_t hook_nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  GPUMEM_HOOK_PROLOGUE(Nvml, GPUMEM_REAL_NVML(nvmlDeviceGetMemoryInfo), "nvmlDeviceGetMemoryInfo",
                       device, memory);
  if (memory == nullptr) return real(device, memory);  // NVML's own invalid-argument answer
  nvmlMemory_t m{};
  unsigned long long total = 0, free_bytes = 0;
  const nvmlReturn_t e = query<L>(device, &m, &total, &free_bytes,
                                  [&](nvmlMemory_t* out) { return real(device, out); });
  if (e != NVML_SUCCESS) return e;
  *memory = m;
  if (total != m.total || free_bytes != m.free) {  // capped
    memory->total = total;
    memory->free = free_bytes;
    memory->used = total - free_bytes;
  }
  return e;
}

template <Lookup L>
nvmlReturn_t hook_nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t* memory) {
  GPUMEM_HOOK_PROLOGUE(Nvml, GPUMEM_REAL_NVML(nvmlDeviceGetMemoryInfo_v2),
                       "nvmlDeviceGetMemoryInfo_v2", device, memory);
  if (memory == nullptr) return real(device, memory);
  nvmlMemory_v2_t m{};
  m.version = memory->version;  // NVML checks it
  unsigned long long total = 0, free_bytes = 0;
  const nvmlReturn_t e = query<L>(device, &m, &total, &free_bytes,
                                  [&](nvmlMemory_v2_t* out) { return real(device, out); });
  if (e != NVML_SUCCESS) return e;
  *memory = m;
  if (total != m.total || free_bytes != m.free) {  // capped: the cap sets nothing aside
    memory->total = total;
    memory->reserved = 0;
    memory->free = free_bytes;
    memory->used = total - free_bytes;
  }
  return e;
}

}  // namespace

const Wrapped kNvmlWrapped[] = {
    GPUMEM_WRAPPED(nvmlDeviceGetMemoryInfo),
    GPUMEM_WRAPPED(nvmlDeviceGetMemoryInfo_v2),
};
const size_t kNvmlWrappedCount = sizeof kNvmlWrapped / sizeof kNvmlWrapped[0];

}  // namespace gpumem::hooks

GPUMEM_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  return gpumem::hooks::hook_nvmlDeviceGetMemoryInfo<gpumem::trace::Lookup::direct>(device, memory);
}
GPUMEM_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device,
                                                      nvmlMemory_v2_t* memory) {
  return gpumem::hooks::hook_nvmlDeviceGetMemoryInfo_v2<gpumem::trace::Lookup::direct>(device,
                                                                                       memory);
}
