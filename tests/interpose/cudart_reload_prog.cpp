// A program that loads the CUDA runtime privately, as a framework plugin does (dlopen with
// RTLD_LOCAL, no link to libcudart), allocates, closes it, then loads it again and allocates.
// Under the preload the hooks cache the runtime's functions: were the first library unloaded,
// the second allocation would call into its unmapped code. To make that deterministic, the
// address range the first library occupied is covered with an inaccessible mapping once it is
// gone, so a stale pointer faults instead of finding the same code reloaded at the same place.
// Prints "first N", "still_loaded 0|1", "second N" (N: cudaMalloc's code) and exits 0.
#include <dlfcn.h>
#include <link.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace {

using MallocFn = int (*)(void**, size_t);
using FreeFn = int (*)(void*);
constexpr const char* kRuntime = "libcudart.so.13";

struct Extent {
  const char* name;
  uintptr_t lo = UINTPTR_MAX, hi = 0;
};

// The pages the loaded object `name` maps.
Extent extent_of(const char* name) {
  Extent e{name};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* e = static_cast<Extent*>(data);
        if (std::strcmp(info->dlpi_name, e->name) != 0) return 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          if (info->dlpi_phdr[i].p_type != PT_LOAD) continue;
          const uintptr_t at = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
          e->lo = std::min(e->lo, at & ~uintptr_t{4095});
          e->hi = std::max(e->hi, (at + info->dlpi_phdr[i].p_memsz + 4095) & ~uintptr_t{4095});
        }
        return 0;
      },
      &e);
  return e;
}

int allocate_once(void* runtime) {
  auto alloc = reinterpret_cast<MallocFn>(dlsym(runtime, "cudaMalloc"));
  auto release = reinterpret_cast<FreeFn>(dlsym(runtime, "cudaFree"));
  if (alloc == nullptr || release == nullptr) return -1;
  void* p = nullptr;
  const int code = alloc(&p, 4096);
  if (code == 0) release(p);
  return code;
}

}  // namespace

int main() {
  void* first = dlopen(kRuntime, RTLD_NOW | RTLD_LOCAL);
  if (first == nullptr) return 1;
  std::printf("first %d\n", allocate_once(first));
  link_map* map = nullptr;
  if (dlinfo(first, RTLD_DI_LINKMAP, &map) != 0) return 2;
  const Extent gone = extent_of(map->l_name);
  dlclose(first);
  void* still = dlopen(kRuntime, RTLD_NOW | RTLD_NOLOAD);
  std::printf("still_loaded %d\n", still != nullptr ? 1 : 0);
  if (still == nullptr && gone.lo < gone.hi)
    mmap(reinterpret_cast<void*>(gone.lo), gone.hi - gone.lo, PROT_NONE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  std::fflush(stdout);
  void* second = dlopen(kRuntime, RTLD_NOW | RTLD_LOCAL);
  if (second == nullptr) return 3;
  std::printf("second %d\n", allocate_once(second));
  return 0;
}
