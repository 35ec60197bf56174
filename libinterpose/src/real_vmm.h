// The expandable pool's virtual memory calls (resources::VmmUpstream) over the real driver entry
// points (real.h), whatever API family the program uses: cuMemAddressReserve, cuMemCreate
// (pinned device memory), cuMemMap, cuMemSetAccess (read/write for the device), cuMemUnmap,
// cuMemRelease, cuMemAddressFree, cuMemGetAllocationGranularity. The pool's own calls bypass the
// VMM hooks, so they are neither recorded nor charged twice: the pool charges them (the limit)
// and records its mapped granules as segments.
#pragma once

#include "gpumem/resources/vmm_upstream.h"

namespace gpumem::policy {

// Built once, never destroyed (hooks may run during static destruction).
resources::VmmUpstream& real_vmm();

}  // namespace gpumem::policy
