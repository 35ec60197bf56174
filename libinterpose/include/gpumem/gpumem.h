/* gpumem public C API.
 *
 * A program may call these whether or not it runs under the preload library: every function is
 * declared weak here, so when libgpumem.so is not loaded the symbols resolve to NULL and the
 * GPUMEM_* macros below do nothing. Under LD_PRELOAD=libgpumem.so the dynamic linker binds them
 * to the library's definitions. Use the macros (or test gpumem_present()) rather than calling the
 * functions unconditionally.
 */
#ifndef GPUMEM_GPUMEM_H
#define GPUMEM_GPUMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(GPUMEM_BUILDING_LIBRARY)
#define GPUMEM_API __attribute__((visibility("default")))
#else
#define GPUMEM_API __attribute__((weak))
#endif

/* Phases: a named range (nestable, per thread) and an instant marker. */
GPUMEM_API void gpumem_mark_begin(const char* name);
GPUMEM_API void gpumem_mark_end(void);
GPUMEM_API void gpumem_mark(const char* name);

/* Statistics for one device, as gpumem's resources see them. */
typedef struct gpumem_stats {
  uint64_t allocated_bytes;       /* bytes the program holds */
  uint64_t reserved_bytes;        /* bytes taken from the device (== allocated without a pool) */
  uint64_t peak_allocated_bytes;
  uint64_t peak_reserved_bytes;
  uint64_t alloc_count;
  uint64_t free_count;
  uint64_t failed_count;
  uint64_t largest_free_block_bytes; /* inside reserved pool segments; 0 without a pool */
  uint64_t limit_bytes;           /* 0 = no limit */
} gpumem_stats;

/* Returns 0 and fills *out, or -1 when device is out of range or out is NULL. */
GPUMEM_API int gpumem_get_stats(int device, gpumem_stats* out);

/* Releases the pool's empty cached segments on `device` (-1: every device). Returns the bytes
 * given back to the device. */
GPUMEM_API uint64_t gpumem_empty_cache(int device);

/* PyTorch CUDAPluggableAllocator entry points (stream is a cudaStream_t). */
GPUMEM_API void* gpumem_torch_malloc(ssize_t size, int device, void* stream);
GPUMEM_API void gpumem_torch_free(void* ptr, ssize_t size, int device, void* stream);

/* 1 when the preload library is loaded in this process. */
#if defined(GPUMEM_BUILDING_LIBRARY)
static inline int gpumem_present(void) { return 1; } /* inside the library itself */
#else
static inline int gpumem_present(void) { return gpumem_mark_begin != NULL; }
#endif

#define GPUMEM_MARK_BEGIN(name) do { if (gpumem_present()) gpumem_mark_begin(name); } while (0)
#define GPUMEM_MARK_END() do { if (gpumem_present()) gpumem_mark_end(); } while (0)
#define GPUMEM_MARK(name) do { if (gpumem_present()) gpumem_mark(name); } while (0)

#ifdef __cplusplus
}
#endif

#endif /* GPUMEM_GPUMEM_H */
