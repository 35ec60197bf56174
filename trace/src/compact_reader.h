// Reading version-2 (compact) traces: the compact chunks, then the raw chunks not yet sealed, as
// one stream of records through the Reader interface (gpumem/trace/format_v2.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "gpumem/trace/reader.h"

namespace gpumem::trace {

// Takes fd and header (already checked: magic, sizes; version 2). nullptr with *error set when
// the layout in the header is impossible. `skip`: records to pass over first (following a trace:
// those delivered by the last look); `hold`: stop at a raw slot not committed yet (follow.h);
// `follow`: a follower of a live trace, which decodes on its own thread (decode_ahead.h).
std::unique_ptr<Reader> open_compact(int fd, const std::string& path, uint64_t size,
                                     std::unique_ptr<Header> header, uint64_t skip, bool hold,
                                     bool follow, std::string* error);
// For a reader made by open_compact: where open_from resumes (records delivered so far, as slot
// offsets from kHeaderSize); 0 for any other reader.
uint64_t compact_resume_offset(const Reader& reader);
// For a reader made by open_compact: follow_on (gpumem/trace/follow.h); false for any other.
bool compact_follow_on(Reader& reader, bool hold);

// Strings and counts read from a file's header made safe to use as C strings and indexes.
void make_header_safe(Header* header);

// The version-1 record reader over `fd` (a file whose header is `header`), for the raw chunks of a
// compact trace laid out as a version-1 file (reader.cpp).
std::unique_ptr<Reader> open_raw_records(int fd, const std::string& path, uint64_t size,
                                         std::unique_ptr<Header> header, bool hold);

}  // namespace gpumem::trace
