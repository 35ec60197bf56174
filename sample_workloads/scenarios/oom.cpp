// gpumem-oom SCENARIO: runs out of device memory in one of the ways users meet, with numbers
// chosen so that a report can be checked to the byte (tests/oom; docs/oom.md). Every size is in
// MiB of 2^20 bytes.
//
//   too-big        holds 64 MiB, then asks for 512 MiB: too big for a 256 MiB device (run with
//                  SIMCUDA_MEMORY=256MiB), whatever the policy. Exits 3.
//   fragmentation  ten 4 MiB blocks, every other one freed (20 MiB free in 4 MiB holes), then one
//                  8 MiB request: under `--pool growth --limit 40MiB` the pool's two 20 MiB
//                  segments have no 8 MiB hole and the cap refuses a third. Exits 3.
//   workspace      the program holds 24 MiB; another library (libgpumem_oom_workspace.so) takes a
//                  16 MiB workspace; then the program asks for 16 MiB more: under `--limit 48MiB`
//                  the workspace takes the difference. Exits 3.
//   retry          holds 16 MiB, keeps a 24 MiB cache of freed buffers of its own (as a framework
//                  does), asks for 16 MiB under `--limit 48MiB`, is refused, empties its cache and
//                  asks again: the retry succeeds. Exits 0.
//
// It prints one JSON line with what it asked for and whether the last request succeeded.
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "scenario_common.h"

namespace {

const char* const kMe = "gpumem-oom";
constexpr uint64_t kMiB = uint64_t{1} << 20;

void* must_alloc(uint64_t bytes) {
  void* p = nullptr;
  gpumem::scenario::check(kMe, cudaMalloc(&p, bytes), "cudaMalloc");
  return p;
}

// The request that runs out of memory: its code, cleared so that later calls are not affected.
cudaError_t try_alloc(void** p, uint64_t bytes) {
  const cudaError_t err = cudaMalloc(p, bytes);
  if (err != cudaSuccess && err != cudaErrorMemoryAllocation)
    gpumem::scenario::check(kMe, err, "cudaMalloc");
  (void)cudaGetLastError();
  return err;
}

int report(const char* scenario, uint64_t requested, cudaError_t last) {
  std::printf("{\"scenario\":\"%s\",\"requested\":%llu,\"succeeded\":%s}\n", scenario,
              static_cast<unsigned long long>(requested), last == cudaSuccess ? "true" : "false");
  std::fflush(stdout);
  if (last != cudaSuccess) {
    std::fprintf(stderr, "%s: %s: cudaMalloc of %llu bytes: device out of memory\n", kMe, scenario,
                 static_cast<unsigned long long>(requested));
    return 3;
  }
  return 0;
}

int too_big() {
  void* held = must_alloc(64 * kMiB);
  void* big = nullptr;
  const cudaError_t err = try_alloc(&big, 512 * kMiB);
  const int code = report("too-big", 512 * kMiB, err);
  cudaFree(held);
  return code;
}

int fragmentation() {
  std::vector<void*> blocks;
  for (int i = 0; i < 10; ++i) blocks.push_back(must_alloc(4 * kMiB));
  for (size_t i = 0; i < blocks.size(); i += 2) {
    cudaFree(blocks[i]);
    blocks[i] = nullptr;
  }
  void* big = nullptr;
  const cudaError_t err = try_alloc(&big, 8 * kMiB);
  const int code = report("fragmentation", 8 * kMiB, err);
  if (big != nullptr) cudaFree(big);
  for (void* p : blocks)
    if (p != nullptr) cudaFree(p);
  return code;
}

int workspace(const char* argv0) {
  // The library sits next to this program (bin/) in lib/, as the build lays them out.
  std::string dir(argv0);
  dir = dir.find('/') == std::string::npos ? "." : dir.substr(0, dir.rfind('/'));
  const std::string path = dir + "/../lib/libgpumem_oom_workspace.so";
  void* lib = dlopen(path.c_str(), RTLD_NOW);
  if (lib == nullptr) {
    std::fprintf(stderr, "%s: cannot load %s: %s; build the gpumem_oom_workspace target\n", kMe,
                 path.c_str(), dlerror());
    return 4;
  }
  using Init = int (*)(uint64_t, void**);
  auto init = reinterpret_cast<Init>(dlsym(lib, "gpumem_oom_workspace_init"));
  if (init == nullptr) {
    std::fprintf(stderr, "%s: %s has no gpumem_oom_workspace_init; rebuild it\n", kMe,
                 path.c_str());
    return 4;
  }
  void* activations = must_alloc(16 * kMiB);
  void* weights = must_alloc(8 * kMiB);
  void* ws = nullptr;
  gpumem::scenario::check(kMe, static_cast<cudaError_t>(init(16 * kMiB, &ws)),
                          "workspace cudaMalloc");
  void* more = nullptr;
  const cudaError_t err = try_alloc(&more, 16 * kMiB);
  const int code = report("workspace", 16 * kMiB, err);
  if (more != nullptr) cudaFree(more);
  cudaFree(ws);
  cudaFree(weights);
  cudaFree(activations);
  return code;
}

int retry() {
  void* held = must_alloc(16 * kMiB);
  std::vector<void*> cache;  // the program's own cache: buffers it no longer uses, kept for reuse
  for (int i = 0; i < 3; ++i) cache.push_back(must_alloc(8 * kMiB));
  void* p = nullptr;
  cudaError_t err = try_alloc(&p, 16 * kMiB);
  if (err == cudaErrorMemoryAllocation) {
    for (void* c : cache) cudaFree(c);  // empty the cache, as PyTorch does before its retry
    cache.clear();
    err = try_alloc(&p, 16 * kMiB);
  }
  const int code = report("retry", 16 * kMiB, err);
  if (p != nullptr) cudaFree(p);
  for (void* c : cache) cudaFree(c);
  cudaFree(held);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage = "usage: gpumem-oom too-big|fragmentation|workspace|retry\n";
  if (argc != 2) {
    std::fputs(usage, stderr);
    return 2;
  }
  const char* s = argv[1];
  if (std::strcmp(s, "too-big") == 0) return too_big();
  if (std::strcmp(s, "fragmentation") == 0) return fragmentation();
  if (std::strcmp(s, "workspace") == 0) return workspace(argv[0]);
  if (std::strcmp(s, "retry") == 0) return retry();
  std::fprintf(stderr, "gpumem-oom: unknown scenario '%s'\n%s", s, usage);
  return 2;
}
