// CUDA arrays and mipmapped arrays: opaque handles whose memory is charged to the current
// context's device by the size formula (gpumem/array_bytes.h) and the usual page rule, so that
// capacity queries and out-of-memory behave as for cuMemAlloc. No host memory backs them: host
// code cannot touch an array, and the copies into arrays (cuMemcpy2D/3D) are not simulated.
#include <type_traits>
#include <unordered_map>

#include "gpumem/array_bytes.h"
#include "state.h"

// Opaque handle types, defined here for the simulated driver only. The accounting lives in the
// table below, so a handle is only ever compared, never read.
struct CUarray_st {
  int device;
};
struct CUmipmappedArray_st {
  int device;
};

namespace simcuda {
namespace {

struct LiveArray {
  bool mipmapped;
  int device;
  uint64_t large_charge, small_charge;
};

// Live handles of both types, guarded by state().mu (so fork copies them consistently).
// Never destroyed, as the rest of the state.
std::unordered_map<const void*, LiveArray>& live() {
  static auto* map = new std::unordered_map<const void*, LiveArray>();
  return *map;
}

constexpr unsigned kKnownFlags =
    CUDA_ARRAY3D_LAYERED | CUDA_ARRAY3D_SURFACE_LDST | CUDA_ARRAY3D_CUBEMAP |
    CUDA_ARRAY3D_TEXTURE_GATHER | CUDA_ARRAY3D_DEPTH_TEXTURE | CUDA_ARRAY3D_COLOR_ATTACHMENT |
    CUDA_ARRAY3D_SPARSE | CUDA_ARRAY3D_DEFERRED_MAPPING | CUDA_ARRAY3D_VIDEO_ENCODE_DECODE;

// The array's bytes, or the driver's error for a descriptor CUDA refuses (or simcuda does not
// simulate: sparse and deferred-mapping arrays, which take their memory later by
// cuMemMapArrayAsync). A level count is never refused: 0 or too many is clamped.
CUresult size_of(const CUDA_ARRAY3D_DESCRIPTOR& d, unsigned levels, uint64_t* bytes) {
  if (d.Width == 0 || (d.Flags & ~kKnownFlags) != 0) return CUDA_ERROR_INVALID_VALUE;
  if ((d.Flags & (CUDA_ARRAY3D_SPARSE | CUDA_ARRAY3D_DEFERRED_MAPPING)) != 0)
    return CUDA_ERROR_NOT_SUPPORTED;
  const gpumem::arrays::Texel t = gpumem::arrays::driver_texel(d.Format, d.NumChannels);
  if (!t.known()) return CUDA_ERROR_INVALID_VALUE;
  if (d.Height == 0 && d.Depth != 0 && (d.Flags & CUDA_ARRAY3D_LAYERED) == 0)
    return CUDA_ERROR_INVALID_VALUE;  // a 3D array needs a height
  const bool layers = (d.Flags & (CUDA_ARRAY3D_LAYERED | CUDA_ARRAY3D_CUBEMAP)) != 0;
  if ((d.Flags & CUDA_ARRAY3D_CUBEMAP) != 0) {
    const bool layered = (d.Flags & CUDA_ARRAY3D_LAYERED) != 0;
    if (d.Width != d.Height || d.Depth == 0 || (layered ? d.Depth % 6 : d.Depth != 6) != 0)
      return CUDA_ERROR_INVALID_VALUE;
  }
  // Any level count: CUDA clamps it to [1, the extent's maximum] (cuMipmappedArrayCreate,
  // cudaMallocMipmappedArray), and so does array_bytes.
  *bytes = gpumem::arrays::array_bytes(t, d.Width, d.Height, d.Depth, levels, layers);
  return CUDA_SUCCESS;
}

// Charges the array to the current context's device and records it; the handle goes to *out.
template <class Handle>
CUresult create(Handle** out, const CUDA_ARRAY3D_DESCRIPTOR* desc, unsigned levels) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (out == nullptr || desc == nullptr) return CUDA_ERROR_INVALID_VALUE;
  int device = 0;
  if (CUresult r = current_device(&device)) return r;
  uint64_t bytes = 0;
  if (CUresult r = size_of(*desc, levels, &bytes)) return r;
  if (!count_allocation()) return CUDA_ERROR_OUT_OF_MEMORY;
  alloc_latency();
  LiveArray a{std::is_same_v<Handle, CUmipmappedArray_st>, device, 0, 0};
  charge_for(bytes, &a.large_charge, &a.small_charge);
  auto* h = new Handle{device};
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    if (s.devices[device]->take(a.large_charge, a.small_charge)) {
      live().emplace(h, a);
      *out = h;
      return CUDA_SUCCESS;
    }
  }
  delete h;
  return CUDA_ERROR_OUT_OF_MEMORY;
}

// Gives the array's charge back and forgets it; an unknown handle, or one of the other type,
// is refused untouched.
template <class Handle>
CUresult destroy(Handle* handle) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    auto it = live().find(handle);
    if (it == live().end() || it->second.mipmapped != std::is_same_v<Handle, CUmipmappedArray_st>)
      return CUDA_ERROR_INVALID_HANDLE;
    s.devices[it->second.device]->give(it->second.large_charge, it->second.small_charge);
    live().erase(it);
  }
  free_latency();
  delete handle;
  return CUDA_SUCCESS;
}

}  // namespace
}  // namespace simcuda

using namespace simcuda;

SIMCUDA_EXPORT CUresult CUDAAPI cuArray3DCreate_v2(CUarray* handle,
                                                   const CUDA_ARRAY3D_DESCRIPTOR* desc) {
  return create(handle, desc, 1);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuArrayCreate_v2(CUarray* handle,
                                                 const CUDA_ARRAY_DESCRIPTOR* desc) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (desc == nullptr) return CUDA_ERROR_INVALID_VALUE;
  const CUDA_ARRAY3D_DESCRIPTOR d{desc->Width, desc->Height, 0, desc->Format, desc->NumChannels, 0};
  return create(handle, &d, 1);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMipmappedArrayCreate(CUmipmappedArray* handle,
                                                       const CUDA_ARRAY3D_DESCRIPTOR* desc,
                                                       unsigned int levels) {
  return create(handle, desc, levels);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuArrayDestroy(CUarray handle) {
  return destroy(handle);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMipmappedArrayDestroy(CUmipmappedArray handle) {
  return destroy(handle);
}
