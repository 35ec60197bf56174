// The follower top keeps from one look to the next (gpumem/trace/follow.h, follow_on): each look
// reads the records appended since the last, once each and in order, with stats() counting that
// look only; in raw (version 1) and compact (version 2) traces, across compact chunks sealed
// between looks, with strings and stacks among the records.
#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdint>
#include <string>

#include "gpumem/trace/follow.h"
#include "gpumem/trace/format.h"
#include "gpumem/trace/writer.h"
#include "scratch.h"

namespace {

using gpumem::TraceWriter;
using gpumem::test::ScratchDir;
namespace tr = gpumem::trace;

constexpr uint64_t kChunk = TraceWriter::kChunkSlots;

struct Follow {
  std::unique_ptr<tr::Reader> reader;
  uint64_t next_aux = 0;  // the aux of the next alloc record expected
  uint64_t strings = 0;

  // One look: every record appended since the last, checked; returns the records this look read.
  uint64_t look(const std::string& path) {
    if (reader == nullptr) {
      std::string error;
      reader = tr::open_from(path, tr::kHeaderSize, /*hold=*/true, &error);
      EXPECT_NE(reader, nullptr) << error;
      if (reader == nullptr) return 0;
    } else {
      EXPECT_TRUE(tr::follow_on(*reader, /*hold=*/true));
    }
    uint64_t read = 0;
    tr::Batch b;
    while (reader->next_batch(&b)) {
      for (size_t i = 0; i < b.count; ++i) {
        ++read;
        if (b.records[i].op == static_cast<uint16_t>(tr::Op::string)) {
          EXPECT_EQ(b.payload, "phase " + std::to_string(strings)) << "a blob with its payload";
          ++strings;
          continue;
        }
        if (b.records[i].op != static_cast<uint16_t>(tr::Op::alloc)) continue;
        EXPECT_EQ(b.records[i].aux, next_aux) << "each record once, in order";
        ++next_aux;
      }
    }
    EXPECT_EQ(reader->stats().records, read) << "stats() count this look only";
    EXPECT_EQ(reader->stats().torn, 0u);
    return read;
  }
};

void follow_in_looks(TraceWriter::Format format) {
  ScratchDir dir;
  const std::string path = dir / "live.trace";
  TraceWriter w;
  w.set_format(format);
  char err[512];
  ASSERT_TRUE(w.open(path.c_str(), tr::Header{}, err, sizeof err)) << err;
  Follow f;
  uint64_t written = 0, strings = 0;
  // Batches that end inside a chunk, on its boundary, across many, and nothing at all.
  for (uint64_t batch : {uint64_t{5}, kChunk - 5, uint64_t{1}, 9 * kChunk + 3, uint64_t{0},
                         uint64_t{77}, 3 * kChunk, kChunk / 2}) {
    uint64_t records = 0;
    for (uint64_t i = 0; i < batch; ++i) {
      tr::Record r{};
      r.op = static_cast<uint16_t>(tr::Op::alloc);
      r.address = 0x1000 + written * 64;
      r.bytes = 64;
      r.aux = static_cast<uint32_t>(written++);
      w.append(r);
      ++records;
      if (written % 1000 == 0) {
        w.intern_string(("phase " + std::to_string(strings++)).c_str());
        ++records;
      }
    }
    const uint64_t read = f.look(path);
    EXPECT_EQ(read, records) << "a look reads what was appended since the last, no more";
    EXPECT_EQ(f.next_aux, written) << "a look sees every record committed before it";
  }
  EXPECT_EQ(f.strings, strings);
  w.close();
  EXPECT_EQ(f.look(path), 0u) << "a clean close appends no record";
  EXPECT_NE(f.reader->header().flags & tr::kHeaderClosed, 0u) << "the header is read again";
}

TEST(TopFollowOn, RawTraceEachRecordOnceAcrossLooks) { follow_in_looks(TraceWriter::Format::raw); }

TEST(TopFollowOn, CompactTraceEachRecordOnceAcrossSealedChunks) {
  follow_in_looks(TraceWriter::Format::compact);
}

// Between two looks a follower holds no buffer (each look reads its bytes again), so top's
// followers, read one after another, share one set of buffers' memory: 16 followers of traces
// longer than the buffers (raw: 64 KiB; compact: a decoded chunk of 128 KiB, its bytes and a
// 64 KiB copy of the raw chunks), all kept, hold less heap than two buffers would.
void followers_hold_no_buffer_between_looks(TraceWriter::Format format) {
  constexpr int kTraces = 16;
  constexpr uint64_t kRecords = 3 * kChunk;  // sealed chunks and a raw part in a compact trace
  ScratchDir dir;
  std::vector<std::string> paths;
  for (int t = 0; t < kTraces; ++t) {
    paths.push_back(dir / ("t" + std::to_string(t) + ".trace"));
    TraceWriter w;
    w.set_format(format);
    char err[512];
    ASSERT_TRUE(w.open(paths.back().c_str(), tr::Header{}, err, sizeof err)) << err;
    for (uint64_t i = 0; i < kRecords; ++i) {
      tr::Record r{};
      r.op = static_cast<uint16_t>(tr::Op::alloc);
      r.address = 0x1000 + i * 64;
      r.bytes = 64;
      r.aux = i;
      w.append(r);
    }
    w.close();
  }
  std::vector<Follow> follows(kTraces);
  const size_t start = mallinfo2().uordblks;
  for (int t = 0; t < kTraces; ++t) follows[t].look(paths[t]);  // opened, read to the end
  const size_t opened = mallinfo2().uordblks;
  for (int t = 0; t < kTraces; ++t) EXPECT_EQ(follows[t].look(paths[t]), 0u);
  for (int t = 0; t < kTraces; ++t) EXPECT_EQ(follows[t].next_aux, kRecords);
  const size_t again = mallinfo2().uordblks;
  // Each follower keeps its headers and state (raw about 20 KiB, compact about 42: its raw part's
  // reader has a header too), no buffer.
  EXPECT_LT(opened - start, size_t{kTraces} * 64 * 1024)
      << "the looks' buffers were kept: " << opened - start << " bytes";
  EXPECT_LT(again, opened + 64 * 1024) << "heap in use grew by " << again - opened;
}

TEST(TopFollowOn, RawFollowersHoldNoBufferBetweenLooks) {
  followers_hold_no_buffer_between_looks(TraceWriter::Format::raw);
}
TEST(TopFollowOn, CompactFollowersHoldNoBufferBetweenLooks) {
  followers_hold_no_buffer_between_looks(TraceWriter::Format::compact);
}

}  // namespace
