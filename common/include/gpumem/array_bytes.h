// The bytes a CUDA array or mipmapped array holds, by the size formula its descriptor gives:
// width x height x depth texels of the format's size (block-compressed formats: 4x4 blocks),
// summed over mip levels (their count clamped as CUDA clamps it: clamp_levels). The driver
// offers no size query for an ordinary array (cuArrayGetMemoryRequirements answers only for
// CUDA_ARRAY3D_DEFERRED_MAPPING arrays), so the preload records this figure and simcuda charges
// it: the two agree by construction. A real driver adds tiling and alignment on top
// (docs/interception.md, "CUDA arrays"). Sizes past 64 bits saturate at UINT64_MAX.
// Header-only and CUDA-free: formats are the numeric values of CUarray_format and
// cudaChannelFormatKind (cuda.h, driver_types.h of CUDA 13).
#pragma once

#include <cstdint>

namespace gpumem::arrays {

// A texel's size: bits per texel, or, for block-compressed formats, bytes per 4x4 block.
// Both 0: a format this table does not know. 64-bit, so that a channel description's sum of
// bit counts (four ints) never wraps.
struct Texel {
  uint64_t bits = 0;
  uint32_t block_bytes = 0;
  constexpr bool known() const { return bits != 0 || block_bytes != 0; }
};

// CUarray_format + NumChannels (cuArrayCreate, cuArray3DCreate, cuMipmappedArrayCreate).
constexpr Texel driver_texel(unsigned format, unsigned channels) {
  const bool counted = channels == 1 || channels == 2 || channels == 4;
  switch (format) {
    case 0x01: case 0x08: return counted ? Texel{8 * channels, 0} : Texel{};  // (UN)SIGNED_INT8
    case 0x02: case 0x09: case 0x10:  // (UN)SIGNED_INT16, HALF
      return counted ? Texel{16 * channels, 0} : Texel{};
    case 0x03: case 0x0a: case 0x20:  // (UN)SIGNED_INT32, FLOAT
      return counted ? Texel{32 * channels, 0} : Texel{};
    default: break;
  }
  switch (format) {  // the format names its channels; NumChannels does not change the size
    case 0xc0: case 0xc6: return {8, 0};            // UNORM/SNORM_INT8X1
    case 0xc1: case 0xc7: case 0xc3: case 0xc9: return {16, 0};  // INT8X2, INT16X1
    case 0xc2: case 0xc8: case 0xc4: case 0xca: return {32, 0};  // INT8X4, INT16X2
    case 0xc5: case 0xcb: return {64, 0};           // INT16X4
    case 0x91: case 0x92: case 0x97: case 0x98: return {0, 8};   // BC1, BC4
    case 0x93: case 0x94: case 0x95: case 0x96: case 0x99: case 0x9a: case 0x9b: case 0x9c:
    case 0x9d: case 0x9e: return {0, 16};           // BC2, BC3, BC5, BC6H, BC7
    case 0xb0: return {12, 0};                       // NV12 (8-bit 4:2:0)
    case 0x9f: case 0xa1: return {24, 0};            // P010, P016 (16-bit 4:2:0)
    case 0xa2: case 0xa5: return {16, 0};            // NV16, YUY2 (8-bit 4:2:2)
    case 0xa3: case 0xa4: case 0xa6: case 0xa7: return {32, 0};  // P210, P216, Y210, Y216
    case 0xa8: case 0xa9: case 0x50: return {32, 0};  // AYUV, Y410, UNORM_INT_101010_2
    case 0xb1: return {64, 0};                       // Y416
    case 0xb2: case 0xb4: return {24, 0};            // Y444_PLANAR8, YUV444 8-bit semi-planar
    case 0xb3: case 0xb5: return {48, 0};            // Y444_PLANAR10, YUV444 16-bit semi-planar
    default: return {};
  }
}

// cudaChannelFormatDesc {x, y, z, w, kind} (cudaMallocArray, cudaMalloc3DArray,
// cudaMallocMipmappedArray).
constexpr Texel runtime_texel(int x, int y, int z, int w, int kind) {
  if (x < 0 || y < 0 || z < 0 || w < 0) return {};
  // In 64 bits: four ints up to INT_MAX sum below 2^33 (the int sum would overflow, UB).
  const uint64_t bits = static_cast<uint64_t>(x) + static_cast<uint64_t>(y) +
                        static_cast<uint64_t>(z) + static_cast<uint64_t>(w);
  switch (kind) {
    case 0: case 1: case 2: return bits != 0 && bits % 8 == 0 ? Texel{bits, 0} : Texel{};
    case 4: return {12, 0};                                   // NV12
    case 5: case 11: return {8, 0};                           // (S|U)Normalized8X1
    case 6: case 12: case 8: case 14: return {16, 0};         // 8X2, 16X1
    case 7: case 13: case 9: case 15: case 31: return {32, 0};  // 8X4, 16X2, 1010102
    case 10: case 16: return {64, 0};                         // 16X4
    case 17: case 18: case 23: case 24: return {0, 8};        // BC1, BC4
    default: return kind >= 19 && kind <= 30 ? Texel{0, 16} : Texel{};  // BC2/3/5/6H/7
  }
}

// a * b, saturated at UINT64_MAX (zero times anything is zero): a product that wraps would
// record a huge array as a few bytes, and let it pass a limit.
constexpr uint64_t mul(uint64_t a, uint64_t b) {
  uint64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

// ceil(v / n) without v + n - 1, which wraps for v near UINT64_MAX.
constexpr uint64_t ceil_div(uint64_t v, uint64_t n) {
  return v / n + (v % n != 0 ? 1 : 0);
}

// One level of width x height x depth (0 = that dimension is absent, i.e. 1). UINT64_MAX when
// the size does not fit in 64 bits.
constexpr uint64_t level_bytes(Texel t, uint64_t width, uint64_t height, uint64_t depth) {
  const uint64_t h = height == 0 ? 1 : height, d = depth == 0 ? 1 : depth;
  if (t.block_bytes != 0)
    return mul(mul(mul(ceil_div(width, 4), ceil_div(h, 4)), d), t.block_bytes);
  const uint64_t bits = mul(mul(mul(width, h), d), t.bits);
  return bits == UINT64_MAX ? UINT64_MAX : ceil_div(bits, 8);
}

// The most mip levels an extent has: 1 + floor(log2(largest dimension)), 0 for no extent.
constexpr unsigned max_levels(uint64_t width, uint64_t height, uint64_t depth) {
  uint64_t m = width > height ? width : height;
  if (depth > m) m = depth;
  unsigned n = 0;
  while (m != 0) {
    ++n;
    m >>= 1;
  }
  return n;
}

// The levels CUDA allocates for `levels` asked: cudaMallocMipmappedArray and
// cuMipmappedArrayCreate document that the count "is clamped to the range
// [1, 1 + floor(log2(max(width, height, depth)))]", so 0 is one level and too many is the
// extent's maximum. The depth of a layered or cubemap array counts layers or faces, which are
// not mipmapped: only width and height give its maximum. At least 1 (a zero extent too).
constexpr unsigned clamp_levels(unsigned levels, uint64_t width, uint64_t height, uint64_t depth,
                                bool depth_is_layers = false) {
  unsigned most = max_levels(width, height, depth_is_layers ? 0 : depth);
  if (most == 0) most = 1;
  return levels == 0 ? 1 : levels > most ? most : levels;
}

// The whole array: `levels` mip levels (1 for a plain array), clamped as CUDA clamps them
// (clamp_levels), each dimension halved per level and at least 1; layered and cubemap arrays
// keep their depth (it counts layers or faces). UINT64_MAX when the size does not fit in 64 bits.
constexpr uint64_t array_bytes(Texel t, uint64_t width, uint64_t height, uint64_t depth,
                               unsigned levels = 1, bool depth_is_layers = false) {
  const unsigned n = clamp_levels(levels, width, height, depth, depth_is_layers);
  uint64_t total = 0;
  for (unsigned l = 0; l < n; ++l) {
    auto halve = [l](uint64_t v) { return v == 0 ? 0 : (v >> l) == 0 ? 1 : v >> l; };
    const uint64_t b = level_bytes(t, halve(width), halve(height),
                                   depth_is_layers ? depth : halve(depth));
    if (b == UINT64_MAX || __builtin_add_overflow(total, b, &total)) return UINT64_MAX;
  }
  return total;
}

}  // namespace gpumem::arrays
