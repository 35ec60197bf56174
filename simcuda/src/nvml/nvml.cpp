// libnvidia-ml.so.1 for the simulated device: initialisation, device count and handles, names,
// UUIDs and the memory queries, enough for pynvml/nvitop-style monitoring (docs/simcuda.md,
// "NVML"). The devices are simcuda's (SIMCUDA_DEVICES, SIMCUDA_MEMORY, SIMCUDA_SHARED, read
// with the driver's own parser). Free memory is the driver's answer when simcuda's driver is
// loaded and initialised in this process (so NVML, cudaMemGetInfo and cuMemGetInfo_v2 agree to
// the byte); otherwise nothing of this process's is allocated, so a private device is all free
// and a shared one has its capacity less every process's charge in the shared ledger.
#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "../driver/config.h"
#include "gpumem/nvml_api.h"
#include "gpumem/resources/shared_ledger.h"

#define SIMCUDA_NVML_EXPORT extern "C" __attribute__((visibility("default")))

// The handle's target: one per simulated device, never freed.
struct nvmlDevice_st {
  unsigned index;
};

namespace {

constexpr unsigned kMaxDevices = 64;  // SIMCUDA_DEVICES' upper bound
nvmlDevice_st g_devices[kMaxDevices];
gpumem::resources::SharedLedger* g_ledgers[kMaxDevices];
std::mutex g_mu;
int g_inits = 0;  // nvmlInit calls less nvmlShutdown calls (NVML counts them the same way)

bool initialised() {
  std::lock_guard lock(g_mu);
  return g_inits > 0;
}

unsigned device_count() {
  return static_cast<unsigned>(simcuda::config().devices);
}

nvmlReturn_t check(nvmlDevice_t device) {
  if (!initialised()) return NVML_ERROR_UNINITIALIZED;
  if (device == nullptr || device < g_devices || device >= g_devices + device_count())
    return NVML_ERROR_INVALID_ARGUMENT;
  return NVML_SUCCESS;
}

using DeviceMemoryFn = int (*)(int, unsigned long long*, unsigned long long*);

// The driver's figures, when simcuda's libcuda.so.1 is already loaded here and initialised.
// RTLD_NOLOAD: NVML never loads the driver itself.
bool driver_memory(unsigned index, unsigned long long* total, unsigned long long* free_bytes) {
  void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
  if (h == nullptr) return false;
  auto fn = reinterpret_cast<DeviceMemoryFn>(dlsym(h, "simcuda_device_memory"));
  const bool ok = fn != nullptr && fn(static_cast<int>(index), total, free_bytes) == 0;
  dlclose(h);
  return ok;
}

// The shared device's ledger (SIMCUDA_SHARED), opened at first use; null for a private device.
// A ledger that cannot be opened stops the process, as the driver does (status 2).
gpumem::resources::SharedLedger* ledger(unsigned index) {
  const simcuda::Config& c = simcuda::config();
  if (c.shared[0] == '\0') return nullptr;
  std::lock_guard lock(g_mu);
  if (g_ledgers[index] == nullptr) {
    char shm[128], err[512] = {};
    std::snprintf(shm, sizeof shm, "/simcuda-%s-dev%u", c.shared, index);
    g_ledgers[index] = gpumem::resources::SharedLedger::open(shm, c.memory, 0600, err, sizeof err);
    if (g_ledgers[index] == nullptr) {
      std::fprintf(stderr, "simcuda: SIMCUDA_SHARED=%s: %s\n", c.shared, err);
      std::exit(2);
    }
  }
  return g_ledgers[index];
}

void memory_of(unsigned index, unsigned long long* total, unsigned long long* free_bytes) {
  if (driver_memory(index, total, free_bytes)) return;
  const uint64_t capacity = simcuda::config().memory;
  *total = capacity;
  *free_bytes = capacity;
  if (gpumem::resources::SharedLedger* l = ledger(index)) {
    l->reclaim_dead();  // a killed process's memory is back, as the driver counts it
    const uint64_t used = l->total();
    *free_bytes = used < capacity ? capacity - used : 0;
  }
}

nvmlReturn_t copy_text(const char* text, char* out, unsigned length) {
  if (out == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  const int n = std::snprintf(out, length, "%s", text);
  return n < 0 || static_cast<unsigned>(n) >= length ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
}

}  // namespace

SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int /*flags*/) {
  const unsigned n = device_count();  // a bad SIMCUDA_* setting stops here, as at cuInit
  std::lock_guard lock(g_mu);
  for (unsigned i = 0; i < n; ++i) g_devices[i].index = i;
  ++g_inits;
  return NVML_SUCCESS;
}
SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlInit_v2(void) {
  return nvmlInitWithFlags(0);
}
SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlInit(void) {
  return nvmlInitWithFlags(0);
}

SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlShutdown(void) {
  std::lock_guard lock(g_mu);
  if (g_inits == 0) return NVML_ERROR_UNINITIALIZED;
  --g_inits;
  return NVML_SUCCESS;
}

SIMCUDA_NVML_EXPORT const char* nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case NVML_SUCCESS:
      return "Success";
    case NVML_ERROR_UNINITIALIZED:
      return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT:
      return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED:
      return "Not Supported";
    case NVML_ERROR_NO_PERMISSION:
      return "Insufficient Permissions";
    case NVML_ERROR_ALREADY_INITIALIZED:
      return "Already Initialized";
    case NVML_ERROR_NOT_FOUND:
      return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE:
      return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED:
      return "Driver Not Loaded";
    case NVML_ERROR_LIBRARY_NOT_FOUND:
      return "NVML Shared Library Not Found";
    case NVML_ERROR_FUNCTION_NOT_FOUND:
      return "Function Not Found";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH:
      return "Argument version mismatch";
    case NVML_ERROR_UNKNOWN:
      return "Unknown Error";
  }
  return "Unknown Error";
}

SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char* version, unsigned int length) {
  if (!initialised()) return NVML_ERROR_UNINITIALIZED;
  return copy_text("simcuda", version, length);
}

SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  if (!initialised()) return NVML_ERROR_UNINITIALIZED;
  if (count == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *count = device_count();
  return NVML_SUCCESS;
}
SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned int* count) {
  return nvmlDeviceGetCount_v2(count);
}

SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index,
                                                               nvmlDevice_t* device) {
  if (!initialised()) return NVML_ERROR_UNINITIALIZED;
  if (device == nullptr || index >= device_count()) return NVML_ERROR_INVALID_ARGUMENT;
  *device = &g_devices[index];
  return NVML_SUCCESS;
}
SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index,
                                                            nvmlDevice_t* device) {
  return nvmlDeviceGetHandleByIndex_v2(index, device);
}

SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int* index) {
  if (nvmlReturn_t r = check(device)) return r;
  if (index == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *index = device->index;
  return NVML_SUCCESS;
}

SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name,
                                                   unsigned int length) {
  if (nvmlReturn_t r = check(device)) return r;
  return copy_text("gpumem simulated device", name, length);  // cuDeviceGetName's name
}

// "GPU-" and a fixed UUID whose last group is the index: stable across processes and runs.
SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid,
                                                   unsigned int length) {
  if (nvmlReturn_t r = check(device)) return r;
  char text[64];
  std::snprintf(text, sizeof text, "GPU-5143cda0-0000-4000-8000-%012x", device->index);
  return copy_text(text, uuid, length);
}

SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device,
                                                         nvmlMemory_t* memory) {
  if (nvmlReturn_t r = check(device)) return r;
  if (memory == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned long long total = 0, free_bytes = 0;
  memory_of(device->index, &total, &free_bytes);
  memory->total = total;
  memory->free = free_bytes;
  memory->used = total - free_bytes;
  return NVML_SUCCESS;
}

// The simulated device sets nothing aside: reserved is 0 and used = total - free.
SIMCUDA_NVML_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device,
                                                            nvmlMemory_v2_t* memory) {
  if (nvmlReturn_t r = check(device)) return r;
  if (memory == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (memory->version != nvmlMemory_v2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
  unsigned long long total = 0, free_bytes = 0;
  memory_of(device->index, &total, &free_bytes);
  memory->total = total;
  memory->reserved = 0;
  memory->free = free_bytes;
  memory->used = total - free_bytes;
  return NVML_SUCCESS;
}

SIMCUDA_NVML_EXPORT int simcuda_is_simulated(void) {
  return 1;
}
