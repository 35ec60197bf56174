// Driver state, initialisation helpers, fork handling, fault injection and the host memory
// behind allocations.
#include "state.h"

#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <type_traits>

namespace simcuda {
namespace {

std::atomic<bool> g_initialized{false};

// The state lives in static storage and is never destroyed: exit() from one thread runs static
// destructors while other threads may still be inside simcuda calls, and those must find it
// intact (the real driver survives that too). The config is read once and is trivially
// destructible, so exit() has nothing of simcuda's to tear down.
static_assert(std::is_trivially_destructible_v<Config>);
alignas(State) unsigned char g_state_storage[sizeof(State)];

State& storage() {
  static State* s = new (g_state_storage) State();
  return *s;
}

// Who takes the lock around fork(): nobody yet, the driver's own pthread_atfork handlers
// (registered at cuInit), or simcuda's runtime, whose handlers are registered when libcudart
// loads, before an LD_PRELOAD interposer registers its own, and call simcuda_driver_fork. The
// earlier a prepare handler is registered, the later it runs: the runtime's order lets an
// interposer that calls simcuda while holding its own locks take them before simcuda's.
enum ForkOwner : int { kNobody, kDriver, kRuntime };
std::atomic<int> g_fork_owner{kNobody};

void fork_prepare() {
  storage().mu.lock();
}
// Parent and child both release: the child's copy of the state is whole, because every change
// to it happens inside one critical section.
void fork_release() {
  storage().mu.unlock();
}

// SIMCUDA_SHARED: device `ordinal`'s ledger, machine-wide for the user. A process that cannot
// use it stops (status 2), as for a bad setting: it must not run on a private device instead.
gpumem::resources::SharedLedger* open_shared(const Config& c, int ordinal) {
  char shm[128];
  std::snprintf(shm, sizeof shm, "/simcuda-%s-dev%d", c.shared, ordinal);
  char err[512] = {};
  auto* l = gpumem::resources::SharedLedger::open(shm, c.memory, 0600, err, sizeof err);
  if (l == nullptr) {
    std::fprintf(stderr, "simcuda: SIMCUDA_SHARED=%s: %s\n", c.shared, err);
    std::exit(2);
  }
  return l;
}

State& make_state() {
  State& s = storage();
  const Config& c = config();
  for (int i = 0; i < c.devices; ++i) {
    auto d = std::make_unique<Device>();
    d->ordinal = i;
    d->capacity = c.memory;
    if (c.shared[0] != '\0') d->shared = open_shared(c, i);
    d->primary = CUctx_st{i, true, 0};
    d->default_pool.device = i;
    s.devices.push_back(std::move(d));
  }
  int nobody = kNobody;
  if (g_fork_owner.compare_exchange_strong(nobody, kDriver))
    pthread_atfork(fork_prepare, fork_release, fork_release);
  g_initialized.store(true, std::memory_order_release);
  return s;
}

// Sleeps until an absolute deadline: a relative nanosleep restarted with its remainder after each
// signal can gain the timer slack at every restart, so a program whose timer fires more often
// than the sleep (a 20 µs SIGALRM against a 35 µs latency) never got out of it.
void sleep_us(uint64_t us) {
  if (us == 0) return;
  timespec deadline{};
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  const uint64_t ns = static_cast<uint64_t>(deadline.tv_nsec) + us * 1000;
  deadline.tv_sec += static_cast<time_t>(ns / 1000000000);
  deadline.tv_nsec = static_cast<long>(ns % 1000000000);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr) == EINTR) {
  }
}

}  // namespace

bool Device::take(uint64_t large, uint64_t small) {
  // A charge near 2^64 (an array whose size formula saturates) must not wrap into "fits".
  uint64_t large_after = 0, small_after = 0;
  if (__builtin_add_overflow(large_bytes, large, &large_after) ||
      __builtin_add_overflow(small_bytes, small, &small_after))
    return false;
  const uint64_t small_pages = round_up(small_after, kPage);
  if (large_after > capacity || small_pages > capacity - large_after) return false;
  const uint64_t after = large_after + small_pages;
  const uint64_t before = used();
  if (shared != nullptr && after > before && !shared->charge(after - before)) return false;
  large_bytes += large;
  small_bytes += small;
  return true;
}

void Device::give(uint64_t large, uint64_t small) {
  const uint64_t before = used();
  large_bytes -= large;
  small_bytes -= small;
  if (shared != nullptr && before > used()) shared->uncharge(before - used());
}

uint64_t Device::free_bytes() const {
  if (shared == nullptr) return capacity - used();
  shared->reclaim_dead();  // a killed process's memory is back, as the driver returns it
  const uint64_t total = shared->total();
  return total < capacity ? capacity - total : 0;
}

State& state() {
  static State& s = make_state();
  return s;
}

bool initialized() {
  return g_initialized.load(std::memory_order_acquire);
}

CUctx_st*& current_context() {
  thread_local CUctx_st* ctx = nullptr;
  return ctx;
}

bool valid_device(int device) {
  return device >= 0 && device < static_cast<int>(state().devices.size());
}

CUresult current_device(int* device) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  CUctx_st* ctx = current_context();
  if (ctx == nullptr) return CUDA_ERROR_INVALID_CONTEXT;
  *device = ctx->device;
  return CUDA_SUCCESS;
}

CUresult stream_device(CUstream stream, int* device) {
  if (stream == nullptr || stream == CU_STREAM_LEGACY || stream == CU_STREAM_PER_THREAD)
    return current_device(device);
  if (state().streams.count(stream) == 0) return CUDA_ERROR_INVALID_HANDLE;
  *device = stream->device;
  return CUDA_SUCCESS;
}

bool count_allocation() {
  const Config& c = config();
  uint64_t n = state().alloc_attempts.fetch_add(1, std::memory_order_relaxed) + 1;
  return !c.fail_alloc_enabled || n <= c.fail_alloc_after;
}

void alloc_latency() {
  sleep_us(config().alloc_latency_us);
}
void free_latency() {
  sleep_us(config().free_latency_us);
}

void* map_memory(uint64_t bytes, uint64_t* mapped) {
  uint64_t len = round_up(bytes == 0 ? 1 : bytes, 4096);
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) return nullptr;
  *mapped = len;
  return p;
}

void unmap_memory(void* p, uint64_t mapped) {
  munmap(p, mapped);
}

bool pool_grow(Device& dev, CUmemPoolHandle_st& pool, uint64_t bytes) {
  uint64_t need = pool.used + bytes;
  if (need <= pool.reserved) return true;
  uint64_t grow = round_up(need - pool.reserved, kPage);
  if (!dev.take(grow, 0)) return false;
  pool.reserved += grow;
  if (pool.reserved > pool.reserved_high) pool.reserved_high = pool.reserved;
  return true;
}

void pool_release_to(Device& dev, CUmemPoolHandle_st& pool, uint64_t keep) {
  uint64_t floor = round_up(pool.used, kPage);
  uint64_t target = keep > floor ? round_up(keep, kPage) : floor;
  if (pool.reserved <= target) return;
  dev.give(pool.reserved - target, 0);
  pool.reserved = target;
}

}  // namespace simcuda

SIMCUDA_EXPORT int simcuda_driver_fork_adopt(void) {
  int nobody = simcuda::kNobody;
  return simcuda::g_fork_owner.compare_exchange_strong(nobody, simcuda::kRuntime) ||
         nobody == simcuda::kRuntime;
}

SIMCUDA_EXPORT void simcuda_driver_fork(int phase) {
  if (phase == 0)
    simcuda::fork_prepare();
  else
    simcuda::fork_release();
}
