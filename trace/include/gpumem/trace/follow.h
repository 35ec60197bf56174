// Following a trace that is still being written (gpumem top): read the records appended since the
// last look, and only those that are complete now. A plain Reader skips a slot that is not
// committed as torn; here a slot reserved but not yet committed is most likely a call still in
// flight in the writing process, so reading stops before it and the next look starts there.
//
// A follower is kept from one look to the next (follow_on): it reads only the bytes appended
// since, with pread into one small buffer (no read-ahead: a live file ends far past its last
// record, in space the writer has not written), and a compact trace's decoding goes on from the
// last compact chunk read instead of starting again.
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

// The next look of a reader made by open_from, after next()/next_batch() returned false: the
// header and file size are read again and reading goes on from resume_offset(), with `hold` as
// for open_from. stats() then count this look only, as a new open_from's would. False when the
// reader cannot go on (the header is no longer a trace's, a bounded compact trace whose window
// may have turned): open_from(path, resume_offset(reader), ...) instead.
bool follow_on(Reader& reader, bool hold);

// Where the next open_from should start after `reader` returned false: the first slot it neither
// delivered nor skipped as damage (unused zero space at the end is not consumed). For readers
// made by open_from.
uint64_t resume_offset(const Reader& reader);

}  // namespace gpumem::trace
