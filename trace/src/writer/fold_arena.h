// Memory for a bounded trace's digest fold (digest.h, window.h) that never comes from malloc. The
// fold runs on whichever thread appends when a chunk is sealed, and that may be a signal handler
// that interrupted malloc on the same thread: glibc's malloc is not reentrant, so a fold calling
// it there could deadlock on the arena lock it interrupted. The arena takes its memory from mmap
// (a plain system call, no lock) in large slabs, hands out power-of-two blocks and keeps freed ones
// in per-size lists for reuse. Only the holder of the writer's seal lock uses it, so it needs no
// lock of its own; its memory goes back when the window is destroyed.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

namespace gpumem::detail {

class FoldArena {
 public:
  FoldArena() = default;
  FoldArena(const FoldArena&) = delete;
  FoldArena& operator=(const FoldArena&) = delete;
  ~FoldArena() {
    for (Slab* s = slabs_; s != nullptr;) {
      Slab* next = s->next;
      munmap(s, s->bytes);
      s = next;
    }
  }

  void* allocate(size_t bytes) {
    const int c = size_class(bytes);
    if (Free* f = free_[c]; f != nullptr) {
      free_[c] = f->next;
      return f;
    }
    const size_t size = size_t{kMinBlock} << c;
    if (static_cast<size_t>(end_ - at_) < size && !new_slab(size)) throw std::bad_alloc();
    void* p = at_;
    at_ += size;
    return p;
  }

  void deallocate(void* p, size_t bytes) {
    if (p == nullptr) return;
    const int c = size_class(bytes);
    free_[c] = new (p) Free{free_[c]};
  }

  // Bytes taken from the system so far (slabs), for tests.
  size_t mapped_bytes() const { return mapped_; }

 private:
  static constexpr size_t kMinBlock = 16;
  static constexpr int kClasses = 44;  // 16 B to 128 TiB
  static constexpr size_t kSlabBytes = size_t{64} << 20;  // NORESERVE: pages are backed when used

  struct Free {
    Free* next;
  };
  struct alignas(16) Slab {
    Slab* next;
    size_t bytes;
  };

  static int size_class(size_t bytes) {
    int c = 0;
    while ((kMinBlock << c) < bytes) ++c;
    return c;
  }

  // A fresh slab for a block of `size` bytes; what was left of the current one is given up.
  bool new_slab(size_t size) {
    const size_t bytes = std::max(kSlabBytes, size + sizeof(Slab));
    void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return false;
    slabs_ = new (m) Slab{slabs_, bytes};
    mapped_ += bytes;
    at_ = static_cast<char*>(m) + sizeof(Slab);
    end_ = static_cast<char*>(m) + bytes;
    return true;
  }

  Free* free_[kClasses] = {};
  Slab* slabs_ = nullptr;
  char* at_ = nullptr;
  char* end_ = nullptr;
  size_t mapped_ = 0;
};

// A standard allocator over one FoldArena (the containers of the fold are built with it).
template <class T>
struct FoldAllocator {
  using value_type = T;
  FoldArena* arena;
  explicit FoldAllocator(FoldArena* a) : arena(a) {}
  template <class U>
  FoldAllocator(const FoldAllocator<U>& o) : arena(o.arena) {}
  T* allocate(size_t n) { return static_cast<T*>(arena->allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { arena->deallocate(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const FoldAllocator<U>& o) const {
    return arena == o.arena;
  }
};

template <class T>
using ArenaVector = std::vector<T, FoldAllocator<T>>;
using ArenaString = std::basic_string<char, std::char_traits<char>, FoldAllocator<char>>;
template <class K, class V, class Less = std::less<K>>
using ArenaMap = std::map<K, V, Less, FoldAllocator<std::pair<const K, V>>>;
template <class K, class V>
using ArenaHashMap =
    std::unordered_map<K, V, std::hash<K>, std::equal_to<K>, FoldAllocator<std::pair<const K, V>>>;

}  // namespace gpumem::detail
