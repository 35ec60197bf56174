// How a request becomes a trace record: the flags, the record, its write (with the call stack
// where one is wanted). Shared by the tracking step (dispatch.cpp), the policy step (segment and
// trim records, policy.cpp) and the hooks' own events, so neither step calls back into the other.
#pragma once

#include <cstdint>

#include "config.h"
#include "gpumem/resources/request.h"
#include "gpumem/trace/format.h"
#include "gpumem/trace/writer.h"
#include "session.h"
#include "stacks/stacks.h"

namespace gpumem {

// Record::flags helpers: kind of memory, how the caller reached the hook, stream-ordered.
constexpr uint16_t make_flags(trace::MemKind kind, trace::Lookup lookup, bool async = false) {
  return static_cast<uint16_t>(static_cast<uint16_t>(kind) |
                               (static_cast<uint16_t>(lookup) << trace::kFlagLookupShift) |
                               (async ? trace::kFlagAsync : 0));
}

inline trace::Record make_record(trace::Op op, const resources::Request& req, uint64_t address,
                                 uint64_t bytes) {
  trace::Record r{};
  r.op = static_cast<uint16_t>(op);
  r.api = static_cast<uint16_t>(req.api);
  r.device = static_cast<int16_t>(req.device);
  r.flags = req.flags;
  r.stream = req.stream;
  r.address = address;
  r.bytes = bytes;
  return r;
}

inline void write_record(TraceWriter* w, trace::Record& r, bool with_stack) {
  if (with_stack && config().stacks) r.site = stacks::capture(*w, config().stack_mode);
  w->append(r);
}

// Events that involve no policy decision: written as they happen.
inline void record_event(trace::Op op, const resources::Request& req, uint64_t address,
                         uint64_t aux, int32_t result) {
  TraceWriter* w = session::writer();
  if (w == nullptr) return;
  session::note_device(req.device);
  trace::Record r = make_record(op, req, address, req.bytes);
  r.aux = aux;
  r.result = result;
  write_record(w, r, op == trace::Op::map);
}

inline void record_anomaly(trace::AnomalyKind kind, const resources::Request& req,
                           uint64_t address) {
  record_event(trace::Op::anomaly, req, address, static_cast<uint64_t>(kind), 0);
}

}  // namespace gpumem
