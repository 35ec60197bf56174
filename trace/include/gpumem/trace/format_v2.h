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
  uint64_t max_bytes;            // GPUMEM_TRACE_MAX: the file's bound (0 = unbounded), below
};
static_assert(sizeof(CompactLayout) == sizeof(Header::reserved0));
inline constexpr size_t kCompactLayoutOffset = offsetof(Header, reserved0);

inline CompactLayout compact_layout(const Header& h) {
  CompactLayout l;
  std::memcpy(&l, h.reserved0, sizeof l);
  return l;
}

// A bounded version-2 file (max_bytes != 0; docs/trace-format.md, "Bounded traces"). The space
// after the ring is cut in four, all derived from max_bytes:
//
//   compact_offset   head: compact chunks as in an unbounded file, until the next one does not fit
//   digest_slot(0)   digest A \  the fold of the chunks dropped from the middle; two slots, so the
//   digest_slot(1)   digest B /  one being rewritten never hides the last whole one (generations)
//   window_begin     window: framed compact chunks in a circle, overwriting the oldest, to max_bytes
//
// A window chunk is a WindowFrame then a compact chunk; the frame's index (its raw chunk's number)
// tells a reader which chunk comes next, so stale chunks left in the circle are never taken.
inline constexpr uint64_t kMinTraceMax = uint64_t{4} << 20;  // the ring + room for a window
inline constexpr uint32_t kWindowMagic = 0x31574D47u;        // "GMW1"
inline constexpr uint32_t kDigestMagic = 0x31444D47u;        // "GMD1"

struct WindowFrame {  // before each window chunk
  uint32_t magic;     // kWindowMagic
  uint32_t reserved;  // zero
  uint64_t index;     // the raw chunk this compact chunk was sealed from
};
static_assert(sizeof(WindowFrame) == 16);

// A digest slot: this frame, `rows` OmittedRow after it, then one compact chunk holding the kept
// records of the dropped span (definitions, the live set at the cut, what was live at each peak).
struct DigestFrame {
  uint32_t magic;          // kDigestMagic
  uint32_t checksum;       // compact::checksum(frame_bytes, rows, bytes 16 .. frame_bytes)
  uint32_t frame_bytes;    // sizeof(DigestFrame) + rows * sizeof(OmittedRow)
  uint32_t rows;
  uint64_t generation;     // 1, 2, ...: a reader takes the whole slot with the highest
  uint64_t first_chunk;    // the first raw chunk dropped (= the head's chunks)
  uint64_t next_chunk;     // the first raw chunk still in the window
  uint64_t window_at;      // file offset of that chunk's WindowFrame
  uint64_t records;        // records dropped from the file (kept ones included)
  int64_t first_t_ns;      // t_ns of the first and last record dropped
  int64_t last_t_ns;
  uint64_t kept;           // records of the digest chunk
};
static_assert(sizeof(DigestFrame) == 80);

// Records of the dropped span that are in no chunk (neither the digest's nor any other), counted
// per device, op and (for Op::anomaly) kind, so that totals stay exact.
struct OmittedRow {
  int16_t device;
  uint16_t op;
  uint32_t aux;     // AnomalyKind for Op::anomaly, else 0
  uint64_t count;
  uint64_t bytes;   // sum of the records' bytes
};
static_assert(sizeof(OmittedRow) == 24);

struct BoundedLayout {
  uint64_t head_begin, head_end;  // [compact_offset, head_end)
  uint64_t digest_at[2];          // the two digest slots, digest_bytes each
  uint64_t digest_bytes;
  uint64_t window_begin, window_end;  // window_end = max_bytes
};

// The regions of a bounded file, from its layout; false when max_bytes cannot hold them.
inline bool bounded_layout(const CompactLayout& l, BoundedLayout* out) {
  if (l.max_bytes < kMinTraceMax || l.max_bytes <= l.compact_offset + (uint64_t{1} << 20))
    return false;
  const uint64_t area = l.max_bytes - l.compact_offset;
  const uint64_t eighth = (area / 8) & ~uint64_t{63};
  out->head_begin = l.compact_offset;
  out->head_end = l.compact_offset + eighth;
  out->digest_bytes = eighth;
  out->digest_at[0] = out->head_end;
  out->digest_at[1] = out->head_end + eighth;
  out->window_begin = out->head_end + 2 * eighth;
  out->window_end = l.max_bytes;
  return true;
}

}  // namespace gpumem::trace
