// The public C API (include/gpumem/gpumem.h) as implemented inside the preload library: phase
// markers, statistics, and the PyTorch pluggable-allocator entry points.
#include <cuda_runtime_api.h>

#include "dispatch.h"
#include "gpumem/gpumem.h"
#include "gpumem/trace/writer.h"
#include "policy.h"
#include "real.h"
#include "reentry.h"
#include "session.h"

namespace {

using gpumem::trace::Op;

// Open phases of this thread, innermost last, so mark_end can name what it closes.
constexpr int kMaxPhaseDepth = 64;
thread_local uint64_t t_phases[kMaxPhaseDepth] __attribute__((tls_model("initial-exec")));
thread_local int t_phase_depth __attribute__((tls_model("initial-exec"))) = 0;
// The id a begin gets when it is dropped, so that its end is dropped too.
constexpr uint64_t kDroppedPhase = ~0ull;

// A mark can only arrive while this thread is inside one of gpumem's hooks from a signal handler
// that interrupted the hook. The hook may be inside the dynamic linker (resolving a real
// function) or inside the trace's open, neither of which may be entered again: such a mark is
// dropped (docs/interception.md).
bool interrupting_a_hook() {
  return gpumem::t_hook_depth > 0;
}

void write_mark(Op op, uint64_t string_id) {
  gpumem::TraceWriter* w = gpumem::session::writer();
  if (w == nullptr) return;
  gpumem::trace::Record r{};
  r.op = static_cast<uint16_t>(op);
  r.api = static_cast<uint16_t>(gpumem::trace::Api::gpumem);
  r.device = -1;
  r.aux = string_id;
  w->append(r);
}

uint64_t intern(const char* name) {
  gpumem::TraceWriter* w = gpumem::session::writer();
  return w != nullptr ? w->intern_string(name != nullptr ? name : "") : 0;
}

}  // namespace

extern "C" {

void gpumem_mark_begin(const char* name) {
  const bool dropped = interrupting_a_hook();
  const uint64_t id = dropped ? kDroppedPhase : intern(name);
  if (t_phase_depth < kMaxPhaseDepth) t_phases[t_phase_depth] = id;
  ++t_phase_depth;
  if (!dropped) write_mark(Op::mark_begin, id);
}

void gpumem_mark_end(void) {
  uint64_t id = 0;
  if (t_phase_depth > 0) {
    --t_phase_depth;
    if (t_phase_depth < kMaxPhaseDepth) id = t_phases[t_phase_depth];
  }
  if (id == kDroppedPhase || interrupting_a_hook()) return;
  write_mark(Op::mark_end, id);
}

void gpumem_mark(const char* name) {
  if (interrupting_a_hook()) return;
  write_mark(Op::mark, intern(name));
}

int gpumem_get_stats(int device, gpumem_stats* out) {
  if (out == nullptr || device < 0 || device >= gpumem::trace::kMaxDevices) return -1;
  gpumem::path_for(device).stats(out);
  return 0;
}

uint64_t gpumem_empty_cache(int device) {
  return gpumem::policy::empty_cache(device);
}

void* gpumem_torch_malloc(ssize_t size, int device, void* stream) {
  auto real = GPUMEM_REAL_RUNTIME(cudaMalloc);
  if (real == nullptr || size < 0) return nullptr;
  gpumem::HookScope scope;
  gpumem::Request req;
  req.device = device;
  req.bytes = static_cast<uint64_t>(size);
  req.stream = reinterpret_cast<uint64_t>(stream);
  req.api = gpumem::trace::Api::torch;
  req.flags = gpumem::make_flags(gpumem::trace::MemKind::device, gpumem::trace::Lookup::direct);
  req.family = gpumem::Family::runtime;
  auto call = [&](void** p) {
    const cudaError_t e = real(p, static_cast<size_t>(size));
    if (e != cudaSuccess) *p = nullptr;
    return static_cast<int>(e);
  };
  req.real_alloc = call;
  const gpumem::Result r = gpumem::path_for(device).allocate(req);
  return r.ok() ? r.ptr : nullptr;
}

void gpumem_torch_free(void* ptr, ssize_t, int device, void* stream) {
  auto real = GPUMEM_REAL_RUNTIME(cudaFree);
  if (real == nullptr) return;
  gpumem::HookScope scope;
  gpumem::Request req;
  req.device = device;
  req.stream = reinterpret_cast<uint64_t>(stream);
  req.api = gpumem::trace::Api::torch;
  req.flags = gpumem::make_flags(gpumem::trace::MemKind::device, gpumem::trace::Lookup::direct);
  req.family = gpumem::Family::runtime;
  auto call = [&]() { return static_cast<int>(real(ptr)); };
  req.real_free = call;
  (void)gpumem::path_for(device).deallocate(req, reinterpret_cast<uint64_t>(ptr));
}

}  // extern "C"
