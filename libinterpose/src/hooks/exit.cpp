// _exit and _Exit: a forked worker's normal end (multiprocessing, DataLoader workers, a C
// program's child after its work) skips atexit, so without this its trace would stay unclosed and
// read as "process killed or crashed?". The trace is closed first (session.h), then glibc's own
// function runs. glibc's internal exits (exec failure in posix_spawn) do not come through here.
// No libc header that declares these two is included: the definitions are ours.
#include <dlfcn.h>

#include "hooks/wrapped.h"
#include "real.h"
#include "session.h"

namespace {

using ExitFn = void (*)(int);

[[noreturn]] void exit_through(const char* name, int status) {
  gpumem::session::shutdown_at_exit_call();
  auto real = reinterpret_cast<ExitFn>(gpumem::real_dlsym(RTLD_NEXT, name));
  if (real != nullptr) real(status);
  __builtin_trap();  // glibc always has both
}

}  // namespace

GPUMEM_EXPORT void _exit(int status) {  // noreturn, as glibc declares it
  exit_through("_exit", status);
}
GPUMEM_EXPORT void _Exit(int status) {  // noreturn, as glibc declares it
  exit_through("_Exit", status);
}
