#include "cupti_api.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>

namespace gpumem::cupti {
namespace {

constexpr const char* kSoname = "libcupti.so.13";

// Folder of this shared library (for the carried .devbuild/lib/cupti/libcupti.so.13).
std::string own_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&load_cupti), &info) == 0 || info.dli_fname == nullptr)
    return {};
  std::string self = info.dli_fname;
  size_t slash = self.rfind('/');
  return slash == std::string::npos ? std::string() : self.substr(0, slash);
}

template <typename Fn>
bool bind(void* handle, const char* name, Fn* fn, std::string* missing) {
  *fn = reinterpret_cast<Fn>(dlsym(handle, name));
  if (*fn == nullptr) {
    if (!missing->empty()) *missing += ", ";
    *missing += name;
    return false;
  }
  return true;
}

}  // namespace

bool load_cupti(const char* override_path, CuptiApi* api, char* err, size_t errlen) {
  std::string tried;
  auto try_open = [&](const std::string& path) {
    if (api->handle != nullptr || path.empty()) return;
    api->handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (api->handle != nullptr) {
      std::snprintf(api->path, sizeof api->path, "%s", path.c_str());
    } else {
      if (!tried.empty()) tried += ", ";
      tried += path;
    }
  };
  if (override_path != nullptr && override_path[0] != '\0') {
    try_open(override_path);
    if (api->handle == nullptr) {
      std::snprintf(err, errlen,
                    "cannot load libcupti from GPUMEM_CUPTI_LIB=%s (%s); point GPUMEM_CUPTI_LIB at "
                    "libcupti.so.13 of CUDA 13 or unset it",
                    override_path, dlerror());
      return false;
    }
  } else {
    std::string dir = own_dir();
    if (!dir.empty()) try_open(dir + "/cupti/" + kSoname);
    try_open(kSoname);
#ifdef GPUMEM_CUDA_LIBDIR
    try_open(std::string(GPUMEM_CUDA_LIBDIR) + "/" + kSoname);
#endif
    for (const char* d : {"/usr/local/cuda/extras/CUPTI/lib64", "/usr/local/cuda/lib64",
                          "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/local/cuda/lib"})
      try_open(std::string(d) + "/" + kSoname);
    if (api->handle == nullptr) {
      std::snprintf(err, errlen,
                    "cannot load %s (tried %s); install the CUDA 13 toolkit's CUPTI or set "
                    "GPUMEM_CUPTI_LIB to its path",
                    kSoname, tried.c_str());
      return false;
    }
  }

  std::string missing;
  void* h = api->handle;
  bool ok = bind(h, "cuptiGetVersion", &api->GetVersion, &missing);
  ok &= bind(h, "cuptiGetResultString", &api->GetResultString, &missing);
  ok &= bind(h, "cuptiSubscribe", &api->Subscribe, &missing);
  ok &= bind(h, "cuptiUnsubscribe", &api->Unsubscribe, &missing);
  ok &= bind(h, "cuptiActivityRegisterCallbacks", &api->ActivityRegisterCallbacks, &missing);
  ok &= bind(h, "cuptiActivityEnable", &api->ActivityEnable, &missing);
  ok &= bind(h, "cuptiActivityDisable", &api->ActivityDisable, &missing);
  ok &= bind(h, "cuptiActivityGetNextRecord", &api->ActivityGetNextRecord, &missing);
  ok &= bind(h, "cuptiActivityGetNumDroppedRecords", &api->ActivityGetNumDroppedRecords, &missing);
  ok &= bind(h, "cuptiActivityFlushAll", &api->ActivityFlushAll, &missing);
  ok &= bind(h, "cuptiGetTimestamp", &api->GetTimestamp, &missing);
  // Optional: without it, timestamps are shifted onto CLOCK_MONOTONIC by a measured offset.
  api->ActivityRegisterTimestampCallback =
      reinterpret_cast<decltype(api->ActivityRegisterTimestampCallback)>(
          dlsym(h, "cuptiActivityRegisterTimestampCallback"));
  if (!ok) {
    std::snprintf(err, errlen,
                  "%s lacks %s; it is not CUPTI 13: set GPUMEM_CUPTI_LIB to the libcupti.so.13 of "
                  "the CUDA 13 toolkit",
                  api->path, missing.c_str());
    dlclose(api->handle);
    api->handle = nullptr;
    return false;
  }
  return true;
}

const char* result_name(const CuptiApi& api, CUptiResult result) {
  const char* s = nullptr;
  if (api.GetResultString != nullptr && api.GetResultString(result, &s) == CUPTI_SUCCESS &&
      s != nullptr)
    return s;
  return "unknown CUPTI result";
}

const char* unavailable_advice(CUptiResult result) {
  switch (result) {
    case CUPTI_ERROR_UNKNOWN:
      return "no usable NVIDIA driver or GPU here; run on a machine with an NVIDIA GPU and driver, "
             "or capture with the preload library instead (gpumem run without --capture cupti)";
    case CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED:
      return "another profiler already holds CUPTI (Nsight Systems, Nsight Compute, "
             "compute-sanitizer, or the framework's own profiler such as Kineto); stop it, or "
             "capture with the preload library instead (gpumem run without --capture cupti)";
    case CUPTI_ERROR_NOT_INITIALIZED:
      return "the NVIDIA driver is older than this libcupti; update the driver or set "
             "GPUMEM_CUPTI_LIB to a libcupti no newer than the driver supports";
    case CUPTI_ERROR_NOT_COMPATIBLE:
      return "another CUPTI client in this process uses CUPTI in an incompatible way; run without "
             "the other profiler, or capture with the preload library instead";
    case CUPTI_ERROR_INSUFFICIENT_PRIVILEGES:
    case CUPTI_ERROR_VIRTUALIZED_DEVICE_INSUFFICIENT_PRIVILEGES:
      return "this user may not profile the GPU; ask the administrator to allow profiling "
             "(NVreg_RestrictProfilingToAdminUsers=0) or capture with the preload library instead";
    default:
      return "capture with the preload library instead (gpumem run without --capture cupti)";
  }
}

}  // namespace gpumem::cupti
