/* NVTX's C API as a shared library (the NVTX_EXPORT_API mode of the toolkit's NVTX v3 headers), so
 * that a Python program can call NVTX through ctypes as it would libnvToolsExt.so. */
#define NVTX_EXPORT_API
#include <nvtx3/nvToolsExt.h>
