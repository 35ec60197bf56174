// Bytes to a stream of trace records for the fuzz targets that take records (analysis, replay):
// each record decoded from 16 bytes into a mostly plausible one (ops and kinds in range, few
// devices, addresses from a small set so that allocations, frees, segments and NVTX heaps meet),
// with escapes to raw field values; strings and stacks take their payload from the bytes that
// follow.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gpumem/trace/format.h"

namespace gpumem::fuzz {

using gpumem::trace::Op;
using gpumem::trace::Record;

inline constexpr uint64_t kBase = 1'000'000'000;

struct Input {
  const uint8_t* p;
  size_t n;
  size_t at = 0;
  size_t left() const { return n - at; }
  uint8_t u8() { return at < n ? p[at++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  uint32_t u32() { return u16() | (static_cast<uint32_t>(u16()) << 16); }
  uint64_t u64() { return u32() | (static_cast<uint64_t>(u32()) << 32); }
};

struct Decoded {
  std::vector<Record> records;
  std::vector<std::string> payloads;  // one per record (empty unless a blob)
  std::vector<size_t> runs;           // run lengths for the batched pass
};

// An address from a small set: a few segments' worth of 4 KiB slots, at an offset.
inline uint64_t address(Input& in) {
  const uint16_t a = in.u16();
  if (a == 0xFFFF) return in.u64();
  return 0x7f0000000000ull + (static_cast<uint64_t>(a & 0x3FF) << 12) + ((a >> 10) & 0x3F) * 64;
}

inline uint64_t bytes(Input& in) {
  const uint8_t b = in.u8();
  switch (b >> 6) {
    case 0:
      return b & 0x3F;  // tiny, 0 included
    case 1:
      return static_cast<uint64_t>(b & 0x3F) << 12;  // pages
    case 2:
      return static_cast<uint64_t>(b & 0x3F) << 21;  // segments
    default:
      return b == 0xFF ? in.u64() : (uint64_t{1} << (b & 0x3F));
  }
}

// Records until the input runs out (at most 20000).
inline Decoded decode(Input& in) {
  Decoded d;
  uint64_t t = kBase;
  while (in.left() >= 16 && d.records.size() < 20000) {
    Record r{};
    const uint8_t op = in.u8();
    r.op = static_cast<uint16_t>(op < 0xF0 ? op % 26 : op);
    const uint8_t dev = in.u8();
    r.device = static_cast<int16_t>(dev < 0xF8 ? dev % 4 - 1 : static_cast<int16_t>(in.u16()));
    r.address = address(in);
    r.bytes = bytes(in);
    r.flags = in.u16();
    const uint8_t aux = in.u8();
    r.aux = aux < 0xF0 ? aux % 16 : (aux == 0xFF ? in.u64() : bytes(in));
    r.site = in.u8() % 8;
    r.tid = 1 + in.u8() % 3;
    r.api = in.u8() % 8;
    r.stream = in.u8() % 3;
    r.result = static_cast<int8_t>(in.u8());
    const uint8_t dt = in.u8();
    t += dt < 0xF0 ? dt * 1000ull : (dt == 0xFF ? in.u64() : 0);
    r.t_ns = dt == 0xFE ? t - 5000 : t;  // now and then out of order
    r.commit = gpumem::trace::kCommitted;
    std::string payload;
    if (r.op == static_cast<uint16_t>(Op::string) || r.op == static_cast<uint16_t>(Op::stack)) {
      const size_t len = std::min<size_t>(in.u8(), in.left());
      payload.assign(reinterpret_cast<const char*>(in.p + in.at), len);
      in.at += len;
      r.bytes = len;
    }
    d.records.push_back(r);
    d.payloads.push_back(std::move(payload));
    d.runs.push_back(1 + in.u8() % 64);
  }
  return d;
}

// A growth-pool process with two devices (device 1 under a 64 MiB cap).
inline gpumem::trace::Header header() {
  static gpumem::trace::Header h;  // large: off the stack
  std::memset(&h, 0, sizeof h);
  std::memcpy(h.magic, gpumem::trace::kMagic, 8);
  h.version = gpumem::trace::kVersion;
  h.header_size = gpumem::trace::kHeaderSize;
  h.record_size = gpumem::trace::kRecordSize;
  h.pid = 100;
  h.clock_base_ns = kBase;
  h.device_count = 2;
  std::strncpy(h.pool, "growth", sizeof h.pool - 1);
  for (int d = 0; d < 2; ++d) {
    h.devices[d].capacity_bytes = 1ull << 30;
    h.devices[d].limit_bytes = d == 1 ? 64ull << 20 : 0;
    h.devices[d].present = 1;
  }
  return h;
}

inline bool is_blob(const Record& r) {
  return r.op == static_cast<uint16_t>(Op::string) || r.op == static_cast<uint16_t>(Op::stack);
}

// Record i's slots as the writer lays them out: a blob's payload in continuation slots after it.
inline std::string record_bytes(const Decoded& d, size_t i) {
  std::string out;
  auto put = [&](const Record& r) { out.append(reinterpret_cast<const char*>(&r), sizeof r); };
  Record head = d.records[i];
  if (!is_blob(head)) {
    put(head);
    return out;
  }
  const std::string& payload = d.payloads[i];
  const size_t slots = (payload.size() + trace::kBlobBytesPerSlot - 1) / trace::kBlobBytesPerSlot;
  head.address = slots;
  head.bytes = payload.size();
  put(head);
  for (size_t s = 0; s < slots; ++s) {
    Record c{};
    const size_t at = s * trace::kBlobBytesPerSlot;
    std::memcpy(&c, payload.data() + at, std::min(trace::kBlobBytesPerSlot, payload.size() - at));
    c.commit = trace::kContinuation;
    put(c);
  }
  return out;
}

// A header's bytes; `closed` marks a clean close with its end at `end_offset`.
inline std::string header_bytes(trace::Header h, bool closed, uint64_t end_offset) {
  if (closed) {
    h.flags |= trace::kHeaderClosed;
    h.end_offset = end_offset;
  }
  std::string bytes(trace::kHeaderSize, '\0');
  std::memcpy(bytes.data(), &h, sizeof h);
  return bytes;
}

// The stream as a closed trace file.
inline std::string file_bytes(const Decoded& d) {
  std::string records;
  for (size_t i = 0; i < d.records.size(); ++i) records += record_bytes(d, i);
  return header_bytes(header(), true, trace::kHeaderSize + records.size()) + records;
}

}  // namespace gpumem::fuzz
