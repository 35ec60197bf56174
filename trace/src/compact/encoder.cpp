// Encoding records into a compact chunk (format: gpumem/trace/compact.h, docs/trace-format.md).
#include <cstring>

#include "gpumem/trace/compact.h"
#include "varint.h"

namespace gpumem::trace::compact {
namespace {

bool same_shape(const ChunkState::Shape& s, const Record& r) {
  return s.op == r.op && s.api == r.api && s.flags == r.flags && s.device == r.device &&
         s.tid == r.tid && s.stream == r.stream;
}

void put_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

}  // namespace

void ChunkEncoder::begin(uint8_t* out, size_t capacity) {
  state_.reset();
  out_ = out;
  capacity_ = capacity;
  at_ = kChunkHeaderBytes;
  count_ = 0;
}

bool ChunkEncoder::add(const Record& r, std::string_view payload) {
  if (out_ == nullptr || capacity_ < at_ || capacity_ - at_ < kMaxRecordBytes ||
      capacity_ - at_ - kMaxRecordBytes < payload.size() || count_ >= kMaxChunkRecords ||
      at_ - kChunkHeaderBytes + kMaxRecordBytes + payload.size() > kMaxBodyBytes)
    return false;
  ChunkState& s = state_;
  uint8_t* p = out_ + at_;

  // Shape: the last one declared is the likeliest, then the rest of the table.
  const uint32_t declared = s.shape_count < kShapes ? s.shape_count : kShapes;
  int shape = -1;
  if (s.shape_count > 0) {
    const uint32_t last = (s.shape_count - 1) % kShapes;
    if (same_shape(s.shapes[last], r)) shape = static_cast<int>(last);
  }
  for (uint32_t i = 0; shape < 0 && i < declared; ++i)
    if (same_shape(s.shapes[i], r)) shape = static_cast<int>(i);

  // Address: an entry of the table (an allocation's, for its free), else the shorter of a delta
  // from the last address and the number itself.
  int address_hit = -1;
  uint8_t mode = kAddrZero;
  if (r.address != 0) {
    const uint32_t known = s.address_count < kAddresses ? s.address_count : kAddresses;
    for (uint32_t i = 0; i < known; ++i)
      if (s.addresses[i].address == r.address) {
        address_hit = static_cast<int>(i);
        break;
      }
    if (address_hit >= 0)
      mode = kAddrTable;
    else
      mode = varint_size(zigzag(static_cast<int64_t>(r.address - s.last_address))) <=
                     varint_size(r.address)
                 ? kAddrDelta
                 : kAddrLiteral;
  }
  // Size: the size of the allocation the address names, a recent size, or the number.
  int size_hit = -1;
  uint8_t bytes_mode = kBytesZero;
  if (r.bytes != 0) {
    if (address_hit >= 0 && s.addresses[address_hit].bytes == r.bytes) {
      bytes_mode = kBytesOfAddress;
    } else {
      const uint32_t known = s.size_count < kSizes ? s.size_count : kSizes;
      for (uint32_t i = 0; i < known; ++i)
        if (s.sizes[i] == r.bytes) {
          size_hit = static_cast<int>(i);
          break;
        }
      bytes_mode = size_hit >= 0 ? kBytesTable : kBytesLiteral;
    }
  }
  mode |= static_cast<uint8_t>(bytes_mode << 2);
  if (r.aux != 0) mode |= kHasAux;
  if (r.site != 0) mode |= kHasSite;
  if (r.result != 0) mode |= kHasResult;
  if (!payload.empty()) mode |= kHasPayload;

  if (shape >= 0) {
    *p++ = static_cast<uint8_t>(shape);
  } else {
    *p++ = kNewShape;
  }
  *p++ = mode;
  if (shape < 0) {
    p = put_varint(p, r.op);
    p = put_varint(p, r.api);
    p = put_varint(p, zigzag(r.device));
    p = put_varint(p, r.flags);
    p = put_varint(p, r.tid);
    p = put_varint(p, r.stream);
    s.shapes[s.shape_count % kShapes] = {r.op, r.api, r.flags, r.device, r.tid, r.stream};
    ++s.shape_count;
  }
  p = put_varint(p, zigzag(static_cast<int64_t>(r.t_ns - s.last_t)));
  switch (mode & 3) {
    case kAddrTable: *p++ = static_cast<uint8_t>(address_hit); break;
    case kAddrDelta: p = put_varint(p, zigzag(static_cast<int64_t>(r.address - s.last_address))); break;
    case kAddrLiteral: p = put_varint(p, r.address); break;
    default: break;
  }
  if (bytes_mode == kBytesTable) *p++ = static_cast<uint8_t>(size_hit);
  if (bytes_mode == kBytesLiteral) p = put_varint(p, r.bytes);
  if (r.aux != 0) p = put_varint(p, r.aux);
  if (r.site != 0) p = put_varint(p, r.site);
  if (r.result != 0) p = put_varint(p, zigzag(r.result));
  if (!payload.empty()) {
    p = put_varint(p, payload.size());
    std::memcpy(p, payload.data(), payload.size());
    p += payload.size();
  }
  s.learn(r, address_hit, bytes_mode);
  at_ = static_cast<size_t>(p - out_);
  ++count_;
  return true;
}

size_t ChunkEncoder::finish() {
  if (out_ == nullptr) return 0;
  const uint32_t body = static_cast<uint32_t>(at_ - kChunkHeaderBytes);
  put_u32(out_, kChunkMagic);
  put_u32(out_ + 4, body);
  put_u32(out_ + 8, count_);
  put_u32(out_ + 12, checksum(body, count_, out_ + kChunkHeaderBytes, body));
  return at_;
}

}  // namespace gpumem::trace::compact
