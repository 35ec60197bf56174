// Protocol-2 pickle writer: only opcodes every Python 3 unpickler (and PyTorch's in-browser
// memory_viz unpickler) reads, and containers in the forms Python's own pickler writes (empty: no
// MARK; one item: APPEND/SETITEM; up to three in a tuple: TUPLE1..3). No memo: each value is
// written where it is.
#include <cstring>

#include "gpumem/formats/pickle.h"
#include "gpumem/visible_text.h"

namespace gpumem::formats {

namespace {
void put_le32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// The length of the well-formed UTF-8 sequence at s[i] (no overlong forms, no surrogates,
// nothing past U+10FFFF), 0 when the bytes there are not one.
size_t utf8_sequence(std::string_view s, size_t i) {
  return static_cast<uint8_t>(s[i]) < 0x80 ? 1 : visible_detail::utf8_length(s, i);
}

// Python reads a BINUNICODE as strict UTF-8: one bad byte and pickle.load refuses the whole
// snapshot. Names come from programs (marks, file and module names, Python frames cut to fit),
// so each byte that starts no well-formed sequence becomes U+FFFD.
std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  return out;
}
}  // namespace

PickleWriter::PickleWriter() {
  out_.push_back(static_cast<char>(0x80));  // PROTO
  out_.push_back(2);
}

void PickleWriter::value() {
  if (!open_.empty()) ++open_.back().items;
}

void PickleWriter::none() {
  value();
  out_.push_back('N');
}

void PickleWriter::boolean(bool v) {
  value();
  out_.push_back(static_cast<char>(v ? 0x88 : 0x89));
}

void PickleWriter::long1(const uint8_t* le, size_t n) {
  out_.push_back(static_cast<char>(0x8a));  // LONG1: n bytes of two's complement, little-endian
  out_.push_back(static_cast<char>(n));
  out_.append(reinterpret_cast<const char*>(le), n);
}

void PickleWriter::integer(int64_t v) {
  value();
  if (v >= 0 && v < 256) {
    out_.push_back('K');  // BININT1
    out_.push_back(static_cast<char>(v));
  } else if (v >= 0 && v < 65536) {
    out_.push_back('M');  // BININT2
    out_.push_back(static_cast<char>(v & 0xFF));
    out_.push_back(static_cast<char>(v >> 8));
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    out_.push_back('J');  // BININT: signed 32-bit
    put_le32(out_, static_cast<uint32_t>(static_cast<int32_t>(v)));
  } else {
    uint8_t le[8];
    for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(static_cast<uint64_t>(v) >> (8 * i));
    size_t n = 8;  // shortest form whose sign bit still says the sign
    while (n > 1 &&
           ((le[n - 1] == 0 && !(le[n - 2] & 0x80)) || (le[n - 1] == 0xFF && (le[n - 2] & 0x80))))
      --n;
    long1(le, n);
  }
}

void PickleWriter::unsigned_integer(uint64_t v) {
  if (v <= static_cast<uint64_t>(INT64_MAX)) return integer(static_cast<int64_t>(v));
  value();
  uint8_t le[9] = {};
  for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(v >> (8 * i));
  long1(le, 9);  // a ninth zero byte keeps it positive
}

void PickleWriter::floating(double v) {
  value();
  out_.push_back('G');  // BINFLOAT: big-endian IEEE 754 double
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

void PickleWriter::string(std::string_view utf8) {
  for (size_t i = 0, n; i < utf8.size(); i += n)
    if ((n = utf8_sequence(utf8, i)) == 0) return string(valid_utf8(utf8));
  value();
  out_.push_back('X');  // BINUNICODE: 4-byte length, UTF-8
  put_le32(out_, static_cast<uint32_t>(utf8.size()));
  out_.append(utf8.data(), utf8.size());
}

void PickleWriter::begin(char empty) {
  value();
  if (empty != 0) out_.push_back(empty);  // EMPTY_DICT / EMPTY_LIST, filled from a MARK
  open_.push_back({out_.size(), 0});
  out_.push_back('(');  // MARK, taken out again at end() where Python writes none
}

// Erasing a MARK moves the container's bytes once; containers nest a few levels deep, so each
// byte of the pickle moves at most a few times.
void PickleWriter::end(char one, char many) {
  const Open o = open_.back();
  open_.pop_back();
  if (one == 0 && o.items <= 3) {  // a tuple: EMPTY_TUPLE, TUPLE1..3
    out_.erase(o.mark, 1);
    out_.push_back(o.items == 0 ? ')' : static_cast<char>(0x84 + o.items));
  } else if (one != 0 && o.items == 0) {  // an empty dict or list: EMPTY_* alone
    out_.erase(o.mark, 1);
  } else if (one != 0 && o.items == (one == 's' ? 2u : 1u)) {  // SETITEM / APPEND
    out_.erase(o.mark, 1);
    out_.push_back(one);
  } else {
    out_.push_back(many);  // SETITEMS / APPENDS / TUPLE
  }
}

void PickleWriter::begin_dict() {
  begin('}');
}
void PickleWriter::end_dict() {
  end('s', 'u');
}
void PickleWriter::begin_list() {
  begin(']');
}
void PickleWriter::end_list() {
  end('a', 'e');
}
void PickleWriter::begin_tuple() {
  begin(0);
}
void PickleWriter::end_tuple() {
  end(0, 't');
}

std::string PickleWriter::finish() {
  out_.push_back('.');  // STOP
  return std::move(out_);
}

}  // namespace gpumem::formats
