// Text that came from outside (a trace's phase names, command line, host, device names, paths,
// call-site symbols; an environment value) shown on a terminal or in a one-line message: every
// control character becomes a visible escape, so no string can clear the screen, move the cursor,
// overwrite a line or split one message into two. The one helper for every text output and log
// line (`gpumem dump` writes JSON, whose own escaping does the same).
//
// Escaped: C0 controls (\t \n \r as such, the rest as \xNN), DEL, the C1 controls U+0080..U+009F
// (their UTF-8 bytes, as \xC2\xNN), and every byte that is not part of valid UTF-8 (\xNN, so a
// lone 0x9B, the 8-bit CSI, never reaches the terminal raw). Other UTF-8 passes unchanged.
// Header-only; put_visible allocates nothing, so the preload library's log can use it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace gpumem {

namespace visible_detail {

// Length of the valid UTF-8 sequence starting at text[i] (2..4), or 0 when it is not one.
inline size_t utf8_length(std::string_view text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(i);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range allowed for the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    n = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    n = 3;
    if (lead == 0xE0) lo = 0xA0;  // overlong
    if (lead == 0xED) hi = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    n = 4;
    if (lead == 0xF0) lo = 0x90;  // overlong
    if (lead == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return n;
}

template <class Put>
void put_hex(unsigned char c, Put& put) {
  static constexpr char kDigits[] = "0123456789abcdef";
  put('\\');
  put('x');
  put(kDigits[c >> 4]);
  put(kDigits[c & 0xF]);
}

}  // namespace visible_detail

// Calls put(char) for each output character of `text` made visible (see above).
template <class Put>
void put_visible(std::string_view text, Put&& put) {
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) {
      put(static_cast<char>(c));
      ++i;
    } else if (c == '\t' || c == '\n' || c == '\r') {
      put('\\');
      put(c == '\t' ? 't' : c == '\n' ? 'n' : 'r');
      ++i;
    } else if (c < 0x80) {  // the other C0 controls and DEL
      visible_detail::put_hex(c, put);
      ++i;
    } else if (const size_t n = visible_detail::utf8_length(text, i); n == 0) {
      visible_detail::put_hex(c, put);  // not UTF-8: a raw byte, maybe an 8-bit control
      ++i;
    } else if (c == 0xC2 && static_cast<unsigned char>(text[i + 1]) < 0xA0) {
      visible_detail::put_hex(c, put);  // a C1 control, U+0080..U+009F
      visible_detail::put_hex(static_cast<unsigned char>(text[i + 1]), put);
      i += 2;
    } else {
      for (size_t k = 0; k < n; ++k) put(text[i + k]);
      i += n;
    }
  }
}

// `text` with every control character made visible.
inline std::string visible(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  put_visible(text, [&out](char c) { out += c; });
  return out;
}

}  // namespace gpumem
