// Shareable VMM handles of type CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR. A cuMemCreate handle is
// a memfd (vmm.cpp), so exporting it hands out a duplicate of that fd, which the program passes
// to another process (a unix socket, pidfd_getfd, inheritance); importing it there makes a new
// handle over the same memfd, so both processes map the same bytes. The importer is charged
// nothing: the exporter's cuMemCreate is charged, as on a GPU, where the memory exists once (and
// on a SIMCUDA_SHARED device, until the exporter releases it: an import kept longer holds memory
// no process is charged for). A process importing an fd of its own handle, or an fd it already
// imported, gets that handle back with one more reference.
#include "shareable.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "state.h"

using namespace simcuda;

namespace {

constexpr char kNamePrefix[] = "/memfd:simcuda-vmm-d";

// The device of a simcuda cuMemCreate memfd, or -1 when fd is none (closed, another file).
int device_of_memfd(int fd) {
  char link[64], target[128];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return -1;
  target[n] = '\0';
  if (std::strncmp(target, kNamePrefix, sizeof kNamePrefix - 1) != 0) return -1;
  char* end = nullptr;
  const long device = std::strtol(target + sizeof kNamePrefix - 1, &end, 10);
  if (end == target + sizeof kNamePrefix - 1 || device < 0 || device > 4096) return -1;
  return static_cast<int>(device);
}

bool same_file(const struct stat& a, int fd) {
  struct stat b {};
  return fstat(fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

namespace simcuda {

std::string vmm_memfd_name(int device) {
  return "simcuda-vmm-d" + std::to_string(device);
}

}  // namespace simcuda

SIMCUDA_EXPORT CUresult CUDAAPI cuMemExportToShareableHandle(void* shareable,
                                                             CUmemGenericAllocationHandle handle,
                                                             CUmemAllocationHandleType type,
                                                             unsigned long long flags) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (!config().vmm) return CUDA_ERROR_NOT_SUPPORTED;
  if (shareable == nullptr || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  // Win32 handles do not exist on Linux; fabric handles need IMEX, which simcuda does not model.
  if (type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) return CUDA_ERROR_NOT_SUPPORTED;
  auto* h = reinterpret_cast<PhysicalAllocation*>(handle);
  std::lock_guard lock(state().mu);
  if (state().handles.count(h) == 0 || h->references == 0) return CUDA_ERROR_INVALID_VALUE;
  // An allocation is exportable only as the handle types cuMemCreate was asked for.
  if (!h->exportable && !h->imported) return CUDA_ERROR_INVALID_VALUE;
  const int fd = fcntl(h->fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return CUDA_ERROR_OPERATING_SYSTEM;
  *static_cast<int*>(shareable) = fd;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuMemImportFromShareableHandle(CUmemGenericAllocationHandle* handle,
                                                               void* os_handle,
                                                               CUmemAllocationHandleType type) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (!config().vmm) return CUDA_ERROR_NOT_SUPPORTED;
  if (handle == nullptr) return CUDA_ERROR_INVALID_VALUE;
  if (type == CU_MEM_HANDLE_TYPE_WIN32 || type == CU_MEM_HANDLE_TYPE_WIN32_KMT ||
      type == CU_MEM_HANDLE_TYPE_FABRIC)
    return CUDA_ERROR_NOT_SUPPORTED;
  if (type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR) return CUDA_ERROR_INVALID_VALUE;
  // The fd travels in the pointer-sized argument, as CUDA's samples pass it.
  const intptr_t value = reinterpret_cast<intptr_t>(os_handle);
  if (value < 0 || value > INT32_MAX) return CUDA_ERROR_INVALID_VALUE;
  const int fd = static_cast<int>(value);
  struct stat st {};
  if (fstat(fd, &st) != 0) return CUDA_ERROR_INVALID_VALUE;  // not an open descriptor
  const int device = device_of_memfd(fd);
  if (device < 0 || st.st_size <= 0) return CUDA_ERROR_INVALID_VALUE;  // not exported memory
  if (!valid_device(device)) return CUDA_ERROR_NOT_SUPPORTED;  // a device this process lacks
  {
    std::lock_guard lock(state().mu);
    for (PhysicalAllocation* h : state().handles)
      if (h->references > 0 && same_file(st, h->fd)) {
        ++h->references;
        *handle = reinterpret_cast<CUmemGenericAllocationHandle>(h);
        return CUDA_SUCCESS;
      }
  }
  const int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);  // the caller may close its fd after importing
  if (own < 0) return CUDA_ERROR_OPERATING_SYSTEM;
  auto* h = new PhysicalAllocation{device, static_cast<uint64_t>(st.st_size), own, 1, 0};
  h->imported = true;
  std::lock_guard lock(state().mu);
  state().handles.insert(h);
  *handle = reinterpret_cast<CUmemGenericAllocationHandle>(h);
  return CUDA_SUCCESS;
}
