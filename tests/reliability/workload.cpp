// The program the reliability tests run under LD_PRELOAD=libgpumem.so on simcuda.
//
//   workload kill SHM THREADS        THREADS threads call CUDA forever; after every call returns,
//                                    the thread publishes how many of its calls have returned in
//                                    the shared file SHM (struct Progress), so a test that kills
//                                    the process knows exactly which calls the trace must hold.
//   workload soak THREADS OPS        THREADS threads make OPS mixed calls in all, across every
//                                    allocation API; prints the program's own accounting as
//                                    "key value" lines and the anonymous RSS after warm-up and at
//                                    the end (the library's own memory must not grow).
//   workload bad_device              cuMemCreate on a device CUDA does not have, then a cudaMalloc
//   workload misuse                  unknown frees, double frees, NULL out-parameters, with good
//                                    allocations before and after (which must all be recorded).
//   workload one                     one cudaMalloc of 4096 bytes and its cudaFree.
//
// Each thread uses a fixed, known set of calls so the test can check the trace exactly.
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "driver_context.h"
#include "gpumem/gpumem.h"
#include "progress.h"
#include "vmm_prop.h"

namespace {

uint32_t thread_id() { return static_cast<uint32_t>(syscall(SYS_gettid)); }

using reliability::init_driver;

void bind_context() {
  CUcontext ctx;
  cuDevicePrimaryCtxRetain(&ctx, 0);
  cuCtxSetCurrent(ctx);
}

// --- kill -------------------------------------------------------------------------------------
// Each call below leaves exactly one record (alloc, free or meminfo) with this thread's id.
int kill_loop(const char* shm_path, int threads) {
  int fd = ::open(shm_path, O_RDWR);
  if (fd < 0) return std::perror(shm_path), 1;
  auto* progress = static_cast<reliability::Progress*>(
      mmap(nullptr, sizeof(reliability::Progress), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (progress == MAP_FAILED) return std::perror("mmap"), 1;
  if (!init_driver() || cudaFree(nullptr) != cudaSuccess) return 1;
  auto body = [progress](int index) {
    bind_context();
    reliability::ThreadProgress& mine = progress->threads[index];
    mine.tid.store(thread_id(), std::memory_order_release);
    cudaStream_t stream;
    if (cudaStreamCreate(&stream) != cudaSuccess) std::_Exit(3);
    uint64_t returned = 0;
    auto done = [&] { mine.returned.store(++returned, std::memory_order_release); };
    for (uint64_t i = 0;; ++i) {
      const size_t bytes = 256 * (i % 31 + 1);
      switch (i % 4) {
        case 0: {
          void* p = nullptr;
          if (cudaMalloc(&p, bytes) != cudaSuccess) std::_Exit(3);
          done();
          cudaFree(p);
          done();
          break;
        }
        case 1: {
          CUdeviceptr d = 0;
          if (cuMemAlloc(&d, bytes) != CUDA_SUCCESS) std::_Exit(3);
          done();
          cuMemFree(d);
          done();
          break;
        }
        case 2: {
          void* p = nullptr;
          if (cudaMallocAsync(&p, bytes, stream) != cudaSuccess) std::_Exit(3);
          done();
          cudaFreeAsync(p, stream);
          done();
          break;
        }
        default: {
          size_t free_b = 0, total_b = 0;
          cudaMemGetInfo(&free_b, &total_b);
          done();
        }
      }
    }
  };
  progress->thread_count.store(static_cast<uint32_t>(threads), std::memory_order_release);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(body, t);
  for (auto& t : pool) t.join();  // never: the test kills the process
  return 0;
}

// --- soak -------------------------------------------------------------------------------------
enum Api { kRtMalloc, kDrvMalloc, kRtAsync, kDrvAsync, kManaged, kPitch, kHost, kVmm, kApiCount };

struct Live {
  uint64_t ptr = 0;
  uint64_t bytes = 0;
  Api api = kRtMalloc;
};

struct Tally {
  uint64_t allocs[kApiCount] = {};
  uint64_t bytes[kApiCount] = {};
  uint64_t frees = 0;
  uint64_t meminfo = 0;
  uint64_t marks = 0;
  uint64_t failures = 0;
};

struct Soaker {
  cudaStream_t rt_stream = nullptr;
  CUstream drv_stream = nullptr;
  size_t granularity = 2 << 20;
  Tally tally;

  bool allocate(Api api, uint64_t bytes, Live* out) {
    out->api = api;
    out->bytes = bytes;
    switch (api) {
      case kRtMalloc: {
        void* p = nullptr;
        if (cudaMalloc(&p, bytes) != cudaSuccess) return false;
        out->ptr = reinterpret_cast<uint64_t>(p);
        return true;
      }
      case kDrvMalloc: {
        CUdeviceptr d = 0;
        if (cuMemAlloc(&d, bytes) != CUDA_SUCCESS) return false;
        out->ptr = d;
        return true;
      }
      case kRtAsync: {
        void* p = nullptr;
        if (cudaMallocAsync(&p, bytes, rt_stream) != cudaSuccess) return false;
        out->ptr = reinterpret_cast<uint64_t>(p);
        return true;
      }
      case kDrvAsync: {
        CUdeviceptr d = 0;
        if (cuMemAllocAsync(&d, bytes, drv_stream) != CUDA_SUCCESS) return false;
        out->ptr = d;
        return true;
      }
      case kManaged: {
        void* p = nullptr;
        if (cudaMallocManaged(&p, bytes, cudaMemAttachGlobal) != cudaSuccess) return false;
        out->ptr = reinterpret_cast<uint64_t>(p);
        return true;
      }
      case kPitch: {  // 8 rows: the recorded size is pitch * 8, which the hook computes
        void* p = nullptr;
        size_t pitch = 0;
        if (cudaMallocPitch(&p, &pitch, bytes / 8, 8) != cudaSuccess) return false;
        out->ptr = reinterpret_cast<uint64_t>(p);
        out->bytes = (bytes / 8) * 8;
        return true;
      }
      case kHost: {
        void* p = nullptr;
        if (cudaMallocHost(&p, bytes) != cudaSuccess) return false;
        out->ptr = reinterpret_cast<uint64_t>(p);
        return true;
      }
      case kVmm: {
        CUmemAllocationProp prop = gpumem::test::device_memory_prop(0);
        CUmemGenericAllocationHandle h = 0;
        out->bytes = granularity;
        if (cuMemCreate(&h, granularity, &prop, 0) != CUDA_SUCCESS) return false;
        out->ptr = h;
        return true;
      }
      case kApiCount: break;
    }
    return false;
  }

  bool release(const Live& l) {
    switch (l.api) {
      case kRtMalloc:
      case kManaged:
      case kPitch: return cudaFree(reinterpret_cast<void*>(l.ptr)) == cudaSuccess;
      case kDrvMalloc: return cuMemFree(l.ptr) == CUDA_SUCCESS;
      case kRtAsync: return cudaFreeAsync(reinterpret_cast<void*>(l.ptr), rt_stream) == cudaSuccess;
      case kDrvAsync: return cuMemFreeAsync(l.ptr, drv_stream) == CUDA_SUCCESS;
      case kHost: return cudaFreeHost(reinterpret_cast<void*>(l.ptr)) == cudaSuccess;
      case kVmm: return cuMemRelease(l.ptr) == CUDA_SUCCESS;
      case kApiCount: break;
    }
    return false;
  }
};

// Anonymous resident memory (heap, live maps, stacks), not the trace's shared file pages.
long rss_anon_kib() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "RssAnon: %ld kB", &kib) == 1) break;
  std::fclose(f);
  return kib;
}

int soak(int threads, uint64_t ops) {
  if (!init_driver() || cudaFree(nullptr) != cudaSuccess) return 1;
  const uint64_t per_thread = ops / static_cast<uint64_t>(threads);
  std::vector<Soaker> soakers(static_cast<size_t>(threads));
  std::atomic<int> warmed{0};
  std::atomic<bool> sampled{false};
  long rss_warm = 0;
  uint64_t reserved_warm = 0;
  auto body = [&](int index) {
    bind_context();
    Soaker& s = soakers[static_cast<size_t>(index)];
    cudaStreamCreate(&s.rt_stream);
    cuStreamCreate(&s.drv_stream, CU_STREAM_NON_BLOCKING);
    CUmemAllocationProp prop{};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    cuMemGetAllocationGranularity(&s.granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
    constexpr int kWindow = 32;
    Live window[kWindow];
    int head = 0, count = 0;
    uint64_t rng = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(index + 1);
    auto next = [&rng] {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      return rng;
    };
    auto drop_oldest = [&] {
      if (!s.release(window[head])) ++s.tally.failures;
      ++s.tally.frees;
      head = (head + 1) % kWindow;
      --count;
    };
    for (uint64_t i = 0; i < per_thread; ++i) {
      if (i == per_thread / 2 && warmed.fetch_add(1) + 1 == threads) {
        rss_warm = rss_anon_kib();  // every thread is half-way: past warm-up
        gpumem_stats st{};
        if (gpumem_present() && gpumem_get_stats(0, &st) == 0) reserved_warm = st.reserved_bytes;
        sampled = true;
      }
      const uint64_t r = next();
      const uint64_t kind = r % 16;
      if (kind == 0) {  // a capacity query
        size_t f = 0, t = 0;
        if (cudaMemGetInfo(&f, &t) != cudaSuccess) ++s.tally.failures;
        ++s.tally.meminfo;
        continue;
      }
      if (kind == 1) {  // a phase marker through the public API
        GPUMEM_MARK("soak");
        ++s.tally.marks;
        continue;
      }
      if (count == kWindow || (count > 0 && kind < 8)) {
        drop_oldest();
        continue;
      }
      const Api api = static_cast<Api>((r >> 8) % kApiCount);
      const uint64_t bytes = 64 * ((r >> 16) % 1024 + 1);  // 64 B .. 64 KiB
      Live l;
      if (!s.allocate(api, bytes, &l)) {
        ++s.tally.failures;
        continue;
      }
      ++s.tally.allocs[l.api];
      s.tally.bytes[l.api] += l.bytes;
      window[(head + count) % kWindow] = l;
      ++count;
    }
    while (count > 0) drop_oldest();
    cudaStreamSynchronize(s.rt_stream);
    cuStreamSynchronize(s.drv_stream);
    cudaStreamDestroy(s.rt_stream);
    cuStreamDestroy(s.drv_stream);
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(body, t);
  for (auto& t : pool) t.join();
  const long rss_end = rss_anon_kib();

  static const char* const kNames[kApiCount] = {"cudaMalloc", "cuMemAlloc", "cudaMallocAsync",
                                                "cuMemAllocAsync", "cudaMallocManaged",
                                                "cudaMallocPitch", "cudaMallocHost", "cuMemCreate"};
  Tally total;
  for (const Soaker& s : soakers) {
    for (int a = 0; a < kApiCount; ++a) {
      total.allocs[a] += s.tally.allocs[a];
      total.bytes[a] += s.tally.bytes[a];
    }
    total.frees += s.tally.frees;
    total.meminfo += s.tally.meminfo;
    total.marks += s.tally.marks;
    total.failures += s.tally.failures;
  }
  for (int a = 0; a < kApiCount; ++a)
    std::printf("allocs.%s %llu\nbytes.%s %llu\n", kNames[a],
                static_cast<unsigned long long>(total.allocs[a]), kNames[a],
                static_cast<unsigned long long>(total.bytes[a]));
  std::printf("frees %llu\nmeminfo %llu\nmarks %llu\nfailures %llu\n",
              static_cast<unsigned long long>(total.frees), static_cast<unsigned long long>(total.meminfo),
              static_cast<unsigned long long>(total.marks), static_cast<unsigned long long>(total.failures));
  gpumem_stats st{};
  if (gpumem_present() && gpumem_get_stats(0, &st) == 0)
    std::printf("stats.allocated %llu\nstats.reserved_warm %llu\nstats.reserved_end %llu\n"
                "stats.allocs %llu\nstats.frees %llu\n",
                static_cast<unsigned long long>(st.allocated_bytes),
                static_cast<unsigned long long>(reserved_warm), static_cast<unsigned long long>(st.reserved_bytes),
                static_cast<unsigned long long>(st.alloc_count), static_cast<unsigned long long>(st.free_count));
  std::printf("rss_anon_warm_kib %ld\nrss_anon_end_kib %ld\n", sampled ? rss_warm : -1L, rss_end);
  return total.failures == 0 ? 0 : 1;
}

// --- misuse -----------------------------------------------------------------------------------
// Prints "KEY 0x..." lines for the addresses the test must find in the trace.
int misuse() {
  if (!init_driver()) return 1;
  int bad = 0;
  void* before = nullptr;
  if (cudaMalloc(&before, 1000) != cudaSuccess) ++bad;
  // NULL out-parameters: an error code of the API, never a crash.
  if (cudaMalloc(nullptr, 64) != cudaErrorInvalidValue) ++bad;
  if (cuMemAlloc(nullptr, 64) != CUDA_ERROR_INVALID_VALUE) ++bad;
  if (cudaMallocAsync(nullptr, 64, nullptr) != cudaErrorInvalidValue) ++bad;
  if (cuMemGetInfo(nullptr, nullptr) != CUDA_ERROR_INVALID_VALUE) ++bad;
  if (cudaMemGetInfo(nullptr, nullptr) != cudaErrorInvalidValue) ++bad;
  // A pointer CUDA never gave out, through both APIs.
  static int not_device[4];
  (void)cudaFree(&not_device[0]);
  (void)cuMemFree(reinterpret_cast<CUdeviceptr>(&not_device[1]));
  // A double free.
  void* twice = nullptr;
  if (cudaMalloc(&twice, 2000) != cudaSuccess) ++bad;
  if (cudaFree(twice) != cudaSuccess) ++bad;
  (void)cudaFree(twice);
  void* after = nullptr;
  if (cudaMalloc(&after, 3000) != cudaSuccess) ++bad;
  if (cudaFree(after) != cudaSuccess) ++bad;
  if (cudaFree(before) != cudaSuccess) ++bad;
  std::printf("unknown_rt %p\nunknown_drv %p\ndouble %p\n", static_cast<void*>(&not_device[0]),
              static_cast<void*>(&not_device[1]), twice);
  return bad;
}

// --- bad_device -------------------------------------------------------------------------------
// Physical memory asked for on a device CUDA does not have (simcuda's one device is 0), then an
// ordinary allocation. Prints "bad_device CODE"; exits 0 when the ordinary one works.
int bad_device() {
  if (!init_driver()) return 1;
  CUmemAllocationProp prop = gpumem::test::device_memory_prop(7);
  CUmemGenericAllocationHandle h = 0;
  const CUresult e = cuMemCreate(&h, size_t{2} << 20, &prop, 0);
  std::printf("bad_device %d\n", static_cast<int>(e));
  if (e == CUDA_SUCCESS) cuMemRelease(h);
  void* p = nullptr;
  if (cudaMalloc(&p, 4096) != cudaSuccess) return 1;
  return cudaFree(p) == cudaSuccess ? 0 : 1;
}

int one() {
  void* p = nullptr;
  if (cudaMalloc(&p, 4096) != cudaSuccess) return 1;
  return cudaFree(p) == cudaSuccess ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "kill" && argc == 4) return kill_loop(argv[2], std::atoi(argv[3]));
  if (cmd == "soak" && argc == 4) return soak(std::atoi(argv[2]), std::strtoull(argv[3], nullptr, 10));
  if (cmd == "misuse") return misuse();
  if (cmd == "bad_device") return bad_device();
  if (cmd == "one") return one();
  std::fprintf(stderr, "usage: reliability_workload kill SHM THREADS | soak THREADS OPS | misuse | bad_device | one\n");
  return 2;
}
