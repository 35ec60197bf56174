// Reading gpumem traces: the one reader every tool uses (gpumem dump, the analyzer, replay, tests).
// It streams: memory stays bounded whatever the trace size (pread() into four 1 MiB chunks, the
// next ones read ahead on a thread; never a whole-file load). Bad input never crashes it: a bad header is an error with a message that says
// what to do; torn records are skipped and counted; a cut-off file is read up to the cut.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gpumem/trace/format.h"

namespace gpumem::trace {

struct ReadStats {
  uint64_t records = 0;      // complete records delivered (blob heads count once)
  uint64_t torn = 0;         // slots skipped because a kill cut them (commit word not set)
  uint64_t abandoned = 0;    // slots skipped that were in flight at a clean exit (not damage)
  uint64_t dropped = 0;      // records the writer could not keep (Header::records_dropped)
  uint64_t bytes_read = 0;   // bytes consumed so far, for progress reporting
  bool truncated = false;    // incomplete: not closed, torn or cut records, or records dropped
  std::string reason;        // why it is marked truncated, for people; empty when not truncated
  const struct DroppedSpan* dropped_span = nullptr;  // Reader::dropped(), for the analyzer
};

// What a bounded trace (GPUMEM_TRACE_MAX) dropped from its middle: read from its digest
// (docs/trace-format.md, "Bounded traces"). The digest's kept records (definitions, the live set
// at the cut, what was live at each device's peaks) are delivered by next() between the head and
// the window; `omitted` counts the others, per device and op.
struct DroppedSpan {
  uint64_t records = 0;   // records dropped from the file (kept ones included)
  uint64_t kept = 0;      // of those, delivered anyway (from the digest)
  int64_t first_t_ns = 0;  // t_ns of the first and last dropped record (the trace's clock)
  int64_t last_t_ns = 0;
  uint64_t first_chunk = 0;  // raw chunks first_chunk .. next_chunk - 1 were dropped
  uint64_t next_chunk = 0;
  struct Omitted {
    int16_t device;
    uint16_t op;     // trace::Op
    uint32_t aux;    // trace::AnomalyKind for Op::anomaly, else 0
    uint64_t count;
    uint64_t bytes;  // sum of the records' bytes fields
  };
  std::vector<Omitted> omitted;
};

struct Event {
  Record rec;                // a copy of the record; valid until the next call to next()
  std::string_view payload;  // blob payload for Op::string / Op::stack, empty otherwise
};

// Records read in place: a run of plain records straight from the reader's buffer, or one blob
// record with its payload. Valid until the next call to the reader.
struct Batch {
  const Record* records = nullptr;
  size_t count = 0;
  std::string_view payload;  // the blob's payload when records[0] is Op::string / Op::stack
};

class Reader {
 public:
  // Opens `path` and validates the header. On failure returns nullptr and sets *error to one line
  // naming the file, what is wrong and what to do (e.g. "not a gpumem trace (bad magic)...").
  static std::unique_ptr<Reader> open(const std::string& path, std::string* error);
  virtual ~Reader() = default;

  virtual const Header& header() const = 0;
  virtual const std::string& path() const = 0;
  virtual uint64_t file_size() const = 0;

  // Delivers the next complete record in file order; false at the end. Blob records are delivered
  // with their payload. Torn slots are skipped and counted in stats().
  virtual bool next(Event* ev) = 0;
  // The same records as next(), checked the same way, in file order, but many per call and not
  // copied: for readers that need speed (the analyzer). false at the end. Calls to next() and
  // next_batch() may be mixed.
  virtual bool next_batch(Batch* batch) = 0;
  // Back to the first record (for a second pass); stats restart too.
  virtual void rewind() = 0;
  virtual const ReadStats& stats() const = 0;
  // A bounded trace that has dropped part of its middle: what, known from open(); else nullptr.
  virtual const DroppedSpan* dropped() const { return nullptr; }
};

}  // namespace gpumem::trace
