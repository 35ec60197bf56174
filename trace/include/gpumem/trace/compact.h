// The compact chunk codec: a run of trace records (a sealed chunk) in a few bytes per record, and
// back, exactly. Byte by byte in docs/trace-format.md ("Compact chunks"). Each chunk stands alone
// (its tables start empty), so a damaged chunk costs only its own records, and carries its record
// count, its length and a checksum, so a torn or corrupt chunk is detected and skipped, never
// decoded into invented records.
//
// Per record: one byte names the record's shape (op, api, device, flags, tid, stream: declared once
// per chunk, then referred to), one byte says how each field is stored, then the time as a signed
// delta from the previous record, the address as an index into a table of recent addresses (a free
// names its allocation) or as a delta from the last address, the size as an index into a table of
// recent sizes, the size of the allocation the address names, or a number; aux, site, result and
// a blob's payload only when present. Variable-length integers are LEB128 (7 bits a byte).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gpumem/trace/format.h"

namespace gpumem::trace::compact {

inline constexpr uint32_t kChunkMagic = 0x31434D47u;  // "GMC1"
inline constexpr size_t kChunkHeaderBytes = 16;       // magic, body_bytes, records, checksum
inline constexpr size_t kShapes = 128;                // shape table entries (a ring)
inline constexpr size_t kAddresses = 64;              // recent-address table entries (a ring)
inline constexpr size_t kSizes = 64;                  // recent-size table entries (a ring)
// Most bytes one record can take besides its payload (every field at its longest).
inline constexpr size_t kMaxRecordBytes = 96;
// A decoder never believes a header past these (bad input never makes it allocate much).
inline constexpr uint32_t kMaxChunkRecords = 1u << 20;
inline constexpr uint32_t kMaxBodyBytes = 1u << 30;

// Field modes, in the record's mode byte.
enum AddressMode : uint8_t { kAddrZero = 0, kAddrTable = 1, kAddrDelta = 2, kAddrLiteral = 3 };
enum BytesMode : uint8_t { kBytesZero = 0, kBytesTable = 1, kBytesLiteral = 2, kBytesOfAddress = 3 };
inline constexpr uint8_t kHasAux = 0x10;
inline constexpr uint8_t kHasSite = 0x20;
inline constexpr uint8_t kHasResult = 0x40;
inline constexpr uint8_t kHasPayload = 0x80;
inline constexpr uint8_t kNewShape = 0x80;  // in the shape byte: a shape declaration follows

// The tables both sides keep while going through one chunk; the encoder and the decoder update
// them with the same calls in the same order, so an index means the same entry to both.
struct ChunkState {
  struct Shape {
    uint16_t op, api, flags;
    int16_t device;
    uint32_t tid;
    uint64_t stream;
  };
  struct Address {
    uint64_t address, bytes;
  };
  Shape shapes[kShapes];
  Address addresses[kAddresses];
  uint64_t sizes[kSizes];
  uint32_t shape_count = 0;  // declared so far (the next one goes to shape_count % kShapes)
  uint32_t address_count = 0;
  uint32_t size_count = 0;
  uint64_t last_t = 0;
  uint64_t last_address = 0;

  void reset() {
    shape_count = address_count = size_count = 0;
    last_t = last_address = 0;
  }
  // After a record is coded: what the tables learn from it. `address_hit`: the address-table
  // entry its address was coded as (or -1); `bytes_mode`: how its size was coded (BytesMode).
  // Inline: it runs for every record coded or decoded.
  void learn(const Record& r, int address_hit, int bytes_mode) {
    learn(r.address, r.bytes, r.t_ns, address_hit, bytes_mode);
  }
  void learn(uint64_t address, uint64_t bytes, uint64_t t_ns, int address_hit, int bytes_mode) {
    if (address != 0) {
      if (address_hit >= 0) {
        addresses[address_hit].bytes = bytes;  // the allocation at that address now has this size
      } else {
        addresses[address_count % kAddresses] = {address, bytes};
        ++address_count;
      }
      last_address = address;
    }
    if (bytes_mode == kBytesLiteral) {
      sizes[size_count % kSizes] = bytes;
      ++size_count;
    }
    last_t = t_ns;
  }
};

// The chunk's checksum: the header's body_bytes and records words, then the body (docs).
uint32_t checksum(uint32_t body_bytes, uint32_t records, const uint8_t* body, size_t len);

// Encodes records into a caller's buffer; never allocates.
class ChunkEncoder {
 public:
  // Starts a chunk at `out` (room for `capacity` bytes, header included).
  void begin(uint8_t* out, size_t capacity);
  // Appends one record (its commit word is not stored: every record of a chunk is committed).
  // False, with nothing written, when it does not fit: finish() this chunk and begin another.
  bool add(const Record& r, std::string_view payload = {});
  // Writes the header; returns the chunk's size in bytes (header + body).
  size_t finish();
  uint32_t records() const { return count_; }
  size_t size() const { return at_; }  // bytes so far, header included

 private:
  ChunkState state_;
  uint8_t* out_ = nullptr;
  size_t capacity_ = 0;
  size_t at_ = 0;
  uint32_t count_ = 0;
};

// std::allocator that leaves what it constructs without arguments uninitialised: the decoder
// writes every byte of each record, so zeroing it first would only write it twice.
template <class T>
struct UninitializedAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <class U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// A decoded chunk: records (commit = kCommitted) and the payload of each blob.
struct DecodedChunk {
  std::vector<Record, UninitializedAllocator<Record>> records;
  // records.size() + 1 offsets into payloads; empty when no record of the chunk has a payload
  // (most chunks: then nothing is stored per record for payloads).
  std::vector<uint32_t> payload_begin;
  std::string payloads;
  std::string_view payload(size_t i) const {
    if (payload_begin.empty()) return {};
    return std::string_view(payloads).substr(payload_begin[i],
                                             payload_begin[i + 1] - payload_begin[i]);
  }
};

struct ChunkInfo {
  uint32_t body_bytes = 0;
  uint32_t records = 0;
  size_t size() const { return kChunkHeaderBytes + body_bytes; }
};

enum class ChunkCheck {
  ok,         // header sane, whole chunk present, checksum right
  short_,     // the chunk runs past `size`: cut off (or the header's length is damaged)
  bad_magic,  // not a chunk header
  damaged,    // impossible sizes or wrong checksum
};
// Checks the chunk at `data` (of which `size` bytes are readable) without decoding it.
ChunkCheck check_chunk(const uint8_t* data, size_t size, ChunkInfo* info);
// Decodes a checked chunk's body. False (out emptied) when the body does not decode to exactly
// `records` records using exactly `len` bytes: the chunk is damaged and yields no records.
bool decode_body(const uint8_t* body, size_t len, uint32_t records, DecodedChunk* out);
// check_chunk then decode_body.
bool decode_chunk(const uint8_t* data, size_t size, DecodedChunk* out, ChunkInfo* info);

}  // namespace gpumem::trace::compact
