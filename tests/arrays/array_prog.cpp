// Creates CUDA arrays (1D, 2D, 3D, layered, mipmapped) and registers host memory through one
// lookup path per subcommand, printing each call's code as "name code" lines for arrays_test:
//   runtime | runtime-dlsym              cudaMallocArray & co., bound directly or through dlsym
//   driver | driver-dlsym | resolver | entry-point
//                                        cuArrayCreate_v2 & co.: bound directly, dlopen + dlsym,
//                                        cuGetProcAddress_v2, cudaGetDriverEntryPointByVersion
//   cap-runtime | cap-driver             4 MiB arrays until refused (run under an 8 MiB cap),
//                                        capacity queries between, and 64 MiB registered
//   levels-runtime | levels-driver       mipmapped arrays whose level count CUDA clamps: a
//                                        layered one with too many levels, then 1024 x 1024
//                                        floats with 0 levels (one 4 MiB level) and with 100
//                                        (its 11), each destroyed when created
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct DriverCalls {
  CUresult (*array_create)(CUarray*, const CUDA_ARRAY_DESCRIPTOR*);
  CUresult (*array3d_create)(CUarray*, const CUDA_ARRAY3D_DESCRIPTOR*);
  CUresult (*mipmapped_create)(CUmipmappedArray*, const CUDA_ARRAY3D_DESCRIPTOR*, unsigned);
  CUresult (*array_destroy)(CUarray);
  CUresult (*mipmapped_destroy)(CUmipmappedArray);
  CUresult (*host_register)(void*, size_t, unsigned);
  CUresult (*host_unregister)(void*);
};

struct RuntimeCalls {
  cudaError_t (*malloc_array)(cudaArray_t*, const cudaChannelFormatDesc*, size_t, size_t, unsigned);
  cudaError_t (*malloc_3d_array)(cudaArray_t*, const cudaChannelFormatDesc*, cudaExtent, unsigned);
  cudaError_t (*malloc_mipmapped)(cudaMipmappedArray_t*, const cudaChannelFormatDesc*, cudaExtent,
                                  unsigned, unsigned);
  cudaError_t (*free_array)(cudaArray_t);
  cudaError_t (*free_mipmapped)(cudaMipmappedArray_t);
  cudaError_t (*host_register)(void*, size_t, unsigned);
  cudaError_t (*host_unregister)(void*);
};

void say(const char* name, int code) {
  std::printf("%s %d\n", name, code);
}

template <class T>
void resolve(T* out, void* handle, const char* name) {
  *out = reinterpret_cast<T>(dlsym(handle, name));
  if (*out == nullptr) {
    std::fprintf(stderr, "array_prog: dlsym(%s) failed\n", name);
    std::exit(3);
  }
}

CUDA_ARRAY3D_DESCRIPTOR desc3d(size_t w, size_t h, size_t d, CUarray_format f, unsigned ch,
                               unsigned flags = 0) {
  CUDA_ARRAY3D_DESCRIPTOR a{};
  a.Width = w;
  a.Height = h;
  a.Depth = d;
  a.Format = f;
  a.NumChannels = ch;
  a.Flags = flags;
  return a;
}

// The registration sequence: register, register again (already registered), unregister,
// unregister again (not registered), a flag CUDA does not define (invalid value).
template <class Register, class Unregister>
void host_sequence(Register reg, Unregister unreg) {
  static char buffer[1 << 20] __attribute__((aligned(4096)));
  say("register", reg(buffer, sizeof buffer, 0));
  say("register_again", reg(buffer + 4096, 4096, 0));
  say("unregister", unreg(buffer));
  say("unregister_again", unreg(buffer));
  say("register_bad_flags", reg(buffer, sizeof buffer, 0x100));
}

// Five arrays, 1664244 bytes together by the size formula, all live at once, then destroyed.
void driver_sequence(const DriverCalls& c) {
  CUarray a1 = nullptr, a2 = nullptr, a3 = nullptr, a4 = nullptr;
  CUmipmappedArray m = nullptr;
  const CUDA_ARRAY_DESCRIPTOR d1{1000, 0, CU_AD_FORMAT_FLOAT, 1};                    // 4000
  const CUDA_ARRAY_DESCRIPTOR d2{512, 256, CU_AD_FORMAT_UNSIGNED_INT8, 4};           // 524288
  const auto d3 = desc3d(64, 64, 16, CU_AD_FORMAT_FLOAT, 2);                         // 524288
  const auto d4 = desc3d(128, 128, 4, CU_AD_FORMAT_FLOAT, 1, CUDA_ARRAY3D_LAYERED);  // 262144
  const auto d5 = desc3d(256, 256, 0, CU_AD_FORMAT_FLOAT, 1);  // 9 levels: 349524
  say("array_1d", c.array_create(&a1, &d1));
  say("array_2d", c.array_create(&a2, &d2));
  say("array_3d", c.array3d_create(&a3, &d3));
  say("array_layered", c.array3d_create(&a4, &d4));
  say("mipmapped", c.mipmapped_create(&m, &d5, 9));
  say("destroy_1d", c.array_destroy(a1));
  say("destroy_2d", c.array_destroy(a2));
  say("destroy_3d", c.array_destroy(a3));
  say("destroy_layered", c.array_destroy(a4));
  say("destroy_mipmapped", c.mipmapped_destroy(m));
  say("destroy_again", c.array_destroy(a1));
  host_sequence(c.host_register, c.host_unregister);
}

void runtime_sequence(const RuntimeCalls& c) {
  cudaArray_t a1 = nullptr, a2 = nullptr, a3 = nullptr, a4 = nullptr;
  cudaMipmappedArray_t m = nullptr;
  const cudaChannelFormatDesc f1{32, 0, 0, 0, cudaChannelFormatKindFloat};
  const cudaChannelFormatDesc u4{8, 8, 8, 8, cudaChannelFormatKindUnsigned};
  const cudaChannelFormatDesc f2{32, 32, 0, 0, cudaChannelFormatKindFloat};
  say("array_1d", c.malloc_array(&a1, &f1, 1000, 0, 0));
  say("array_2d", c.malloc_array(&a2, &u4, 512, 256, 0));
  say("array_3d", c.malloc_3d_array(&a3, &f2, cudaExtent{64, 64, 16}, 0));
  say("array_layered", c.malloc_3d_array(&a4, &f1, cudaExtent{128, 128, 4}, cudaArrayLayered));
  say("mipmapped", c.malloc_mipmapped(&m, &f1, cudaExtent{256, 256, 0}, 9, 0));
  say("destroy_1d", c.free_array(a1));
  say("destroy_2d", c.free_array(a2));
  say("destroy_3d", c.free_array(a3));
  say("destroy_layered", c.free_array(a4));
  say("destroy_mipmapped", c.free_mipmapped(m));
  say("destroy_again", c.free_array(a1));
  host_sequence(c.host_register, c.host_unregister);
}

DriverCalls linked_driver() {
  return {cuArrayCreate,           cuArray3DCreate,   cuMipmappedArrayCreate, cuArrayDestroy,
          cuMipmappedArrayDestroy, cuMemHostRegister, cuMemHostUnregister};
}

DriverCalls dlsym_driver() {
  void* h = dlopen("libcuda.so.1", RTLD_NOW);
  if (h == nullptr) std::exit(3);
  DriverCalls c{};
  resolve(&c.array_create, h, "cuArrayCreate_v2");
  resolve(&c.array3d_create, h, "cuArray3DCreate_v2");
  resolve(&c.mipmapped_create, h, "cuMipmappedArrayCreate");
  resolve(&c.array_destroy, h, "cuArrayDestroy");
  resolve(&c.mipmapped_destroy, h, "cuMipmappedArrayDestroy");
  resolve(&c.host_register, h, "cuMemHostRegister_v2");
  resolve(&c.host_unregister, h, "cuMemHostUnregister");
  return c;
}

// Through the driver's resolver, or the runtime's (entry_point), by base name.
DriverCalls resolved_driver(bool entry_point) {
  DriverCalls c{};
  auto get = [entry_point](const char* name, auto* out) {
    void* fn = nullptr;
    int r;
    if (entry_point) {
      cudaDriverEntryPointQueryResult q{};
      r = cudaGetDriverEntryPointByVersion(name, &fn, 13000, cudaEnableDefault, &q);
    } else {
      CUdriverProcAddressQueryResult q{};
      r = cuGetProcAddress(name, &fn, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &q);
    }
    if (r != 0 || fn == nullptr) {
      std::fprintf(stderr, "array_prog: no entry point %s (%d)\n", name, r);
      std::exit(3);
    }
    *out = reinterpret_cast<std::remove_reference_t<decltype(*out)>>(fn);
  };
  get("cuArrayCreate", &c.array_create);
  get("cuArray3DCreate", &c.array3d_create);
  get("cuMipmappedArrayCreate", &c.mipmapped_create);
  get("cuArrayDestroy", &c.array_destroy);
  get("cuMipmappedArrayDestroy", &c.mipmapped_destroy);
  get("cuMemHostRegister", &c.host_register);
  get("cuMemHostUnregister", &c.host_unregister);
  return c;
}

RuntimeCalls linked_runtime() {
  return {cudaMallocArray,        cudaMalloc3DArray, cudaMallocMipmappedArray, cudaFreeArray,
          cudaFreeMipmappedArray, cudaHostRegister,  cudaHostUnregister};
}

RuntimeCalls dlsym_runtime() {
  void* h = dlopen("libcudart.so.13", RTLD_NOW);
  if (h == nullptr) std::exit(3);
  RuntimeCalls c{};
  resolve(&c.malloc_array, h, "cudaMallocArray");
  resolve(&c.malloc_3d_array, h, "cudaMalloc3DArray");
  resolve(&c.malloc_mipmapped, h, "cudaMallocMipmappedArray");
  resolve(&c.free_array, h, "cudaFreeArray");
  resolve(&c.free_mipmapped, h, "cudaFreeMipmappedArray");
  resolve(&c.host_register, h, "cudaHostRegister");
  resolve(&c.host_unregister, h, "cudaHostUnregister");
  return c;
}

// The driver needs a current context; the runtime makes its own.
void driver_context() {
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  if (cuInit(0) != CUDA_SUCCESS || cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
      cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS || cuCtxSetCurrent(ctx) != CUDA_SUCCESS)
    std::exit(3);
}

// Free memory as the runtime and the driver report it.
void capacity(const char* when) {
  size_t rf = 0, rt = 0, df = 0, dt = 0;
  cudaMemGetInfo(&rf, &rt);
  cuMemGetInfo(&df, &dt);
  std::printf("%s %zu %zu %zu %zu\n", when, rf, rt, df, dt);
}

// 4 MiB arrays (1024 x 1024 floats) until one is refused; 64 MiB registered at the end.
void cap_sequence(bool runtime) {
  if (!runtime) driver_context();
  const cudaChannelFormatDesc f1{32, 0, 0, 0, cudaChannelFormatKindFloat};
  const auto d = desc3d(1024, 1024, 0, CU_AD_FORMAT_FLOAT, 1);
  capacity("capacity_before");
  for (int i = 0; i < 4; ++i) {
    int code;
    if (runtime) {
      cudaArray_t a = nullptr;
      code = cudaMallocArray(&a, &f1, 1024, 1024, 0);
    } else {
      CUarray a = nullptr;
      code = cuArray3DCreate(&a, &d);
    }
    say(("array_" + std::to_string(i)).c_str(), code);
    capacity(("capacity_" + std::to_string(i)).c_str());
  }
  if (runtime) {
    cudaMipmappedArray_t m = nullptr;
    say("mipmapped_over_cap", cudaMallocMipmappedArray(&m, &f1, cudaExtent{1024, 1024, 0}, 2, 0));
  } else {
    CUmipmappedArray m = nullptr;
    say("mipmapped_over_cap", cuMipmappedArrayCreate(&m, &d, 2));
  }
  const size_t n = 64 << 20;
  void* big = std::aligned_alloc(4096, n);
  say("register_64mib", runtime ? static_cast<int>(cudaHostRegister(big, n, 0))
                                : static_cast<int>(cuMemHostRegister(big, n, 0)));
  capacity("capacity_registered");
  say("unregister_64mib", runtime ? static_cast<int>(cudaHostUnregister(big))
                                  : static_cast<int>(cuMemHostUnregister(big)));
  std::free(big);
}

// Level counts outside [1, 1 + floor(log2(max extent))], which CUDA clamps into it
// (cuMipmappedArrayCreate, cudaMallocMipmappedArray): a 64 x 64 float array of 4 layers with 100
// levels (its 7, 87376 bytes), then 1024 x 1024 floats with 0 levels (1, 4 MiB) and 100 levels
// (11, 5592404 bytes). Each is destroyed as soon as it is made, so they never add up.
void levels_sequence(bool runtime) {
  if (!runtime) driver_context();
  const cudaChannelFormatDesc f1{32, 0, 0, 0, cudaChannelFormatKindFloat};
  struct Case {
    const char* name;
    size_t w, h, d;
    unsigned levels, flags;
  };
  const Case cases[] = {{"levels_layered_over", 64, 64, 4, 100, cudaArrayLayered},
                        {"levels_0", 1024, 1024, 0, 0, 0},
                        {"levels_over", 1024, 1024, 0, 100, 0}};
  for (const Case& c : cases) {
    if (runtime) {
      cudaMipmappedArray_t m = nullptr;
      const cudaError_t r =
          cudaMallocMipmappedArray(&m, &f1, cudaExtent{c.w, c.h, c.d}, c.levels, c.flags);
      say(c.name, r);
      if (r == cudaSuccess) cudaFreeMipmappedArray(m);
    } else {
      CUmipmappedArray m = nullptr;
      const auto d = desc3d(c.w, c.h, c.d, CU_AD_FORMAT_FLOAT, 1, c.flags);
      const CUresult r = cuMipmappedArrayCreate(&m, &d, c.levels);
      say(c.name, r);
      if (r == CUDA_SUCCESS) cuMipmappedArrayDestroy(m);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "";
  if (what == "runtime") {
    runtime_sequence(linked_runtime());
  } else if (what == "runtime-dlsym") {
    runtime_sequence(dlsym_runtime());
  } else if (what == "driver") {
    driver_context();
    driver_sequence(linked_driver());
  } else if (what == "driver-dlsym") {
    driver_context();
    driver_sequence(dlsym_driver());
  } else if (what == "resolver" || what == "entry-point") {
    driver_context();
    driver_sequence(resolved_driver(what == "entry-point"));
  } else if (what == "cap-runtime" || what == "cap-driver") {
    cap_sequence(what == "cap-runtime");
  } else if (what == "levels-runtime" || what == "levels-driver") {
    levels_sequence(what == "levels-runtime");
  } else {
    std::fprintf(stderr,
                 "usage: array_prog runtime|runtime-dlsym|driver|driver-dlsym|resolver|"
                 "entry-point|cap-runtime|cap-driver|levels-runtime|levels-driver\n");
    return 2;
  }
  return 0;
}
