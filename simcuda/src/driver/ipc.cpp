// IPC memory handles between processes. A handle names the exporter's allocation (process,
// its start time, base address, size, device); opening it in another process maps memory of that
// size there, charged to no one (the exporter's process is charged, as on a GPU, where the
// memory exists once). simcuda's device memory is private to each process, so the importer sees
// zero pages, not the exporter's bytes. A process may not open its own handle, and a handle whose
// exporter has exited cannot be opened; opening a handle again returns the same pointer with one
// more reference, and cuIpcCloseMemHandle drops one (the mapping goes at the last).
#include "ipc.h"

#include <unistd.h>

#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "gpumem/resources/shared_ledger.h"

using namespace simcuda;

namespace {

struct Handle {
  char magic[8];  // "simcuda"
  int32_t pid;
  int32_t device;
  uint64_t start_time;  // the exporter's, so that a reused pid is not mistaken for it
  uint64_t base;
  uint64_t size;
  char unused[24];
};
static_assert(sizeof(Handle) == sizeof(CUipcMemHandle));
constexpr char kMagic[8] = "simcuda";

struct Import {
  uintptr_t base;
  uint64_t size, mapped;
  int device;
  int references;
};
using Key = std::pair<int32_t, uint64_t>;  // exporter pid, exporter base

// Under the driver's lock, like every other table; never destroyed (state.h: exit-safe).
std::map<Key, Import>& imports() {
  static auto* m = new std::map<Key, Import>();
  return *m;
}

}  // namespace

namespace simcuda {

bool find_import_locked(uintptr_t p, RangeInfo* out) {
  for (const auto& [key, imp] : imports())
    if (p >= imp.base && p - imp.base < imp.size) {
      *out = RangeInfo{imp.base, imp.size, imp.device, false, false};
      return true;
    }
  return false;
}

}  // namespace simcuda

SIMCUDA_EXPORT CUresult CUDAAPI cuIpcGetMemHandle(CUipcMemHandle* out, CUdeviceptr dptr) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (out == nullptr) return CUDA_ERROR_INVALID_VALUE;
  Handle h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.pid = static_cast<int32_t>(getpid());
  h.start_time = gpumem::resources::SharedLedger::start_time_of(getpid());
  {
    State& s = state();
    std::lock_guard lock(s.mu);
    auto it = s.allocations.find(static_cast<uintptr_t>(dptr));
    // Only the base of cuMemAlloc memory can be exported, as in CUDA.
    if (it == s.allocations.end() || it->second.kind != Kind::device || it->second.pool != nullptr)
      return CUDA_ERROR_INVALID_VALUE;
    h.device = it->second.device;
    h.base = static_cast<uint64_t>(dptr);
    h.size = it->second.size;
  }
  std::memcpy(out, &h, sizeof h);
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuIpcOpenMemHandle_v2(CUdeviceptr* pdptr, CUipcMemHandle handle,
                                                      unsigned int flags) {
  int device = 0;
  if (CUresult r = current_device(&device)) return r;
  if (pdptr == nullptr || (flags & ~CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS) != 0)
    return CUDA_ERROR_INVALID_VALUE;
  Handle h;
  std::memcpy(&h, &handle, sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0 || h.size == 0)
    return CUDA_ERROR_INVALID_HANDLE;
  if (h.pid == static_cast<int32_t>(getpid())) return CUDA_ERROR_INVALID_CONTEXT;  // its own
  if (!gpumem::resources::SharedLedger::slot_alive(h.pid, h.start_time))
    return CUDA_ERROR_INVALID_HANDLE;  // the exporter is gone, and its memory with it
  const Key key{h.pid, h.base};
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    auto it = imports().find(key);
    if (it != imports().end()) {
      ++it->second.references;
      *pdptr = static_cast<CUdeviceptr>(it->second.base);
      return CUDA_SUCCESS;
    }
  }
  uint64_t mapped = 0;
  void* p = map_memory(h.size, &mapped);
  if (p == nullptr) return CUDA_ERROR_MAP_FAILED;
  std::lock_guard lock(s.mu);
  auto [it, added] =
      imports().emplace(key, Import{reinterpret_cast<uintptr_t>(p), h.size, mapped, h.device, 1});
  if (!added) {  // another thread opened it meanwhile: use that mapping
    unmap_memory(p, mapped);
    ++it->second.references;
  }
  *pdptr = static_cast<CUdeviceptr>(it->second.base);
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuIpcCloseMemHandle(CUdeviceptr dptr) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  State& s = state();
  Import gone{};
  {
    std::lock_guard lock(s.mu);
    auto it = imports().begin();
    while (it != imports().end() && it->second.base != static_cast<uintptr_t>(dptr)) ++it;
    if (it == imports().end()) return CUDA_ERROR_INVALID_VALUE;
    if (--it->second.references > 0) return CUDA_SUCCESS;
    gone = it->second;
    imports().erase(it);
  }
  unmap_memory(reinterpret_cast<void*>(gone.base), gone.mapped);
  return CUDA_SUCCESS;
}
