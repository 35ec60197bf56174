// Streams and events. Work runs inside the call that queues it, so streams only need to exist
// and events only need a timestamp (taken at record time, CLOCK_MONOTONIC).
#include <time.h>

#include "state.h"

using namespace simcuda;

namespace {

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

CUresult check_stream(CUstream stream) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  int device = 0;
  std::lock_guard lock(state().mu);
  return stream_device(stream, &device);
}

CUresult check_event(CUevent event) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  std::lock_guard lock(state().mu);
  return state().events.count(event) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult record(CUevent event, CUstream stream) {
  if (CUresult r = check_stream(stream)) return r;
  std::lock_guard lock(state().mu);
  if (state().events.count(event) == 0) return CUDA_ERROR_INVALID_HANDLE;
  event->recorded = true;
  event->time_ns = now_ns();
  return CUDA_SUCCESS;
}

}  // namespace

SIMCUDA_EXPORT CUresult CUDAAPI cuStreamCreate(CUstream* stream, unsigned int flags) {
  int device = 0;
  if (CUresult r = current_device(&device)) return r;
  if (stream == nullptr || (flags & ~CU_STREAM_NON_BLOCKING) != 0) return CUDA_ERROR_INVALID_VALUE;
  auto* s = new CUstream_st{device, flags};
  std::lock_guard lock(state().mu);
  state().streams.insert(s);
  *stream = s;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuStreamCreateWithPriority(CUstream* stream, unsigned int flags,
                                                           int priority) {
  (void)priority;
  return cuStreamCreate(stream, flags);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuStreamDestroy_v2(CUstream stream) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  {
    std::lock_guard lock(state().mu);
    if (state().streams.erase(stream) == 0) return CUDA_ERROR_INVALID_HANDLE;
  }
  delete stream;
  return CUDA_SUCCESS;
}

// The device a stream was created on; the legacy and per-thread default streams (0,
// CU_STREAM_LEGACY, CU_STREAM_PER_THREAD) belong to the current context's device.
SIMCUDA_EXPORT CUresult CUDAAPI cuStreamGetDevice(CUstream stream, CUdevice* device) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (device == nullptr) return CUDA_ERROR_INVALID_VALUE;
  int d = 0;
  std::lock_guard lock(state().mu);
  if (CUresult r = stream_device(stream, &d)) return r;
  *device = d;
  return CUDA_SUCCESS;
}
SIMCUDA_EXPORT CUresult CUDAAPI cuStreamGetDevice_ptsz(CUstream stream, CUdevice* device) {
  return cuStreamGetDevice(stream, device);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuStreamSynchronize(CUstream stream) {
  return check_stream(stream);
}
SIMCUDA_EXPORT CUresult CUDAAPI cuStreamSynchronize_ptsz(CUstream stream) {
  return check_stream(stream);
}
SIMCUDA_EXPORT CUresult CUDAAPI cuStreamQuery(CUstream stream) {
  return check_stream(stream);
}
SIMCUDA_EXPORT CUresult CUDAAPI cuStreamQuery_ptsz(CUstream stream) {
  return check_stream(stream);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuEventCreate(CUevent* event, unsigned int flags) {
  int device = 0;
  if (CUresult r = current_device(&device)) return r;
  constexpr unsigned kKnown =
      CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS;
  if (event == nullptr || (flags & ~kKnown) != 0) return CUDA_ERROR_INVALID_VALUE;
  auto* e = new CUevent_st{flags};
  std::lock_guard lock(state().mu);
  state().events.insert(e);
  *event = e;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuEventRecord(CUevent event, CUstream stream) {
  return record(event, stream);
}
SIMCUDA_EXPORT CUresult CUDAAPI cuEventRecord_ptsz(CUevent event, CUstream stream) {
  return record(event, stream);
}
SIMCUDA_EXPORT CUresult CUDAAPI cuEventSynchronize(CUevent event) {
  return check_event(event);
}
SIMCUDA_EXPORT CUresult CUDAAPI cuEventQuery(CUevent event) {
  return check_event(event);
}

SIMCUDA_EXPORT CUresult CUDAAPI cuEventDestroy_v2(CUevent event) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  {
    std::lock_guard lock(state().mu);
    if (state().events.erase(event) == 0) return CUDA_ERROR_INVALID_HANDLE;
  }
  delete event;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuEventElapsedTime_v2(float* ms, CUevent start, CUevent end) {
  if (!initialized()) return CUDA_ERROR_NOT_INITIALIZED;
  if (ms == nullptr) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard lock(state().mu);
  if (state().events.count(start) == 0 || state().events.count(end) == 0)
    return CUDA_ERROR_INVALID_HANDLE;
  if (((start->flags | end->flags) & CU_EVENT_DISABLE_TIMING) != 0)
    return CUDA_ERROR_INVALID_HANDLE;
  if (!start->recorded || !end->recorded) return CUDA_ERROR_INVALID_HANDLE;
  *ms = static_cast<float>(end->time_ns - start->time_ns) / 1e6f;
  return CUDA_SUCCESS;
}

SIMCUDA_EXPORT CUresult CUDAAPI cuEventElapsedTime(float* ms, CUevent start, CUevent end) {
  return cuEventElapsedTime_v2(ms, start, end);
}
