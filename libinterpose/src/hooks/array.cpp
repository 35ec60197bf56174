// CUDA arrays and mipmapped arrays (textures, surfaces, cuDNN/TensorRT workspaces): device memory
// behind an opaque handle. Each create is an Op::alloc of MemKind::array whose address is the
// handle and whose bytes are the descriptor's size formula (gpumem/array_bytes.h: the driver has
// no size query for an ordinary array; a mipmapped array's level count clamped to
// [1, 1 + floor(log2(max extent))] as CUDA clamps it, so 0 levels is one level, never 0 bytes
// that would pass the cap), charged to the device's cap like any unpooled allocation
// (policy::route_for: never served from a gpumem pool, an array is the driver's own object) and
// refused with the API's own out-of-memory code over it. Each destroy is its Op::free.
// Sparse and deferred-mapping arrays take no memory when created (it arrives later through
// cuMemMapArrayAsync, not caught): recorded with 0 bytes.
#include "gpumem/array_bytes.h"
#include "hooks/families.h"
#include "hooks/wrapped.h"

namespace gpumem::hooks {
namespace {

using families::Driver;
using families::Runtime;
using trace::Api;
using trace::Lookup;
using trace::MemKind;

constexpr unsigned kNoMemoryYet = CUDA_ARRAY3D_SPARSE | CUDA_ARRAY3D_DEFERRED_MAPPING;

uint64_t driver_bytes(const CUDA_ARRAY3D_DESCRIPTOR* d, unsigned levels) {
  if (d == nullptr || (d->Flags & kNoMemoryYet) != 0) return 0;
  const bool layers = (d->Flags & (CUDA_ARRAY3D_LAYERED | CUDA_ARRAY3D_CUBEMAP)) != 0;
  return arrays::array_bytes(arrays::driver_texel(d->Format, d->NumChannels), d->Width, d->Height,
                             d->Depth, levels, layers);
}

// cudaArray* flags have the values of CUDA_ARRAY3D_*.
uint64_t runtime_bytes(const cudaChannelFormatDesc* c, cudaExtent e, unsigned levels,
                       unsigned flags) {
  if (c == nullptr || (flags & kNoMemoryYet) != 0) return 0;
  const bool layers = (flags & (cudaArrayLayered | cudaArrayCubemap)) != 0;
  return arrays::array_bytes(arrays::runtime_texel(c->x, c->y, c->z, c->w, c->f), e.width, e.height,
                             e.depth, levels, layers);
}

template <class F, Lookup L>
Request destroy_request(Api api) {
  Request req = free_request<F, L>(api);
  req.flags = make_flags(MemKind::array, L);
  return req;
}

template <Lookup L>
cudaError_t hook_cudaMallocArray(cudaArray_t* array, const cudaChannelFormatDesc* desc,
                                 size_t width, size_t height, unsigned int flags) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMallocArray, array, desc, width, height, flags);
  Request req = request<Runtime, L>(Api::cudaMallocArray,
                                    runtime_bytes(desc, cudaExtent{width, height, 0}, 1, flags),
                                    MemKind::array);
  if (array == nullptr) return null_out_param<Runtime>(req);
  return allocate<Runtime>(req, array, [&] { return real(array, desc, width, height, flags); });
}

template <Lookup L>
cudaError_t hook_cudaMalloc3DArray(cudaArray_t* array, const cudaChannelFormatDesc* desc,
                                   cudaExtent extent, unsigned int flags) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMalloc3DArray, array, desc, extent, flags);
  Request req = request<Runtime, L>(Api::cudaMalloc3DArray, runtime_bytes(desc, extent, 1, flags),
                                    MemKind::array);
  if (array == nullptr) return null_out_param<Runtime>(req);
  return allocate<Runtime>(req, array, [&] { return real(array, desc, extent, flags); });
}

template <Lookup L>
cudaError_t hook_cudaMallocMipmappedArray(cudaMipmappedArray_t* array,
                                          const cudaChannelFormatDesc* desc, cudaExtent extent,
                                          unsigned int levels, unsigned int flags) {
  GPUMEM_RUNTIME_PROLOGUE(cudaMallocMipmappedArray, array, desc, extent, levels, flags);
  Request req = request<Runtime, L>(Api::cudaMallocMipmappedArray,
                                    runtime_bytes(desc, extent, levels, flags), MemKind::array);
  if (array == nullptr) return null_out_param<Runtime>(req);
  return allocate<Runtime>(req, array, [&] { return real(array, desc, extent, levels, flags); });
}

template <Lookup L>
cudaError_t hook_cudaFreeArray(cudaArray_t array) {
  GPUMEM_RUNTIME_PROLOGUE(cudaFreeArray, array);
  if (array == nullptr) return real(array);  // no operation, as documented
  Request req = destroy_request<Runtime, L>(Api::cudaFreeArray);
  return release<Runtime>(req, array, [&] { return real(array); });
}

template <Lookup L>
cudaError_t hook_cudaFreeMipmappedArray(cudaMipmappedArray_t array) {
  GPUMEM_RUNTIME_PROLOGUE(cudaFreeMipmappedArray, array);
  if (array == nullptr) return real(array);
  Request req = destroy_request<Runtime, L>(Api::cudaFreeMipmappedArray);
  return release<Runtime>(req, array, [&] { return real(array); });
}

template <Lookup L>
CUresult hook_cuArrayCreate_v2(CUarray* array, const CUDA_ARRAY_DESCRIPTOR* desc) {
  GPUMEM_DRIVER_PROLOGUE(cuArrayCreate_v2, array, desc);
  uint64_t bytes = 0;
  if (desc != nullptr) {
    const CUDA_ARRAY3D_DESCRIPTOR d{desc->Width,  desc->Height,      0,
                                    desc->Format, desc->NumChannels, 0};
    bytes = driver_bytes(&d, 1);
  }
  Request req = request<Driver, L>(Api::cuArrayCreate, bytes, MemKind::array);
  if (array == nullptr) return null_out_param<Driver>(req);
  return allocate<Driver>(req, array, [&] { return real(array, desc); });
}

template <Lookup L>
CUresult hook_cuArray3DCreate_v2(CUarray* array, const CUDA_ARRAY3D_DESCRIPTOR* desc) {
  GPUMEM_DRIVER_PROLOGUE(cuArray3DCreate_v2, array, desc);
  Request req = request<Driver, L>(Api::cuArray3DCreate, driver_bytes(desc, 1), MemKind::array);
  if (array == nullptr) return null_out_param<Driver>(req);
  return allocate<Driver>(req, array, [&] { return real(array, desc); });
}

template <Lookup L>
CUresult hook_cuMipmappedArrayCreate(CUmipmappedArray* array, const CUDA_ARRAY3D_DESCRIPTOR* desc,
                                     unsigned int levels) {
  GPUMEM_DRIVER_PROLOGUE(cuMipmappedArrayCreate, array, desc, levels);
  Request req =
      request<Driver, L>(Api::cuMipmappedArrayCreate, driver_bytes(desc, levels), MemKind::array);
  if (array == nullptr) return null_out_param<Driver>(req);
  return allocate<Driver>(req, array, [&] { return real(array, desc, levels); });
}

template <Lookup L>
CUresult hook_cuArrayDestroy(CUarray array) {
  GPUMEM_DRIVER_PROLOGUE(cuArrayDestroy, array);
  if (array == nullptr) return real(array);  // the driver's own answer; nothing to record
  Request req = destroy_request<Driver, L>(Api::cuArrayDestroy);
  return release<Driver>(req, array, [&] { return real(array); });
}

template <Lookup L>
CUresult hook_cuMipmappedArrayDestroy(CUmipmappedArray array) {
  GPUMEM_DRIVER_PROLOGUE(cuMipmappedArrayDestroy, array);
  if (array == nullptr) return real(array);
  Request req = destroy_request<Driver, L>(Api::cuMipmappedArrayDestroy);
  return release<Driver>(req, array, [&] { return real(array); });
}

}  // namespace

// Runtime and driver names together: the resolver substitutes only addresses of real driver
// functions, so the runtime rows never match there.
const Wrapped kArrayWrapped[] = {
    GPUMEM_WRAPPED(cudaMallocArray),          GPUMEM_WRAPPED(cudaMalloc3DArray),
    GPUMEM_WRAPPED(cudaMallocMipmappedArray), GPUMEM_WRAPPED(cudaFreeArray),
    GPUMEM_WRAPPED(cudaFreeMipmappedArray),   GPUMEM_WRAPPED(cuArrayCreate_v2),
    GPUMEM_WRAPPED(cuArray3DCreate_v2),       GPUMEM_WRAPPED(cuMipmappedArrayCreate),
    GPUMEM_WRAPPED(cuArrayDestroy),           GPUMEM_WRAPPED(cuMipmappedArrayDestroy),
};
const size_t kArrayWrappedCount = sizeof kArrayWrapped / sizeof kArrayWrapped[0];

}  // namespace gpumem::hooks

using gpumem::hooks::Lookup;
#define GPUMEM_EXPORT_HOOK(ret, name, params, args)         \
  GPUMEM_EXPORT ret name params {                           \
    return gpumem::hooks::hook_##name<Lookup::direct> args; \
  }

GPUMEM_EXPORT_HOOK(cudaError_t, cudaMallocArray,
                   (cudaArray_t * a, const cudaChannelFormatDesc* d, size_t w, size_t h,
                    unsigned int f),
                   (a, d, w, h, f))
GPUMEM_EXPORT_HOOK(cudaError_t, cudaMalloc3DArray,
                   (cudaArray_t * a, const cudaChannelFormatDesc* d, cudaExtent e, unsigned int f),
                   (a, d, e, f))
GPUMEM_EXPORT_HOOK(cudaError_t, cudaMallocMipmappedArray,
                   (cudaMipmappedArray_t * a, const cudaChannelFormatDesc* d, cudaExtent e,
                    unsigned int n, unsigned int f),
                   (a, d, e, n, f))
GPUMEM_EXPORT_HOOK(cudaError_t, cudaFreeArray, (cudaArray_t a), (a))
GPUMEM_EXPORT_HOOK(cudaError_t, cudaFreeMipmappedArray, (cudaMipmappedArray_t a), (a))
GPUMEM_EXPORT_HOOK(CUresult, cuArrayCreate_v2, (CUarray * a, const CUDA_ARRAY_DESCRIPTOR* d),
                   (a, d))
GPUMEM_EXPORT_HOOK(CUresult, cuArray3DCreate_v2, (CUarray * a, const CUDA_ARRAY3D_DESCRIPTOR* d),
                   (a, d))
GPUMEM_EXPORT_HOOK(CUresult, cuMipmappedArrayCreate,
                   (CUmipmappedArray * a, const CUDA_ARRAY3D_DESCRIPTOR* d, unsigned int n),
                   (a, d, n))
GPUMEM_EXPORT_HOOK(CUresult, cuArrayDestroy, (CUarray a), (a))
GPUMEM_EXPORT_HOOK(CUresult, cuMipmappedArrayDestroy, (CUmipmappedArray a), (a))
