// Byte sizes as people write and read them. Header-only and allocation-free, so the preload
// library's config parser, simcuda, the CLI and the reports all agree on "512MiB" and "1.5 GiB".
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gpumem {

enum class SizeParse { ok, empty, bad_number, bad_unit, overflow, percent };

// Parses "1048576", "512KiB", "512MiB", "8GiB", "1.5GiB", "2TiB" (also "KB/MB/GB", "K/M/G",
// case-insensitive, decimal units treated as binary as CUDA tools do) into bytes. "60%" yields
// SizeParse::percent with *percent = 60 (the caller applies it to a capacity).
inline SizeParse parse_size(const char* text, uint64_t* bytes, double* percent = nullptr) {
  if (text == nullptr) return SizeParse::empty;
  while (*text == ' ') ++text;
  if (*text == '\0') return SizeParse::empty;
  // Digits first: strtod would also take "0x10", "inf" and "nan", none of which is a size.
  if (!((*text >= '0' && *text <= '9') || *text == '.')) return SizeParse::bad_number;
  for (const char* c = text; *c != '\0'; ++c)
    if (*c == 'x' || *c == 'X') return SizeParse::bad_number;
  char* end = nullptr;
  double value = std::strtod(text, &end);
  if (end == text || !(value >= 0)) return SizeParse::bad_number;
  while (*end == ' ') ++end;
  if (*end == '%') {
    if (end[1] != '\0' || value <= 0 || value > 100) return SizeParse::bad_number;
    if (percent) *percent = value;
    return SizeParse::percent;
  }
  double scale = 1;
  char unit = static_cast<char>(*end | 0x20);
  if (*end == '\0') {
    scale = 1;
  } else {
    switch (unit) {
      case 'b':
        scale = 1;
        break;
      case 'k':
        scale = 1024.0;
        break;
      case 'm':
        scale = 1024.0 * 1024;
        break;
      case 'g':
        scale = 1024.0 * 1024 * 1024;
        break;
      case 't':
        scale = 1024.0 * 1024 * 1024 * 1024;
        break;
      default:
        return SizeParse::bad_unit;
    }
    const char* rest = end + 1;
    if (unit != 'b') {
      if ((*rest | 0x20) == 'i') ++rest;
      if ((*rest | 0x20) == 'b') ++rest;
    }
    if (*rest != '\0') return SizeParse::bad_unit;
  }
  double result = value * scale;
  if (result >= 18446744073709551615.0) return SizeParse::overflow;
  *bytes = static_cast<uint64_t>(result);
  return SizeParse::ok;
}

// The smallest block the gpumem pools hand out, and the step of every pool size
// (resources/block.h kBlockAlign): a fixed pool smaller than this holds nothing.
inline constexpr uint64_t kPoolGranuleBytes = 512;

// Larger than any device's memory (today's largest GPUs hold under 300 GB): a percentage that is
// under one byte even of this is under one byte of every device.
inline constexpr uint64_t kLargestPlausibleCapacity = uint64_t{64} << 40;  // 64 TiB

// `percent` % of `capacity`, in whole bytes (rounded down, as every limit is).
inline uint64_t percent_of(uint64_t capacity, double percent) {
  return static_cast<uint64_t>(static_cast<double>(capacity) * percent / 100.0);
}

// The rules for a memory limit wherever it is written (GPUMEM_LIMIT, GPUMEM_LIMIT_<n>,
// `gpumem run --limit`), before the device is known. Returns nullptr when `text` is a limit
// (*bytes set, or *percent for "60%"), else why not, as a phrase for "'X' is not valid: ...".
// `sizes_fixed_pool`: the limit is also the fixed pool's size (GPUMEM_POOL=fixed without
// GPUMEM_POOL_SIZE), so it must hold one pool granule.
inline const char* limit_problem(const char* text, bool sizes_fixed_pool, uint64_t* bytes,
                                 double* percent) {
  *bytes = 0;
  *percent = 0;
  switch (parse_size(text, bytes, percent)) {
    case SizeParse::ok:
      if (*bytes == 0) return "it is 0 bytes, a cap that refuses everything";
      if (sizes_fixed_pool && *bytes < kPoolGranuleBytes)
        return "it sizes the fixed pool, which needs at least 512 B (one pool block)";
      return nullptr;
    case SizeParse::percent:
      if (percent_of(kLargestPlausibleCapacity, *percent) == 0)
        return "it is under one byte of any device (even of 64 TiB)";
      return nullptr;
    default:
      return "it is not a size";
  }
}

// The same for a fixed pool's size (GPUMEM_POOL_SIZE): bytes only, at least one pool granule.
inline const char* pool_size_problem(const char* text, uint64_t* bytes) {
  *bytes = 0;
  if (parse_size(text, bytes) != SizeParse::ok) return "it is not a size in bytes";
  if (*bytes < kPoolGranuleBytes)
    return "it is below 512 B, the fixed pool's smallest block, so every allocation would fail";
  return nullptr;
}

// Formats bytes with a binary unit: "512 B", "1.50 KiB", "16.00 GiB". Returns buf.
inline const char* format_bytes(uint64_t bytes, char* buf, size_t len) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  if (u == 0)
    std::snprintf(buf, len, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, len, "%.2f %s", v, units[u]);
  return buf;
}

}  // namespace gpumem
