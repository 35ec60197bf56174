// A gpumem trace read whole for export: the records that matter to the foreign formats (in file
// order) plus the strings, stacks and symbols that name their call sites. Exports are one-off
// conversions, so memory proportional to the trace is fine here (the analyzer streams instead).
#pragma once

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "gpumem/trace/reader.h"

namespace gpumem::formats::detail {

struct LoadedTrace {
  trace::Header header{};
  std::vector<trace::Record> records;  // alloc, free, alloc_failed, segments, marks
  std::unordered_map<uint64_t, std::string> strings;
  std::unordered_map<uint32_t, std::vector<uint64_t>> stacks;
  std::unordered_map<uint64_t, uint64_t> symbols;  // pc -> string id
  bool truncated = false;
  std::string reason;
  uint64_t dropped_middle = 0;  // a bounded trace: records of its middle it dropped

  // Unix time of a record in µs (PyTorch's time_us; RMM's clock): the trace's start plus the
  // record's offset from the trace's clock base.
  // Modulo 2^64 (a damaged trace's times may be anywhere: signed sums overflowed), which for the
  // records of a real trace is the signed sum.
  uint64_t unix_us(const trace::Record& r) const {
    return (header.start_unix_ns + (r.t_ns - header.clock_base_ns)) / 1000;
  }
  std::string string_of(uint64_t id) const {
    auto it = strings.find(id);
    return it == strings.end() ? std::string() : it->second;
  }
};

// More than a GPU's whole virtual address space (49 bits): a size read from a foreign file above
// it is damage (a -1 printed unsigned, a garbled number), and a few of them would overflow the
// report's sums. A failed request may ask for anything.
constexpr uint64_t kMaxDeviceBytes = uint64_t{1} << 49;

inline bool is_device_memory(const trace::Record& r) {
  const auto kind = static_cast<trace::MemKind>(r.flags & trace::kFlagKindMask);
  return kind == trace::MemKind::device || kind == trace::MemKind::managed;
}

inline bool load_trace(const std::string& path, LoadedTrace* out, std::string* error) {
  auto reader = trace::Reader::open(path, error);
  if (!reader) return false;
  out->header = reader->header();
  trace::Event ev;
  while (reader->next(&ev)) {
    const auto op = static_cast<trace::Op>(ev.rec.op);
    switch (op) {
      case trace::Op::string:
        out->strings[ev.rec.aux] = std::string(ev.payload);
        break;
      case trace::Op::stack: {
        std::vector<uint64_t> pcs(ev.payload.size() / sizeof(uint64_t));
        if (!pcs.empty()) std::memcpy(pcs.data(), ev.payload.data(), pcs.size() * sizeof(uint64_t));
        out->stacks[static_cast<uint32_t>(ev.rec.aux)] = std::move(pcs);
        break;
      }
      case trace::Op::symbol:
        out->symbols[ev.rec.address] = ev.rec.aux;
        break;
      case trace::Op::alloc:
      case trace::Op::free:
      case trace::Op::alloc_failed:
      case trace::Op::segment_reserve:
      case trace::Op::segment_release:
      case trace::Op::mark_begin:
      case trace::Op::mark_end:
      case trace::Op::free_failed:
        out->records.push_back(ev.rec);
        break;
      default:
        break;
    }
  }
  out->truncated = reader->stats().truncated;
  out->reason = reader->stats().reason;
  if (const trace::DroppedSpan* d = reader->dropped()) out->dropped_middle = d->records;
  return true;
}

// What an export of a trace that is not whole lacks, for the user (empty when it is whole): the
// file converts, but its records that could not be read, or that a bounded trace dropped, are not
// in `what` either.
inline std::string incomplete_note(const LoadedTrace& t, const std::string& path,
                                   const char* what) {
  std::string note;
  if (t.dropped_middle > 0)
    note = "'" + path + "' is bounded (GPUMEM_TRACE_MAX): " + std::to_string(t.dropped_middle) +
           " records of its middle were dropped, and the " + what +
           " has only what its digest kept of them; for all of them, record again with a larger "
           "GPUMEM_TRACE_MAX";
  if (t.truncated)
    note += std::string(note.empty() ? "" : "; ") + "'" + path + "' is incomplete (" + t.reason +
            "); the " + what + " holds every record that could be read";
  return note;
}

}  // namespace gpumem::formats::detail
