// LEB128 variable-length integers (7 bits a byte, low bits first, high bit = more follow) and
// zigzag for signed values: the compact chunk's byte primitives. Readers are bounds-checked.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gpumem::trace::compact {

inline uint64_t zigzag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t unzigzag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// Writes v at p (at most 10 bytes); returns the byte after it.
inline uint8_t* put_varint(uint8_t* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<uint8_t>(v);
  return p;
}

inline size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, ++n;
  return n;
}

// Reads from a bounded byte range; any read past its end, or a number longer than 64 bits,
// leaves ok() false and reads as 0 from then on.
class ByteReader {
 public:
  ByteReader(const uint8_t* p, size_t len) : p_(p), end_(p + len) {}
  uint8_t byte() {
    if (p_ >= end_) return fail();
    return *p_++;
  }
  uint64_t varint() {
    // With room for the longest number left, no byte needs its own bounds check.
    if (end_ - p_ >= 10) {
      uint64_t b = *p_++;
      if (b < 0x80) return b;  // most numbers in a chunk take one byte
      uint64_t v = b & 0x7F;
      for (int shift = 7; shift < 63; shift += 7) {
        b = *p_++;
        v |= (b & 0x7F) << shift;
        if (b < 0x80) return v;
      }
      b = *p_++;  // the tenth byte may carry only the top bit of a 64-bit value
      if (b > 1) return fail();
      return v | b << 63;
    }
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) return fail();
      const uint8_t b = *p_++;
      // The tenth byte may carry only the top bit of a 64-bit value.
      if (shift == 63 && b > 1) return fail();
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return fail();
  }
  // n bytes in place, or nullptr when fewer remain.
  const uint8_t* take(uint64_t n) {
    if (!ok_ || n > static_cast<uint64_t>(end_ - p_)) return fail(), nullptr;
    const uint8_t* at = p_;
    p_ += n;
    return at;
  }
  bool ok() const { return ok_; }
  bool at_end() const { return p_ == end_; }

 private:
  uint8_t fail() {
    ok_ = false;
    p_ = end_;
    return 0;
  }
  const uint8_t* p_;
  const uint8_t* end_;
  bool ok_ = true;
};

}  // namespace gpumem::trace::compact
