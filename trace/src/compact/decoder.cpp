// Checking and decoding compact chunks. Everything in a chunk comes from a file: every length,
// index and count is checked before it is used, and a chunk that does not decode exactly yields
// no records at all (never invented or partial ones).
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cstddef>
#include <cstring>

#include "gpumem/trace/compact.h"
#include "varint.h"

namespace gpumem::trace::compact {
namespace {

uint32_t get_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Writes one record, built in registers, in one go (four 16-byte stores).
inline void store_record(Record* dst, uint64_t t, uint64_t address, uint64_t bytes, uint64_t aux,
                         uint32_t site, int32_t result, const ChunkState::Shape& shape) {
#if defined(__SSE2__)
  const __m128i a = _mm_set_epi64x(static_cast<long long>(address), static_cast<long long>(t));
  const __m128i b = _mm_set_epi64x(static_cast<long long>(shape.stream), static_cast<long long>(bytes));
  const __m128i c = _mm_set_epi64x(static_cast<long long>(uint64_t{site} << 32 | shape.tid),
                                   static_cast<long long>(aux));
  // result, op | api << 16, device | flags << 16, commit: bytes 48 to 63 of a Record (format.h).
  const __m128i d = _mm_set_epi32(
      static_cast<int>(kCommitted),
      static_cast<int>(uint32_t{static_cast<uint16_t>(shape.device)} | uint32_t{shape.flags} << 16),
      static_cast<int>(uint32_t{shape.op} | uint32_t{shape.api} << 16), result);
  auto* p = reinterpret_cast<__m128i*>(dst);
  _mm_storeu_si128(p, a);
  _mm_storeu_si128(p + 1, b);
  _mm_storeu_si128(p + 2, c);
  _mm_storeu_si128(p + 3, d);
#else
  Record r{};
  r.op = shape.op;
  r.api = shape.api;
  r.flags = shape.flags;
  r.device = shape.device;
  r.tid = shape.tid;
  r.stream = shape.stream;
  r.commit = kCommitted;
  r.t_ns = t;
  r.address = address;
  r.bytes = bytes;
  r.aux = aux;
  r.site = site;
  r.result = result;
  *dst = r;
#endif
}
static_assert(offsetof(Record, stream) == 24 && offsetof(Record, aux) == 32 &&
              offsetof(Record, tid) == 40 && offsetof(Record, result) == 48 &&
              offsetof(Record, op) == 52 && offsetof(Record, device) == 56, "store_record's layout");

bool decode(const uint8_t* body, size_t len, uint32_t records, DecodedChunk* out) {
  ChunkState s;
  s.reset();
  ByteReader in(body, len);
  // Every record takes at least two bytes: a count the body cannot hold is a lie.
  if (records > kMaxChunkRecords || records > len / 2) return false;
  out->records.reserve(records);
  for (uint32_t n = 0; n < records; ++n) {
    const uint8_t shape_byte = in.byte();
    const uint8_t mode = in.byte();
    if (!in.ok()) return false;
    uint32_t shape = shape_byte;
    if (shape_byte == kNewShape) {
      const uint64_t op = in.varint(), api = in.varint(), device = in.varint(),
                     flags = in.varint(), tid = in.varint(), stream = in.varint();
      const int64_t dev = unzigzag(device);
      if (!in.ok() || op > 0xFFFF || api > 0xFFFF || flags > 0xFFFF || tid > 0xFFFFFFFFu ||
          dev < INT16_MIN || dev > INT16_MAX)
        return false;
      shape = s.shape_count % kShapes;
      s.shapes[shape] = {static_cast<uint16_t>(op), static_cast<uint16_t>(api),
                         static_cast<uint16_t>(flags), static_cast<int16_t>(dev),
                         static_cast<uint32_t>(tid), stream};
      ++s.shape_count;
    } else if (shape_byte >= (s.shape_count < kShapes ? s.shape_count : kShapes)) {
      return false;
    }
    // Time, address and size are worked out in registers and stored once: the tables learn from
    // these values, not from the record just written (reading it back waited on its store).
    const uint64_t t = s.last_t + static_cast<uint64_t>(unzigzag(in.varint()));
    uint64_t address = 0, bytes = 0;
    int address_hit = -1;
    switch (mode & 3) {
      case kAddrTable: {
        const uint8_t i = in.byte();
        const uint32_t known = s.address_count < kAddresses ? s.address_count : kAddresses;
        if (i >= known) return false;
        address_hit = i;
        address = s.addresses[i].address;
        break;
      }
      case kAddrDelta:
        address = s.last_address + static_cast<uint64_t>(unzigzag(in.varint()));
        if (address == 0) return false;  // the encoder writes a zero address as kAddrZero
        break;
      case kAddrLiteral:
        address = in.varint();
        if (address == 0) return false;
        break;
      default: break;
    }
    const int bytes_mode = (mode >> 2) & 3;
    switch (bytes_mode) {
      case kBytesTable: {
        const uint8_t i = in.byte();
        const uint32_t known = s.size_count < kSizes ? s.size_count : kSizes;
        if (i >= known) return false;
        bytes = s.sizes[i];
        break;
      }
      case kBytesLiteral: bytes = in.varint(); break;
      case kBytesOfAddress:
        if (address_hit < 0) return false;
        bytes = s.addresses[address_hit].bytes;
        break;
      default: break;
    }
    uint64_t aux = 0;
    uint32_t site = 0;
    int32_t result = 0;
    if (mode & kHasAux) aux = in.varint();
    if (mode & kHasSite) {
      const uint64_t v = in.varint();
      if (v > 0xFFFFFFFFu) return false;
      site = static_cast<uint32_t>(v);
    }
    if (mode & kHasResult) {
      const int64_t v = unzigzag(in.varint());
      if (v < INT32_MIN || v > INT32_MAX) return false;
      result = static_cast<int32_t>(v);
    }
    store_record(&out->records.emplace_back(), t, address, bytes, aux, site, result,
                 s.shapes[shape]);
    if (mode & kHasPayload) {
      const uint64_t n = in.varint();
      const uint8_t* blob = in.take(n);
      if (blob == nullptr || n == 0) return false;
      // The chunk's first blob: the records before it had no payload.
      if (out->payload_begin.empty()) out->payload_begin.assign(out->records.size(), 0);
      out->payloads.append(reinterpret_cast<const char*>(blob), n);
    }
    if (!in.ok()) return false;
    s.learn(address, bytes, t, address_hit, bytes_mode);
    if (!out->payload_begin.empty())
      out->payload_begin.push_back(static_cast<uint32_t>(out->payloads.size()));
  }
  return in.at_end();
}

}  // namespace

ChunkCheck check_chunk(const uint8_t* data, size_t size, ChunkInfo* info) {
  if (size < kChunkHeaderBytes) return ChunkCheck::short_;
  if (get_u32(data) != kChunkMagic) return ChunkCheck::bad_magic;
  ChunkInfo i;
  i.body_bytes = get_u32(data + 4);
  i.records = get_u32(data + 8);
  if (info != nullptr) *info = i;
  if (i.body_bytes > kMaxBodyBytes || i.records > kMaxChunkRecords || i.records > i.body_bytes / 2)
    return ChunkCheck::damaged;
  if (size - kChunkHeaderBytes < i.body_bytes) return ChunkCheck::short_;
  if (checksum(i.body_bytes, i.records, data + kChunkHeaderBytes, i.body_bytes) !=
      get_u32(data + 12))
    return ChunkCheck::damaged;
  return ChunkCheck::ok;
}

bool decode_body(const uint8_t* body, size_t len, uint32_t records, DecodedChunk* out) {
  out->records.clear();
  out->payload_begin.clear();
  out->payloads.clear();
  if (decode(body, len, records, out)) return true;
  out->records.clear();
  out->payload_begin.clear();
  out->payloads.clear();
  return false;
}

bool decode_chunk(const uint8_t* data, size_t size, DecodedChunk* out, ChunkInfo* info) {
  ChunkInfo local;
  ChunkInfo& i = info != nullptr ? *info : local;
  if (check_chunk(data, size, &i) != ChunkCheck::ok) {
    out->records.clear();
    out->payload_begin.clear();
    out->payloads.clear();
    return false;
  }
  return decode_body(data + kChunkHeaderBytes, i.body_bytes, i.records, out);
}

}  // namespace gpumem::trace::compact
