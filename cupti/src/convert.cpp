#include "convert.h"

#include <limits>

namespace gpumem::cupti {
namespace {

using trace::Api;
using trace::MemKind;
using trace::Op;
using trace::Record;

// Which CUPTI memory kinds are allocations the program asked for, and as what.
bool to_mem_kind(CUpti_ActivityMemoryKind kind, MemKind* out) {
  switch (kind) {
    case CUPTI_ACTIVITY_MEMORY_KIND_DEVICE:
    case CUPTI_ACTIVITY_MEMORY_KIND_ARRAY:
      *out = MemKind::device;
      return true;
    case CUPTI_ACTIVITY_MEMORY_KIND_MANAGED:
      *out = MemKind::managed;
      return true;
    case CUPTI_ACTIVITY_MEMORY_KIND_PINNED:
      *out = MemKind::pinned_host;
      return true;
    // __device__/__managed__ variables are module data, not allocation calls; pageable memory is
    // the host's. Neither is GPU memory the program allocated, so the trace leaves them out.
    default:
      return false;
  }
}

int16_t to_device(uint32_t device_id) {
  if (device_id >= static_cast<uint32_t>(trace::kMaxDevices)) return -1;
  return static_cast<int16_t>(device_id);
}

uint64_t to_time(uint64_t cupti_ns, int64_t offset) {
  return static_cast<uint64_t>(static_cast<int64_t>(cupti_ns) + offset);
}

Record blank() {
  Record r{};
  r.api = static_cast<uint16_t>(Api::cupti);
  return r;
}

}  // namespace

bool convert_memory(const CUpti_ActivityMemory4& m, const ConvertContext& ctx, Record* out) {
  Op op;
  switch (m.memoryOperationType) {
    case CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_ALLOCATION:
      op = Op::alloc;
      break;
    case CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_RELEASE:
      op = Op::free;
      break;
    default:
      return false;
  }
  MemKind kind;
  if (!to_mem_kind(m.memoryKind, &kind)) return false;

  Record r = blank();
  r.t_ns = to_time(m.timestamp, ctx.clock_offset_ns);
  r.op = static_cast<uint16_t>(op);
  r.address = m.address;
  r.bytes = m.bytes;
  // CUPTI's stream id (not the cudaStream_t value); 0 when the operation is not stream-ordered.
  r.stream = m.streamId == CUPTI_INVALID_STREAM_ID ? 0 : m.streamId;
  r.aux = m.correlationId;  // joins the record to CUPTI's runtime/driver API records
  r.device = to_device(m.deviceId);
  r.flags = static_cast<uint16_t>(kind);
  if (m.isAsync != 0) r.flags |= trace::kFlagAsync;
  *out = r;
  return true;
}

bool convert_memory_pool(const CUpti_ActivityMemoryPool3& p, const ConvertContext& ctx,
                         Record* out) {
  Record r = blank();
  r.t_ns = to_time(p.timestamp, ctx.clock_offset_ns);
  r.address = p.address;
  r.device = to_device(p.deviceId);
  r.flags = static_cast<uint16_t>(p.isManagedPool != 0 ? MemKind::managed : MemKind::device) |
            trace::kFlagAsync;
  switch (p.memoryPoolOperationType) {
    // A pool's creation and destruction are instant markers, not segments: CUPTI reports no
    // reserved-bytes history for stream-ordered pools, and a segment_reserve of the size at
    // creation would make "reserved" wrong. The size at that moment rides along in `bytes`.
    case CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_CREATED:
      r.op = static_cast<uint16_t>(Op::mark);
      r.aux = ctx.pool_marks.created;
      r.bytes = p.size;
      break;
    case CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_DESTROYED:
      r.op = static_cast<uint16_t>(Op::mark);
      r.aux = ctx.pool_marks.destroyed;
      r.bytes = p.size;
      break;
    case CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_TRIMMED:
      r.op = static_cast<uint16_t>(Op::trim);
      r.bytes = p.minBytesToKeep;  // the trim target (cuMemPoolTrimTo's minBytesToKeep)
      r.aux = p.size;              // the pool's size after the trim, as CUPTI reports it
      break;
    default:
      return false;
  }
  *out = r;
  return true;
}

bool convert_activity(const CUpti_Activity* activity, const ConvertContext& ctx, Record* out) {
  if (activity == nullptr) return false;
  switch (activity->kind) {
    case CUPTI_ACTIVITY_KIND_MEMORY2:
      return convert_memory(*reinterpret_cast<const CUpti_ActivityMemory4*>(activity), ctx, out);
    case CUPTI_ACTIVITY_KIND_MEMORY_POOL:
      return convert_memory_pool(*reinterpret_cast<const CUpti_ActivityMemoryPool3*>(activity), ctx,
                                 out);
    default:
      return false;
  }
}

}  // namespace gpumem::cupti
