// cudaGetDriverEntryPoint[ByVersion]: answered by the driver's cuGetProcAddress_v2, the same
// resolver (found with dlsym at initialisation) that the runtime uses for itself.
#include "driver.h"

using namespace simcuda::rt;

namespace {

cudaError_t entry_point(const char* symbol, void** fn, unsigned int version,
                        unsigned long long flags, cudaDriverEntryPointQueryResult* status) {
  const Driver* d = nullptr;
  if (symbol == nullptr || fn == nullptr) return cudaErrorInvalidValue;
  if (flags > (cudaEnableLegacyStream | cudaEnablePerThreadDefaultStream))
    return cudaErrorInvalidValue;
  if (cudaError_t e = driver(&d)) return e;
  CUdriverProcAddressQueryResult found = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
  // cudaEnable* flags have the values of CU_GET_PROC_ADDRESS_*.
  CUresult r = d->cuGetProcAddress_v2(symbol, fn, static_cast<int>(version), flags, &found);
  if (r != CUDA_SUCCESS) *fn = nullptr;  // not found: success with a null pointer, as in CUDA
  if (status) *status = static_cast<cudaDriverEntryPointQueryResult>(found);
  return (r == CUDA_SUCCESS || r == CUDA_ERROR_NOT_FOUND) ? cudaSuccess : to_runtime(r);
}

}  // namespace

SIMCUDA_EXPORT cudaError_t CUDARTAPI
cudaGetDriverEntryPoint(const char* symbol, void** fn, unsigned long long flags,
                        cudaDriverEntryPointQueryResult* status) {
  return finish(entry_point(symbol, fn, CUDART_VERSION, flags, status));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI
cudaGetDriverEntryPoint_ptsz(const char* symbol, void** fn, unsigned long long flags,
                             cudaDriverEntryPointQueryResult* status) {
  if (flags == cudaEnableDefault) flags = cudaEnablePerThreadDefaultStream;
  return finish(entry_point(symbol, fn, CUDART_VERSION, flags, status));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaGetDriverEntryPointByVersion(
    const char* symbol, void** fn, unsigned int version, unsigned long long flags,
    cudaDriverEntryPointQueryResult* status) {
  return finish(entry_point(symbol, fn, version, flags, status));
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaGetDriverEntryPointByVersion_ptsz(
    const char* symbol, void** fn, unsigned int version, unsigned long long flags,
    cudaDriverEntryPointQueryResult* status) {
  if (flags == cudaEnableDefault) flags = cudaEnablePerThreadDefaultStream;
  return finish(entry_point(symbol, fn, version, flags, status));
}
