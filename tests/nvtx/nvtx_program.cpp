// A program annotated with the CUDA toolkit's NVTX v3 headers and nothing of gpumem's: nested
// push/pop on 4 threads, a start/end range that ends on another thread, a named domain, a
// registered string, a wide name, a range open on another thread at the peak, marks, and a heap of
// the memory extension with 3 regions. nvtx_test.cpp runs it under `gpumem run` on simcuda and
// checks the trace and the report.
//
// Prints "tid NAME N" for each thread it names, and "heap 0xADDR" (the heap's base), so the test
// knows what to expect. With the argument `levels` it also checks NVTX's answers to push and pop
// (the nesting levels an attached tool returns) and exits 3 on a wrong one. With `keep` it stops
// once the heap's regions are registered and resized: it allocates 30 MiB more (the peak, with the
// regions live) and exits with all of it still allocated.
#include <cuda_runtime_api.h>
#include <nvtx3/nvToolsExt.h>
#include <nvtx3/nvToolsExtMem.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kMiB = 1 << 20;
bool g_check_levels = false;

void expect_level(int got, int want, const char* what) {
  if (!g_check_levels || got == want) return;
  std::fprintf(stderr, "nvtx_program: %s returned %d, expected %d\n", what, got, want);
  std::exit(3);
}

void* device_alloc(size_t bytes) {
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    std::fprintf(stderr, "nvtx_program: cudaMalloc(%zu) failed\n", bytes);
    std::exit(2);
  }
  return p;
}

void print_tid(const std::string& name) {
  std::printf("tid %s %ld\n", name.c_str(), static_cast<long>(::syscall(SYS_gettid)));
  std::fflush(stdout);
}

}  // namespace

// `bad`: what a careless program may hand NVTX; gpumem must neither crash nor record nonsense.
int misuse() {
  void* p = device_alloc(kMiB);  // so that the trace exists
  nvtxRangePushA(nullptr);
  nvtxRangePushW(nullptr);
  nvtxRangePushEx(nullptr);
  nvtxEventAttributes_t tiny{};  // size 0: an attributes struct NVTX cannot read
  nvtxRangePushEx(&tiny);
  for (int i = 0; i < 4; ++i) nvtxRangePop();
  if (nvtxRangePop() != -1) return 3;  // a pop without a push
  nvtxDomainHandle_t d = nvtxDomainCreateA(nullptr);
  if (nvtxDomainRangePop(d) != -1) return 3;
  nvtxMarkEx(nullptr);
  nvtxMarkA(nullptr);
  nvtxMarkW(L"\u6b65\U0001F680");  // 3- and 4-byte UTF-8
  nvtxRangeEnd(0);
  nvtxDomainRegisterStringA(d, nullptr);
  nvtxMemHeapRegister(d, nullptr);
  nvtxMemRegionsRegister(d, nullptr);
  nvtxMemRegionsResize(d, nullptr);
  nvtxMemRegionsUnregister(d, nullptr);
  nvtxMemRegionsRegisterBatch_t wrong{};  // a region type gpumem does not read
  wrong.regionType = 0x7;
  wrong.regionCount = 1;
  nvtxMemRegionsRegister(d, &wrong);
  // Deeper than the 128 levels gpumem keeps: still balanced, levels still counted.
  for (int i = 0; i < 200; ++i)
    if (nvtxRangePushA("deep") != i) return 4;
  for (int i = 199; i >= 0; --i)
    if (nvtxRangePop() != i) return 4;
  cudaFree(p);
  return 0;
}

// `signal`: a 20 us timer whose handler pushes and pops a range while the program allocates, so
// that handlers interrupt gpumem's hooks and its NVTX callbacks. NVTX is initialised first (its
// first call dlopens the injection, which no handler may do). Prints "ticks N".
std::atomic<int> g_ticks{0};
void on_tick(int) {
  nvtxRangePushA("tick");
  nvtxRangePop();
  g_ticks.fetch_add(1);
}

int ticks() {
  nvtxMarkA("before the timer");
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_tick;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, nullptr);
  const itimerval every_20us{{0, 20}, {0, 20}};
  setitimer(ITIMER_REAL, &every_20us, nullptr);
  // At least 2000 pairs and 50 ticks; bounded by time, not by a count of pairs, so that a loaded
  // machine (sanitizers, parallel tests) that runs pairs slowly still gets its 50 ticks.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (int i = 0; i < 2000 || (g_ticks.load() < 50 && std::chrono::steady_clock::now() < give_up);
       ++i) {
    nvtxRangePushA("pair");
    void* p = device_alloc(256 * static_cast<size_t>(i % 16 + 1));
    cudaFree(p);
    nvtxRangePop();
  }
  const itimerval off{};
  setitimer(ITIMER_REAL, &off, nullptr);
  std::printf("ticks %d\n", g_ticks.load());
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "bad") == 0) return misuse();
  if (argc > 1 && std::strcmp(argv[1], "signal") == 0) return ticks();
  g_check_levels = argc > 1 && std::strcmp(argv[1], "levels") == 0;
  const bool keep = argc > 1 && std::strcmp(argv[1], "keep") == 0;
  print_tid("main");
  nvtxDomainHandle_t trainer = nvtxDomainCreateA("trainer");
  nvtxStringHandle_t forward = nvtxDomainRegisterStringA(trainer, "forward");

  // 4 threads, each "step" > "layer<i>", with its own allocation inside.
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i)
    workers.emplace_back([i] {
      print_tid("worker" + std::to_string(i));
      expect_level(nvtxRangePushA("step"), 0, "push step");
      expect_level(nvtxRangePushA(("layer" + std::to_string(i)).c_str()), 1, "push layer");
      void* p = device_alloc((i + 1) * kMiB);
      expect_level(nvtxRangePop(), 1, "pop layer");
      expect_level(nvtxRangePop(), 0, "pop step");
      cudaFree(p);
    });
  for (auto& t : workers) t.join();

  // A process-wide range, ended by another thread.
  nvtxRangeId_t load = nvtxRangeStartA("load");
  std::thread([load] {
    print_tid("ender");
    nvtxRangeEnd(load);
  }).join();

  expect_level(nvtxRangePushW(L"\u00e9valuation"), 0, "push wide");
  expect_level(nvtxRangePop(), 0, "pop wide");

  // The peak: 32 MiB inside trainer::forward > attention (default domain) on the main thread.
  nvtxEventAttributes_t a{};
  a.version = NVTX_VERSION;
  a.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
  a.messageType = NVTX_MESSAGE_TYPE_REGISTERED;
  a.message.registered = forward;
  // Meanwhile another thread opens "background" after "attention" began: the peak is still in the
  // allocating thread's innermost range, not in the most recently begun one of the process.
  std::atomic<int> step{0};
  std::thread background([&step] {
    print_tid("background");
    while (step.load() != 1) std::this_thread::yield();
    expect_level(nvtxRangePushA("background"), 0, "push background");
    step.store(2);
    while (step.load() != 3) std::this_thread::yield();
    expect_level(nvtxRangePop(), 0, "pop background");
  });
  expect_level(nvtxDomainRangePushEx(trainer, &a), 0, "push trainer::forward");
  expect_level(nvtxRangePushA("attention"), 0, "push attention");  // level in its own domain
  step.store(1);
  while (step.load() != 2) std::this_thread::yield();
  void* big = device_alloc(32 * kMiB);
  step.store(3);
  background.join();
  expect_level(nvtxRangePop(), 0, "pop attention");
  expect_level(nvtxDomainRangePop(trainer), 0, "pop trainer::forward");
  cudaFree(big);

  nvtxMarkA("checkpoint");
  a.messageType = NVTX_MESSAGE_TYPE_ASCII;
  a.message.ascii = "epoch-end";
  nvtxDomainMarkEx(trainer, &a);

  // A sub-allocator's heap in one 16 MiB allocation: 3 regions, one resized, one unregistered.
  char* base = static_cast<char*>(device_alloc(16 * kMiB));
  std::printf("heap %#llx\n", static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(base)));
  std::fflush(stdout);
  nvtxMemVirtualRangeDesc_t whole{16 * kMiB, base};
  nvtxMemHeapDesc_t hd{};
  hd.extCompatID = NVTX_EXT_COMPATID_MEM;
  hd.structSize = sizeof hd;
  hd.usage = NVTX_MEM_HEAP_USAGE_TYPE_SUB_ALLOCATOR;
  hd.type = NVTX_MEM_TYPE_VIRTUAL_ADDRESS;
  hd.typeSpecificDescSize = sizeof whole;
  hd.typeSpecificDesc = &whole;
  nvtxMemHeapHandle_t heap = nvtxMemHeapRegister(trainer, &hd);

  nvtxMemVirtualRangeDesc_t regions[3] = {
      {1 * kMiB, base}, {2 * kMiB, base + 2 * kMiB}, {3 * kMiB, base + 6 * kMiB}};
  nvtxMemRegionHandle_t handles[3] = {};
  nvtxMemRegionsRegisterBatch_t reg{};
  reg.extCompatID = NVTX_EXT_COMPATID_MEM;
  reg.structSize = sizeof reg;
  reg.regionType = NVTX_MEM_TYPE_VIRTUAL_ADDRESS;
  reg.heap = heap;
  reg.regionCount = 3;
  reg.regionDescElementSize = sizeof regions[0];
  reg.regionDescElements = regions;
  reg.regionHandleElementsOut = handles;
  nvtxMemRegionsRegister(trainer, &reg);

  nvtxMemVirtualRangeDesc_t grown{4 * kMiB, base + 2 * kMiB};
  nvtxMemRegionsResizeBatch_t rs{};
  rs.extCompatID = NVTX_EXT_COMPATID_MEM;
  rs.structSize = sizeof rs;
  rs.regionType = NVTX_MEM_TYPE_VIRTUAL_ADDRESS;
  rs.regionDescCount = 1;
  rs.regionDescElementSize = sizeof grown;
  rs.regionDescElements = &grown;
  nvtxMemRegionsResize(trainer, &rs);
  if (keep) {
    device_alloc(30 * kMiB);
    return 0;
  }

  nvtxMemRegionRef_t first;
  first.pointer = base;
  nvtxMemRegionsUnregisterBatch_t un{};
  un.extCompatID = NVTX_EXT_COMPATID_MEM;
  un.structSize = sizeof un;
  un.refType = NVTX_MEM_REGION_REF_TYPE_POINTER;
  un.refCount = 1;
  un.refElementSize = sizeof first;
  un.refElements = &first;
  nvtxMemRegionsUnregister(trainer, &un);
  // The third region by the handle the tool gave back.
  nvtxMemRegionRef_t third;
  third.handle = handles[2];
  un.refType = NVTX_MEM_REGION_REF_TYPE_HANDLE;
  un.refElements = &third;
  nvtxMemRegionsUnregister(trainer, &un);

  nvtxMemHeapUnregister(trainer, heap);
  cudaFree(base);
  return 0;
}
