// The compact chunk codec (gpumem/trace/compact.h): every op and field round-trips exactly, random
// streams round-trip across chunk boundaries, and damaged or cut chunks never crash the decoder
// and never yield a record that was not encoded.
#include "gpumem/trace/compact.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "varint.h"

namespace gpumem::test {
namespace {

using trace::Op;
using trace::Record;
namespace compact = trace::compact;

struct Item {
  Record rec;
  std::string payload;
};

bool same(const Record& a, const Record& b) {
  Record x = a, y = b;
  x.commit = y.commit = trace::kCommitted;
  return std::memcmp(&x, &y, sizeof(Record)) == 0;
}

// Encodes items into as many chunks as `chunk_bytes` allows; returns the chunks.
std::vector<std::vector<uint8_t>> encode(const std::vector<Item>& items, size_t chunk_bytes) {
  std::vector<std::vector<uint8_t>> chunks;
  std::vector<uint8_t> buf(chunk_bytes);
  compact::ChunkEncoder enc;
  enc.begin(buf.data(), buf.size());
  for (const Item& it : items) {
    if (!enc.add(it.rec, it.payload)) {
      EXPECT_GT(enc.records(), 0u) << "an empty chunk always takes one record";
      chunks.emplace_back(buf.begin(), buf.begin() + static_cast<long>(enc.finish()));
      enc.begin(buf.data(), buf.size());
      EXPECT_TRUE(enc.add(it.rec, it.payload));
    }
  }
  chunks.emplace_back(buf.begin(), buf.begin() + static_cast<long>(enc.finish()));
  return chunks;
}

std::vector<Item> decode_all(const std::vector<std::vector<uint8_t>>& chunks) {
  std::vector<Item> out;
  compact::DecodedChunk d;
  for (const auto& c : chunks) {
    compact::ChunkInfo info;
    EXPECT_TRUE(compact::decode_chunk(c.data(), c.size(), &d, &info));
    EXPECT_EQ(info.size(), c.size());
    for (size_t i = 0; i < d.records.size(); ++i) {
      EXPECT_EQ(d.records[i].commit, trace::kCommitted);
      out.push_back({d.records[i], std::string(d.payload(i))});
    }
  }
  return out;
}

void expect_round_trip(const std::vector<Item>& items, size_t chunk_bytes = 1 << 20) {
  const std::vector<Item> back = decode_all(encode(items, chunk_bytes));
  ASSERT_EQ(back.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_TRUE(same(back[i].rec, items[i].rec)) << "record " << i;
    EXPECT_EQ(back[i].payload, items[i].payload) << "record " << i;
  }
}

Record rec(Op op, uint64_t t, uint64_t address, uint64_t bytes) {
  Record r{};
  r.op = static_cast<uint16_t>(op);
  r.api = static_cast<uint16_t>(trace::Api::cudaMalloc);
  r.t_ns = t;
  r.address = address;
  r.bytes = bytes;
  r.tid = 4242;
  r.commit = trace::kCommitted;
  return r;
}

// A tensor-like stream: a few threads and streams, sizes from a small set of shapes, frees of
// live allocations in random order, addresses reused as a caching allocator does.
std::vector<Item> tensor_stream(uint32_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  const uint64_t sizes[] = {512, 4096, 1 << 20, 3 << 20, 12582912, 2048 * 768 * 4, 768 * 4};
  std::vector<std::pair<uint64_t, uint64_t>> live;
  std::vector<uint64_t> free_addresses;
  uint64_t next = 0x7f0000000000ull, t = 1'000'000'000;
  std::vector<Item> items;
  while (items.size() < n) {
    t += 200 + rng() % 5000;
    const bool alloc = live.empty() || (live.size() < 400 && rng() % 2 == 0);
    Record r = rec(alloc ? Op::alloc : Op::free, t, 0, 0);
    r.tid = 100 + static_cast<uint32_t>(rng() % 3);
    r.stream = rng() % 4 == 0 ? 0x5555000 : 0;
    r.api = static_cast<uint16_t>(alloc ? trace::Api::cudaMallocAsync : trace::Api::cudaFreeAsync);
    r.flags = trace::kFlagAsync | trace::kFlagPooled;
    r.site = static_cast<uint32_t>(1 + rng() % 40);
    if (alloc) {
      r.bytes = sizes[rng() % std::size(sizes)];
      if (!free_addresses.empty() && rng() % 4 != 0) {
        r.address = free_addresses.back();
        free_addresses.pop_back();
      } else {
        r.address = next;
        next += (r.bytes + 511) & ~511ull;
      }
      live.emplace_back(r.address, r.bytes);
    } else {
      const size_t i = rng() % live.size();
      r.address = live[i].first;
      r.bytes = live[i].second;
      free_addresses.push_back(r.address);
      live[i] = live.back();
      live.pop_back();
    }
    items.push_back({r, {}});
  }
  return items;
}

TEST(TraceCompact, EveryOpAndEveryFieldRoundTripsExactly) {
  std::vector<Item> items;
  uint64_t t = 5;
  for (uint16_t op = 0; op <= static_cast<uint16_t>(Op::oom) + 3; ++op) {  // unknown ops too
    Record r = rec(static_cast<Op>(op), t += 17, 0x7f00'0000'0000ull + op * 4096, op * 1000ull);
    r.stream = 0xdead0000ull + op;
    r.aux = op % 2 ? std::numeric_limits<uint64_t>::max() - op : op;
    r.site = op % 3 ? 0xFFFFFFFFu : op;
    r.result = op % 2 ? std::numeric_limits<int32_t>::min() + op : std::numeric_limits<int32_t>::max();
    r.api = static_cast<uint16_t>(op % static_cast<uint16_t>(trace::Api::count));
    r.device = static_cast<int16_t>(op % 2 ? -1 : std::numeric_limits<int16_t>::max());
    r.flags = static_cast<uint16_t>(0xFFFF - op);
    r.tid = 0xFFFFFFF0u + op % 16;
    std::string payload;
    if (op == static_cast<uint16_t>(Op::string)) payload = "a phase name";
    if (op == static_cast<uint16_t>(Op::stack)) payload = std::string("\x01\x02\0\0\0\0\0\x80", 8);
    items.push_back({r, payload});
  }
  // Extremes: every field at its smallest and largest, time going backwards and jumping.
  Record lo{}, hi{};
  lo.op = 1;
  std::memset(&hi, 0xFF, sizeof hi);
  Record mid = hi;
  mid.device = std::numeric_limits<int16_t>::min();
  mid.result = std::numeric_limits<int32_t>::min();
  mid.t_ns = 0;
  mid.address = 1;
  items.push_back({lo, {}});
  items.push_back({hi, std::string(70000, 'x')});
  items.push_back({mid, {}});
  items.push_back({lo, {}});
  expect_round_trip(items);
}

// ByteReader::varint skips the bounds check of each byte while ten bytes remain and checks each
// one near the end. On both paths, every length, the values at each length's bounds, and damaged
// numbers (too long, cut, a tenth byte over 1) must read as a reader that checks every byte reads
// them: the same value, to the same place, with the same failure. The oracle is written out here
// on purpose, not taken from varint.h, so that a bug shared by the reader's two paths shows.
struct ByteAtATime {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;
  uint64_t fail() {
    ok = false;
    p = end;
    return 0;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) return fail();
      const uint8_t b = *p++;
      if (shift == 63 && b > 1) return fail();
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return fail();
  }
};

void expect_reads_alike(const std::vector<uint8_t>& bytes, int numbers) {
  compact::ByteReader fast(bytes.data(), bytes.size());
  ByteAtATime slow{bytes.data(), bytes.data() + bytes.size()};
  for (int k = 0; k < numbers; ++k) {
    const uint64_t a = fast.varint(), b = slow.varint();
    ASSERT_EQ(a, b) << "number " << k;
    ASSERT_EQ(fast.ok(), slow.ok) << "number " << k;
    ASSERT_EQ(fast.at_end(), slow.p == slow.end) << "number " << k;
  }
}

TEST(TraceCompact, VarintsReadAsAByteAtATimeReadsThem) {
  std::vector<uint8_t> bytes;
  std::vector<uint64_t> values = {0, UINT64_MAX};
  for (int bits = 1; bits < 64; ++bits) {  // each length's bounds: 2^(7k) - 1, 2^(7k), ...
    values.push_back((uint64_t{1} << bits) - 1);
    values.push_back(uint64_t{1} << bits);
  }
  for (const uint64_t v : values) {
    uint8_t tmp[10];
    bytes.insert(bytes.end(), tmp, compact::put_varint(tmp, v));
  }
  expect_reads_alike(bytes, static_cast<int>(values.size()) + 1);  // one past the end: fails
  {
    compact::ByteReader r(bytes.data(), bytes.size());
    for (const uint64_t v : values) ASSERT_EQ(r.varint(), v);
    EXPECT_TRUE(r.at_end());
  }
  std::mt19937_64 rng(23);
  for (int t = 0; t < 100000; ++t) {  // mostly continuation bits: long, cut and damaged numbers
    std::vector<uint8_t> g(1 + rng() % 24);
    for (uint8_t& c : g) c = static_cast<uint8_t>(rng() | (rng() % 5 != 0 ? 0x80 : 0));
    expect_reads_alike(g, 6);
  }
}

TEST(TraceCompact, AFreeNamesItsAllocationInTwoBytesPlusItsTimeDelta) {
  compact::ChunkEncoder enc;
  std::vector<uint8_t> buf(4096);
  enc.begin(buf.data(), buf.size());
  ASSERT_TRUE(enc.add(rec(Op::alloc, 1000, 0x7f0000001000, 1 << 20)));
  const size_t before = enc.size();
  Record f = rec(Op::free, 1100, 0x7f0000001000, 1 << 20);
  ASSERT_TRUE(enc.add(f));
  // A new shape (op free: 2 + 7 bytes of declaration), time delta 100 (2 bytes), address index
  // (1 byte), the size of the allocation it names (0 bytes).
  EXPECT_EQ(enc.size() - before, 2u + 7u + 2u + 1u);
  const size_t second = enc.size();
  f.t_ns = 1200;
  ASSERT_TRUE(enc.add(f));
  EXPECT_EQ(enc.size() - second, 2u + 2u + 1u) << "a known shape costs one byte";
}

TEST(TraceCompact, RandomStreamsRoundTripAcrossChunkBoundaries) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    std::vector<Item> items = tensor_stream(seed, 5000);
    std::mt19937_64 rng(seed * 7919);
    for (Item& it : items) {  // and some records with random fields
      if (rng() % 16 != 0) continue;
      it.rec.aux = rng();
      it.rec.result = static_cast<int32_t>(rng());
      it.rec.device = static_cast<int16_t>(rng());
      it.rec.t_ns = rng();
    }
    SCOPED_TRACE(seed);
    expect_round_trip(items, 4096);  // many small chunks
    expect_round_trip(items);        // one big chunk
  }
}

TEST(TraceCompact, ManyShapesWrapTheShapeTable) {
  std::vector<Item> items;
  for (uint32_t i = 0; i < 1000; ++i) {
    Record r = rec(Op::alloc, i, 0x1000 + i * 64, 64);
    r.tid = i % 300;  // 300 shapes through a 128-entry ring, revisited
    items.push_back({r, {}});
  }
  expect_round_trip(items);
}

TEST(TraceCompact, TypicalTensorStreamTakesAtMostTwelveBytesPerEvent) {
  const std::vector<Item> items = tensor_stream(42, 20000);
  size_t bytes = 0;
  for (const auto& c : encode(items, 256 * 1024)) bytes += c.size();
  const double per_event = static_cast<double>(bytes) / static_cast<double>(items.size());
  EXPECT_LE(per_event, 12.0);
  EXPECT_GT(per_event, 2.0) << "sanity: the time, address and site cost something";
}

TEST(TraceCompact, AFullBufferRefusesTheRecordAndWritesNothing) {
  std::vector<uint8_t> buf(compact::kChunkHeaderBytes + compact::kMaxRecordBytes + 10, 0xAB);
  compact::ChunkEncoder enc;
  enc.begin(buf.data(), buf.size());
  ASSERT_TRUE(enc.add(rec(Op::alloc, 1, 0x1000, 8)));
  const size_t used = enc.size();
  EXPECT_FALSE(enc.add(rec(Op::alloc, 2, 0x2000, 8)));
  EXPECT_EQ(enc.size(), used);
  EXPECT_EQ(buf[used], 0xAB);
  EXPECT_FALSE(enc.add(rec(Op::string, 3, 1, 5000), std::string(5000, 's')));
  EXPECT_EQ(enc.finish(), used);
  compact::DecodedChunk d;
  ASSERT_TRUE(compact::decode_chunk(buf.data(), used, &d, nullptr));
  EXPECT_EQ(d.records.size(), 1u);
}

TEST(TraceCompact, EveryCutOfAChunkIsShortAndYieldsNothing) {
  const auto chunks = encode(tensor_stream(3, 300), 1 << 20);
  ASSERT_EQ(chunks.size(), 1u);
  const std::vector<uint8_t>& c = chunks[0];
  compact::DecodedChunk d;
  for (size_t len = 0; len < c.size(); ++len) {
    std::vector<uint8_t> cut(c.begin(), c.begin() + static_cast<long>(len));  // exact size: ASan sees overreads
    EXPECT_EQ(compact::check_chunk(cut.data(), cut.size(), nullptr), compact::ChunkCheck::short_)
        << len;
    EXPECT_FALSE(compact::decode_chunk(cut.data(), cut.size(), &d, nullptr));
    EXPECT_TRUE(d.records.empty());
  }
}

TEST(TraceCompact, EveryFlippedByteIsDetectedAndYieldsNothing) {
  const auto chunks = encode(tensor_stream(4, 200), 1 << 20);
  const std::vector<uint8_t>& c = chunks[0];
  compact::DecodedChunk d;
  for (size_t i = 0; i < c.size(); ++i) {
    for (uint8_t flip : {0x01, 0x80, 0xFF}) {
      std::vector<uint8_t> bad = c;
      bad[i] ^= flip;
      const compact::ChunkCheck check = compact::check_chunk(bad.data(), bad.size(), nullptr);
      EXPECT_NE(check, compact::ChunkCheck::ok) << "byte " << i;
      EXPECT_FALSE(compact::decode_chunk(bad.data(), bad.size(), &d, nullptr));
      EXPECT_TRUE(d.records.empty());
    }
  }
  EXPECT_EQ(compact::check_chunk(c.data(), c.size(), nullptr), compact::ChunkCheck::ok);
}

TEST(TraceCompact, DamagedBodiesPastTheChecksumDecodeExactlyOrNotAtAll) {
  // The checksum aside: a body altered at random either decodes to exactly the count it was
  // given or yields nothing, and never reads outside itself (ASan in CI).
  const auto chunks = encode(tensor_stream(5, 400), 1 << 20);
  const std::vector<uint8_t>& c = chunks[0];
  compact::ChunkInfo info;
  ASSERT_EQ(compact::check_chunk(c.data(), c.size(), &info), compact::ChunkCheck::ok);
  std::mt19937_64 rng(11);
  compact::DecodedChunk d;
  size_t decoded = 0;
  for (int round = 0; round < 3000; ++round) {
    std::vector<uint8_t> body(c.begin() + compact::kChunkHeaderBytes, c.end());
    for (int k = 0; k < 1 + round % 4; ++k) body[rng() % body.size()] = static_cast<uint8_t>(rng());
    const uint32_t count = round % 5 == 0 ? static_cast<uint32_t>(rng() % 1000) : info.records;
    const size_t len = round % 7 == 0 ? rng() % body.size() : body.size();
    std::vector<uint8_t> exact(body.begin(), body.begin() + static_cast<long>(len));
    if (compact::decode_body(exact.data(), exact.size(), count, &d)) {
      EXPECT_EQ(d.records.size(), count);
      // Offsets for every record and one past the last, or none when no record has a payload.
      EXPECT_TRUE(d.payload_begin.empty() ? d.payloads.empty() : d.payload_begin.size() == count + 1u);
      ++decoded;
    } else {
      EXPECT_TRUE(d.records.empty());
    }
  }
  EXPECT_LT(decoded, 3000u);
  // A header whose count the body could not hold is refused before anything is allocated.
  std::vector<uint8_t> lie = c;
  const uint32_t huge = 0xFFFFFFFFu;
  std::memcpy(lie.data() + 8, &huge, 4);
  EXPECT_EQ(compact::check_chunk(lie.data(), lie.size(), nullptr), compact::ChunkCheck::damaged);
  std::memcpy(lie.data(), "XXXX", 4);
  EXPECT_EQ(compact::check_chunk(lie.data(), lie.size(), nullptr), compact::ChunkCheck::bad_magic);
}

}  // namespace
}  // namespace gpumem::test
