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
};

}  // namespace gpumem::trace
