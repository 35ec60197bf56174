// Shareable VMM handles (cuMemExportToShareableHandle, cuMemImportFromShareableHandle): what the
// VMM calls need to know (docs/simcuda.md, "Shareable VMM handles").
#pragma once

#include <string>

namespace simcuda {

// The name of a cuMemCreate memfd on `device`: an importer reads the device back from it.
std::string vmm_memfd_name(int device);

}  // namespace simcuda
