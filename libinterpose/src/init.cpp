// Library load: resolve glibc's dlsym, read the configuration (exit 2 on a bad value), install
// the fork and exit handlers. Nothing here touches CUDA or creates the trace file.
#include "real.h"
#include "session.h"

namespace {
__attribute__((constructor(101))) void gpumem_on_load() {
  gpumem::resolve_real_dlsym_now();
  gpumem::session::init();
}
}  // namespace

namespace gpumem {
thread_local int t_hook_depth __attribute__((tls_model("initial-exec"))) = 0;
}
