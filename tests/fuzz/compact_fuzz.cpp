// libFuzzer target: the compact chunk codec (gpumem/trace/compact.h) must give back every record
// it took, field for field, whatever the fields hold. The input is a stream of records (64 bytes
// each, taken as they are: any op, time, address, size, device, flags), a blob's payload after
// it (up to 255 bytes, its length in the byte before); the first byte picks the chunk size. The
// records are encoded into as many chunks as that size needs, each chunk decoded, and every
// record and payload compared with what went in.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gpumem/trace/compact.h"

namespace {

using gpumem::trace::Record;
namespace compact = gpumem::trace::compact;

struct Item {
  Record rec;
  std::string payload;
};

bool same(const Record& a, const Record& b) {
  Record x = a, y = b;
  x.commit = y.commit = gpumem::trace::kCommitted;  // not stored: every record of a chunk is
  return std::memcmp(&x, &y, sizeof(Record)) == 0;
}

void check_chunk(const std::vector<uint8_t>& chunk, const std::vector<Item>& items, size_t* next) {
  compact::DecodedChunk d;
  compact::ChunkInfo info;
  if (!compact::decode_chunk(chunk.data(), chunk.size(), &d, &info))
    __builtin_trap();  // a chunk the encoder wrote always decodes
  if (info.size() != chunk.size()) __builtin_trap();
  for (size_t i = 0; i < d.records.size(); ++i) {
    const Item& in = items.at(*next + i);
    if (!same(d.records[i], in.rec) || d.payload(i) != in.payload) __builtin_trap();
  }
  *next += d.records.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk_bytes = size_t{512} << (data[0] % 12);  // 512 B .. 1 MiB
  std::vector<Item> items;
  size_t at = 1;
  while (at + sizeof(Record) <= size) {
    Item it;
    std::memcpy(&it.rec, data + at, sizeof(Record));
    at += sizeof(Record);
    const bool blob = it.rec.op == static_cast<uint16_t>(gpumem::trace::Op::string) ||
                      it.rec.op == static_cast<uint16_t>(gpumem::trace::Op::stack);
    if (blob && at < size) {
      const size_t want = data[at++];
      const size_t len = std::min(want, size - at);
      it.payload.assign(reinterpret_cast<const char*>(data + at), len);
      at += len;
    }
    items.push_back(std::move(it));
  }
  std::vector<uint8_t> buf(chunk_bytes);
  compact::ChunkEncoder enc;
  enc.begin(buf.data(), buf.size());
  size_t decoded = 0;
  for (const Item& it : items) {
    if (enc.add(it.rec, it.payload)) continue;
    if (enc.records() == 0) return 0;  // too big for an empty chunk of this size: not a loss
    check_chunk(std::vector<uint8_t>(buf.begin(), buf.begin() + enc.finish()), items, &decoded);
    enc.begin(buf.data(), buf.size());
    if (!enc.add(it.rec, it.payload)) return 0;
  }
  check_chunk(std::vector<uint8_t>(buf.begin(), buf.begin() + enc.finish()), items, &decoded);
  if (decoded != items.size()) __builtin_trap();
  return 0;
}
