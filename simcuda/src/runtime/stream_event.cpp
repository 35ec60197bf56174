// Runtime streams and events: driver streams and events under their runtime names.
#include "driver.h"

using namespace simcuda::rt;

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaStreamCreateWithFlags(cudaStream_t* stream,
                                                               unsigned int flags) {
  if (stream == nullptr) return finish(cudaErrorInvalidValue);
  return with_driver([&](const Driver& d) { return d.cuStreamCreate(stream, flags); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaStreamDestroy(cudaStream_t stream) {
  return with_driver([&](const Driver& d) { return d.cuStreamDestroy(stream); });
}
// The stream's device; 0, cudaStreamLegacy and cudaStreamPerThread: the current device.
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaStreamGetDevice(cudaStream_t stream, int* device) {
  if (device == nullptr) return finish(cudaErrorInvalidValue);
  return with_driver([&](const Driver& d) { return d.cuStreamGetDevice(stream, device); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaStreamGetDevice_ptsz(cudaStream_t stream, int* device) {
  if (device == nullptr) return finish(cudaErrorInvalidValue);
  return with_driver([&](const Driver& d) { return d.cuStreamGetDevice_ptsz(stream, device); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaStreamSynchronize(cudaStream_t stream) {
  return with_driver([&](const Driver& d) { return d.cuStreamSynchronize(stream); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaStreamSynchronize_ptsz(cudaStream_t stream) {
  return with_driver([&](const Driver& d) { return d.cuStreamSynchronize_ptsz(stream); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaStreamQuery(cudaStream_t stream) {
  return with_driver([&](const Driver& d) { return d.cuStreamQuery(stream); });
}

SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaEventCreateWithFlags(cudaEvent_t* event,
                                                              unsigned int flags) {
  if (event == nullptr) return finish(cudaErrorInvalidValue);
  return with_driver([&](const Driver& d) { return d.cuEventCreate(event, flags); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaEventCreate(cudaEvent_t* event) {
  return cudaEventCreateWithFlags(event, cudaEventDefault);
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  return with_driver([&](const Driver& d) { return d.cuEventRecord(event, stream); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaEventRecord_ptsz(cudaEvent_t event, cudaStream_t stream) {
  return with_driver([&](const Driver& d) { return d.cuEventRecord_ptsz(event, stream); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaEventSynchronize(cudaEvent_t event) {
  return with_driver([&](const Driver& d) { return d.cuEventSynchronize(event); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaEventQuery(cudaEvent_t event) {
  return with_driver([&](const Driver& d) { return d.cuEventQuery(event); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaEventDestroy(cudaEvent_t event) {
  return with_driver([&](const Driver& d) { return d.cuEventDestroy(event); });
}
SIMCUDA_EXPORT cudaError_t CUDARTAPI cudaEventElapsedTime(float* ms, cudaEvent_t start,
                                                          cudaEvent_t end) {
  if (ms == nullptr) return finish(cudaErrorInvalidValue);
  return with_driver([&](const Driver& d) { return d.cuEventElapsedTime(ms, start, end); });
}
