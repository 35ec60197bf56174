// Version 2 of the trace file: the compact layout (docs/trace-format.md, "Version 2"). The header
// is version 1's, with `version` 2 and the layout below in Header::reserved0; the records follow
// as a ring of raw chunks (64-byte slots committed exactly as in version 1) and, after the ring,
// the compact chunks (gpumem/trace/compact.h) the raw chunks were sealed into, in order.
//
//   offset 0                         Header (kHeaderSize bytes)
//   offset kHeaderSize               raw ring: ring_chunks chunks of chunk_slots slots
//   offset compact_offset            compact chunk 0, 1, 2, ...  (chunk i = raw chunk i, sealed)
//
// Raw chunk k lives at ring position k % ring_chunks. A writer fills raw chunk k only once chunk
// k - ring_chunks + 1 is sealed: its compact copy is written in full, then its ring space zeroed.
// A reader counts the complete compact chunks (n), then reads raw chunks n .. n + ring_chunks - 2.
#pragma once

#include <cstdint>
#include <cstring>

#include "gpumem/trace/format.h"

namespace gpumem::trace {

inline constexpr uint32_t kVersionCompact = 2;

struct CompactLayout {           // at Header::reserved0 (offset 152) in a version-2 file
  uint32_t chunk_slots;          // slots per raw chunk
  uint32_t ring_chunks;          // raw chunks in the ring (>= 3)
  uint64_t compact_offset;       // kHeaderSize + chunk_slots * ring_chunks * kRecordSize
  uint64_t sealed_chunks;        // raw chunks sealed so far (for people: readers count chunks)
  uint64_t compact_end;          // end of the last compact chunk written (same)
  uint64_t reserved;             // zero
};
static_assert(sizeof(CompactLayout) == sizeof(Header::reserved0));
inline constexpr size_t kCompactLayoutOffset = offsetof(Header, reserved0);

inline CompactLayout compact_layout(const Header& h) {
  CompactLayout l;
  std::memcpy(&l, h.reserved0, sizeof l);
  return l;
}

}  // namespace gpumem::trace
