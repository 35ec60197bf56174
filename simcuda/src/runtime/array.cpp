// The runtime's CUDA arrays and host registration, each one driver call (resolved through
// cuGetProcAddress_v2 like every other entry point, so an interposer sees it): cudaMallocArray
// and cudaMalloc3DArray -> cuArray3DCreate_v2, cudaMallocMipmappedArray -> cuMipmappedArrayCreate,
// cudaFreeArray -> cuArrayDestroy, cudaFreeMipmappedArray -> cuMipmappedArrayDestroy,
// cudaHostRegister -> cuMemHostRegister_v2, cudaHostUnregister -> cuMemHostUnregister.
// A cudaArray_t is the driver's CUarray, as in CUDA.
#include "driver.h"

namespace simcuda::rt {
namespace {

struct ArrayDriver {
  PFN_cuArray3DCreate_v3020 cuArray3DCreate = nullptr;
  PFN_cuArrayDestroy_v2000 cuArrayDestroy = nullptr;
  PFN_cuMipmappedArrayCreate_v5000 cuMipmappedArrayCreate = nullptr;
  PFN_cuMipmappedArrayDestroy_v5000 cuMipmappedArrayDestroy = nullptr;
  PFN_cuMemHostRegister_v6050 cuMemHostRegister = nullptr;
  PFN_cuMemHostUnregister_v4000 cuMemHostUnregister = nullptr;
  bool ok = false;
};

template <class Pfn>
bool resolve(const Driver& d, const char* name, Pfn* out) {
  void* fn = nullptr;
  CUdriverProcAddressQueryResult status{};
  if (d.cuGetProcAddress_v2(name, &fn, kDriverApiVersion, CU_GET_PROC_ADDRESS_LEGACY_STREAM,
                            &status) != CUDA_SUCCESS)
    return false;
  *out = reinterpret_cast<Pfn>(fn);
  return fn != nullptr;
}

// Resolved at the first call that needs them (a driver without them: cudaErrorNotSupported).
const ArrayDriver& array_driver(const Driver& d) {
  static const ArrayDriver a = [&d] {
    ArrayDriver r;
    r.ok = resolve(d, "cuArray3DCreate", &r.cuArray3DCreate) &&
           resolve(d, "cuArrayDestroy", &r.cuArrayDestroy) &&
           resolve(d, "cuMipmappedArrayCreate", &r.cuMipmappedArrayCreate) &&
           resolve(d, "cuMipmappedArrayDestroy", &r.cuMipmappedArrayDestroy) &&
           resolve(d, "cuMemHostRegister", &r.cuMemHostRegister) &&
           resolve(d, "cuMemHostUnregister", &r.cuMemHostUnregister);
    return r;
  }();
  return a;
}

template <class Call>
cudaError_t with_arrays(Call call) {
  const Driver* d = nullptr;
  if (cudaError_t e = ready(&d)) return finish(e);
  const ArrayDriver& a = array_driver(*d);
  if (!a.ok) return finish(cudaErrorNotSupported);
  return call(a);
}

// The driver's format for a channel description (0: none).
CUarray_format format_of(const cudaChannelFormatDesc& c, unsigned* channels) {
  *channels = 1;
  const int k = c.f;
  if (k >= cudaChannelFormatKindSigned && k <= cudaChannelFormatKindFloat) {
    const int bits[4] = {c.x, c.y, c.z, c.w};
    unsigned n = 0;
    for (int b : bits)
      if (b != 0) {
        if (b != c.x) return static_cast<CUarray_format>(0);
        ++n;
      }
    if (n == 0 || n == 3) return static_cast<CUarray_format>(0);
    *channels = n;
    if (k == cudaChannelFormatKindFloat)
      return c.x == 16   ? CU_AD_FORMAT_HALF
             : c.x == 32 ? CU_AD_FORMAT_FLOAT
                         : static_cast<CUarray_format>(0);
    const bool s = k == cudaChannelFormatKindSigned;
    switch (c.x) {
      case 8:
        return s ? CU_AD_FORMAT_SIGNED_INT8 : CU_AD_FORMAT_UNSIGNED_INT8;
      case 16:
        return s ? CU_AD_FORMAT_SIGNED_INT16 : CU_AD_FORMAT_UNSIGNED_INT16;
      case 32:
        return s ? CU_AD_FORMAT_SIGNED_INT32 : CU_AD_FORMAT_UNSIGNED_INT32;
      default:
        return static_cast<CUarray_format>(0);
    }
  }
  if (k == cudaChannelFormatKindNV12) return CU_AD_FORMAT_NV12;
  if (k >= cudaChannelFormatKindUnsignedNormalized8X1 &&
      k <= cudaChannelFormatKindSignedNormalized16X4)
    return static_cast<CUarray_format>(CU_AD_FORMAT_UNORM_INT8X1 +
                                       (k - cudaChannelFormatKindUnsignedNormalized8X1));
  if (k >= cudaChannelFormatKindUnsignedBlockCompressed1 &&
      k <= cudaChannelFormatKindUnsignedBlockCompressed7SRGB)
    return static_cast<CUarray_format>(CU_AD_FORMAT_BC1_UNORM +
                                       (k - cudaChannelFormatKindUnsignedBlockCompressed1));
  if (k == cudaChannelFormatKindUnsignedNormalized1010102) return CU_AD_FORMAT_UNORM_INT_101010_2;
  return static_cast<CUarray_format>(0);
}

// The runtime's answer to a driver error of these calls: an unknown handle is an invalid value
// (cudaFreeArray's documented codes), the host-registration codes keep their meaning.
cudaError_t to_array_error(CUresult r) {
  switch (r) {
    case CUDA_ERROR_INVALID_HANDLE:
      return cudaErrorInvalidValue;
    case CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED:
      return cudaErrorHostMemoryAlreadyRegistered;
    case CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED:
      return cudaErrorHostMemoryNotRegistered;
    default:
      return to_runtime(r);
  }
}

// One create: the descriptor from the channel description, extent and flags.
template <class Create>
cudaError_t create(const cudaChannelFormatDesc* desc, cudaExtent extent, unsigned flags,
                   Create call) {
  if (desc == nullptr) return finish(cudaErrorInvalidValue);
  CUDA_ARRAY3D_DESCRIPTOR d{};
  d.Format = format_of(*desc, &d.NumChannels);
  if (d.Format == 0) return finish(cudaErrorInvalidValue);
  d.Width = extent.width;
  d.Height = extent.height;
  d.Depth = extent.depth;
  d.Flags = flags;  // cudaArray* flags have the values of CUDA_ARRAY3D_*
  return with_arrays([&](const ArrayDriver& a) { return finish(to_array_error(call(a, d))); });
}

}  // namespace
}  // namespace simcuda::rt

using namespace simcuda::rt;

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocArray(cudaArray_t* array,
                                                     const cudaChannelFormatDesc* desc,
                                                     size_t width, size_t height,
                                                     unsigned int flags) {
  if (array == nullptr || (flags & (cudaArrayLayered | cudaArrayCubemap)) != 0)
    return finish(cudaErrorInvalidValue);
  return create(desc, cudaExtent{width, height, 0}, flags,
                [&](const ArrayDriver& a, const CUDA_ARRAY3D_DESCRIPTOR& d) {
                  return a.cuArray3DCreate(reinterpret_cast<CUarray*>(array), &d);
                });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMalloc3DArray(cudaArray_t* array,
                                                       const cudaChannelFormatDesc* desc,
                                                       cudaExtent extent, unsigned int flags) {
  if (array == nullptr) return finish(cudaErrorInvalidValue);
  return create(desc, extent, flags, [&](const ArrayDriver& a, const CUDA_ARRAY3D_DESCRIPTOR& d) {
    return a.cuArray3DCreate(reinterpret_cast<CUarray*>(array), &d);
  });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaMallocMipmappedArray(cudaMipmappedArray_t* array,
                                                              const cudaChannelFormatDesc* desc,
                                                              cudaExtent extent,
                                                              unsigned int levels,
                                                              unsigned int flags) {
  if (array == nullptr) return finish(cudaErrorInvalidValue);
  return create(desc, extent, flags, [&](const ArrayDriver& a, const CUDA_ARRAY3D_DESCRIPTOR& d) {
    return a.cuMipmappedArrayCreate(reinterpret_cast<CUmipmappedArray*>(array), &d, levels);
  });
}

// A null array: no operation (CUDA Runtime API reference, cudaFreeArray).
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaFreeArray(cudaArray_t array) {
  if (array == nullptr) return cudaSuccess;
  return with_arrays([&](const ArrayDriver& a) {
    return finish(to_array_error(a.cuArrayDestroy(reinterpret_cast<CUarray>(array))));
  });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaFreeMipmappedArray(cudaMipmappedArray_t array) {
  if (array == nullptr) return cudaSuccess;
  return with_arrays([&](const ArrayDriver& a) {
    return finish(
        to_array_error(a.cuMipmappedArrayDestroy(reinterpret_cast<CUmipmappedArray>(array))));
  });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaHostRegister(void* ptr, size_t size, unsigned int flags) {
  return with_arrays([&](const ArrayDriver& a) {
    return finish(to_array_error(a.cuMemHostRegister(ptr, size, flags)));
  });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaHostUnregister(void* ptr) {
  return with_arrays(
      [&](const ArrayDriver& a) { return finish(to_array_error(a.cuMemHostUnregister(ptr))); });
}

// What channel_descriptor.h's templates and programs call to describe an array's texels.
SIMCUDA_EXPORT cudaChannelFormatDesc CUDARTAPI cudaCreateChannelDesc(int x, int y, int z, int w,
                                                                     cudaChannelFormatKind f) {
  return cudaChannelFormatDesc{x, y, z, w, f};
}
