// VMM memory shared between two processes through a POSIX file descriptor
// (cuMemExportToShareableHandle / cuMemImportFromShareableHandle), run by nvml_ipc_test on
// simcuda with and without LD_PRELOAD=libgpumem.so. One "name value..." line per answer; exit
// status 0 = every call returned what it should, anything else names the failed call on stderr.
//
//   shareable_prog export PATH [CAP]  creates 48 MiB (POSIX fd requested), fills it with 0x5a,
//                                     exports it, imports its own fd back, then runs
//                                     `shareable_prog import PATH 10` with the fd as descriptor
//                                     10 (and GPUMEM_LIMIT=CAP), holding the memory meanwhile
//   PATH: driver (by symbol), driver_dlsym, driver_resolver (cuGetProcAddress)
#include <cuda.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "expect_code.h"

namespace {

int g_failures = 0;
const char* const kProgram = "shareable_prog";


// The answer to a misuse, printed rather than checked: simcuda's codes are asserted by the test,
// and on a real driver (scripts/gpu-check) they are reported as found.
void say(const char* name, CUresult e) {
  std::printf("%s %d\n", name, static_cast<int>(e));
}

constexpr size_t kMiB = 1 << 20;
constexpr size_t kShared = 48 * kMiB;
constexpr int kChildFd = 10;
constexpr auto kFd = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;

void* os_handle(int fd) {
  return reinterpret_cast<void*>(static_cast<intptr_t>(fd));
}

CUmemAllocationProp device_prop(CUmemAllocationHandleType types) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  prop.requestedHandleTypes = types;
  return prop;
}

// Maps `handle` (kShared bytes) at a new reservation, read/write for device 0; returns the address.
CUdeviceptr map(CUmemGenericAllocationHandle handle) {
  CUdeviceptr va = 0;
  EXPECT_CODE(cuMemAddressReserve(&va, kShared, 0, 0, 0), CUDA_SUCCESS);
  EXPECT_CODE(cuMemMap(va, kShared, 0, handle, 0), CUDA_SUCCESS);
  CUmemAccessDesc access{};
  access.location = device_prop(CU_MEM_HANDLE_TYPE_NONE).location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  EXPECT_CODE(cuMemSetAccess(va, kShared, &access, 1), CUDA_SUCCESS);
  return va;
}

void unmap(CUdeviceptr va) {
  EXPECT_CODE(cuMemUnmap(va, kShared), CUDA_SUCCESS);
  EXPECT_CODE(cuMemAddressFree(va, kShared), CUDA_SUCCESS);
}

CUcontext init() {
  EXPECT_CODE(cuInit(0), CUDA_SUCCESS);
  CUcontext ctx = nullptr;
  EXPECT_CODE(cuDevicePrimaryCtxRetain(&ctx, 0), CUDA_SUCCESS);
  EXPECT_CODE(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
  return ctx;
}

using Import = CUresult (*)(CUmemGenericAllocationHandle*, void*, CUmemAllocationHandleType);

Import import_function(const std::string& path) {
  Import import = &cuMemImportFromShareableHandle;
  if (path == "driver_dlsym") {
    void* lib = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    import = reinterpret_cast<Import>(dlsym(lib, "cuMemImportFromShareableHandle"));
  } else if (path == "driver_resolver") {
    CUdriverProcAddressQueryResult st{};
    EXPECT_CODE(cuGetProcAddress("cuMemImportFromShareableHandle",
                                 reinterpret_cast<void**>(&import), 13000, 0, &st),
                CUDA_SUCCESS);
  }
  return import;
}

int run_importer(const char* self, const std::string& path, int fd, const char* cap) {
  std::fflush(stdout);
  if (cap != nullptr) setenv("GPUMEM_LIMIT", cap, 1);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd, kChildFd);  // dup2 clears close-on-exec
  const std::string child_fd = std::to_string(kChildFd);
  const char* args[] = {self, "import", path.c_str(), child_fd.c_str(), nullptr};
  pid_t child = -1;
  const int spawned = posix_spawn(&child, self, &fa, nullptr, const_cast<char**>(args), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (spawned != 0) return 4;
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 5;
}

// The exporter: its allocation is the one that counts; its own fd imported back is that same
// allocation (one more reference), never a second one.
int exporter(const char* self, const std::string& path, const char* cap) {
  init();
  CUmemGenericAllocationHandle h = 0, plain = 0;
  CUmemAllocationProp prop = device_prop(kFd);
  EXPECT_CODE(cuMemCreate(&h, kShared, &prop, 0), CUDA_SUCCESS);
  const CUdeviceptr va = map(h);
  EXPECT_CODE(cuMemsetD8(va, 0x5a, kShared), CUDA_SUCCESS);
  int fd = -1;
  EXPECT_CODE(cuMemExportToShareableHandle(&fd, h, kFd, 0), CUDA_SUCCESS);
  // An allocation created without the fd type cannot be exported as one.
  CUmemAllocationProp no_export = device_prop(CU_MEM_HANDLE_TYPE_NONE);
  EXPECT_CODE(cuMemCreate(&plain, 2 * kMiB, &no_export, 0), CUDA_SUCCESS);
  int bad = -1;
  say("export_not_exportable", cuMemExportToShareableHandle(&bad, plain, kFd, 0));
  EXPECT_CODE(cuMemRelease(plain), CUDA_SUCCESS);
  // Its own fd, imported back: the same memory, one more reference.
  CUmemGenericAllocationHandle own = 0;
  EXPECT_CODE(cuMemImportFromShareableHandle(&own, os_handle(fd), kFd), CUDA_SUCCESS);
  EXPECT_CODE(cuMemRelease(own), CUDA_SUCCESS);
  if (g_failures != 0) return g_failures;
  const int child = run_importer(self, path, fd, cap);
  close(fd);
  unmap(va);
  EXPECT_CODE(cuMemRelease(h), CUDA_SUCCESS);
  return child != 0 ? child : g_failures;
}

// The importer: 8 MiB of its own, the exporter's 48 MiB imported and mapped (it reads the
// exporter's bytes), what cuMemGetInfo says meanwhile, released while mapped then unmapped; bad
// handles; imported again, mapped, unmapped then released; and an import never mapped.
int importer(const std::string& path, int fd) {
  init();
  const Import import = import_function(path);
  CUdeviceptr mine = 0;
  EXPECT_CODE(cuMemAlloc(&mine, 8 * kMiB), CUDA_SUCCESS);
  CUmemGenericAllocationHandle h = 0;
  EXPECT_CODE(import(&h, os_handle(fd), kFd), CUDA_SUCCESS);
  const CUdeviceptr va = map(h);
  unsigned char byte = 0;
  EXPECT_CODE(cuMemcpy(reinterpret_cast<CUdeviceptr>(&byte), va + kShared - 1, 1), CUDA_SUCCESS);
  std::printf("imported_byte %u\n", byte);
  size_t f = 0, t = 0;
  EXPECT_CODE(cuMemGetInfo(&f, &t), CUDA_SUCCESS);
  std::printf("importer_driver %zu %zu\n", f, t);
  EXPECT_CODE(cuMemRelease(h), CUDA_SUCCESS);  // still mapped: the memory stays
  unmap(va);                                   // the last of it: the import ends here
  // What is not an exported allocation, and a type simcuda (and Linux) cannot import.
  CUmemGenericAllocationHandle bad = 0;
  say("import_fd_minus_1", import(&bad, os_handle(-1), kFd));
  const int dev_null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  say("import_dev_null", import(&bad, os_handle(dev_null), kFd));
  close(dev_null);
  say("import_win32", import(&bad, os_handle(fd), CU_MEM_HANDLE_TYPE_WIN32));
  say("import_null_out", import(nullptr, os_handle(fd), kFd));
  // Imported again, mapped, unmapped while the handle holds it: the release ends it.
  EXPECT_CODE(import(&h, os_handle(fd), kFd), CUDA_SUCCESS);
  const CUdeviceptr va2 = map(h);
  unmap(va2);
  EXPECT_CODE(cuMemRelease(h), CUDA_SUCCESS);
  // Imported a third time and released unmapped: no memory of it ever appeared here.
  EXPECT_CODE(import(&h, os_handle(fd), kFd), CUDA_SUCCESS);
  EXPECT_CODE(cuMemRelease(h), CUDA_SUCCESS);
  EXPECT_CODE(cuMemFree(mine), CUDA_SUCCESS);
  return g_failures;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "export" && (argc == 3 || argc == 4))
    return exporter(argv[0], argv[2], argc == 4 ? argv[3] : nullptr);
  if (cmd == "import" && argc == 4) return importer(argv[2], std::atoi(argv[3]));
  std::fprintf(stderr, "usage: shareable_prog export driver|driver_dlsym|driver_resolver [CAP]\n");
  return 2;
}
