// Following a trace that is still being written (gpumem top): read the records appended since the
// last look, and only those that are complete now. A plain Reader skips a slot that is not
// committed as torn; here a slot reserved but not yet committed is most likely a call still in
// flight in the writing process, so reading stops before it and the next look starts there.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "gpumem/trace/reader.h"

namespace gpumem::trace {

// Opens `path` like Reader::open, reading from file offset `from` (a slot boundary at or past
// kHeaderSize; anything else reads from the first record). With `hold` set, reading ends at the
// first slot that is neither committed nor abandoned (zero, in flight, or a blob whose head is
// not committed yet) instead of skipping it; without it, the records are read as Reader::open
// reads them (the writer is gone: what is not committed now never will be).
std::unique_ptr<Reader> open_from(const std::string& path, uint64_t from, bool hold,
                                  std::string* error);

// Where the next open_from should start after `reader` returned false: the first slot it neither
// delivered nor skipped as damage (unused zero space at the end is not consumed). For readers
// made by open_from.
uint64_t resume_offset(const Reader& reader);

}  // namespace gpumem::trace
