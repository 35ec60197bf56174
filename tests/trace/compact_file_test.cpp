// Version-2 (compact) trace files: what the writer seals reads back exactly as the same appends
// to a version-1 file; a process that dies without closing loses no committed record, at every
// chunk boundary; threads appending at once keep every record; a cut file never crashes the
// reader nor shows a record that was not written.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "gpumem/trace/compact.h"
#include "gpumem/trace/follow.h"
#include "gpumem/trace/format_v2.h"
#include "trace_test_util.h"

namespace gpumem::test {
namespace {

using trace::Op;
using trace::Record;
constexpr uint64_t kChunk = TraceWriter::kChunkSlots;

// A deterministic mix: allocations and frees, strings and stacks every so often.
void write_mix(TraceWriter& w, uint64_t n, uint32_t tag = 0) {
  for (uint64_t i = 0; i < n; ++i) {
    Record r = make_record(i % 2 ? Op::free : Op::alloc, 0x7f0000000000 + (i / 2) % 50 * 4096,
                           512 * (1 + (i / 2) % 7));
    r.t_ns = 1'000'000 + i * 100;
    r.aux = tag;
    r.site = static_cast<uint32_t>(i % 13);
    w.append(r);
    if (i % 97 == 0) w.intern_string(("phase " + std::to_string(i % 500) + std::string(i % 130, '.')).c_str());
    if (i % 61 == 0) {
      const uint64_t pcs[3] = {i, i + 1, 0x400000};
      w.intern_stack(pcs, 3);
    }
  }
}

void write_file(const std::string& path, TraceWriter::Format format, uint64_t n) {
  TraceWriter w;
  w.set_format(format);
  ASSERT_TRUE(open_writer(w, path));
  write_mix(w, n);
  w.close();
}

bool same_events(const std::vector<OwnedEvent>& a, const std::vector<OwnedEvent>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    Record x = a[i].rec, y = b[i].rec;
    x.t_ns = y.t_ns = 0;  // blob heads take the clock
    x.commit = y.commit = 0;
    if (std::memcmp(&x, &y, sizeof x) != 0 || a[i].payload != b[i].payload) return false;
  }
  return true;
}

TEST(TraceCompactFile, ReadsBackExactlyWhatTheRawFormatHolds) {
  ScratchDir dir;
  const uint64_t n = 10 * kChunk + 123;  // the ring wraps, blobs spill across chunks
  write_file(dir.file("v1.trace"), TraceWriter::Format::raw, n);
  write_file(dir.file("v2.trace"), TraceWriter::Format::compact, n);
  const ReadResult v1 = read_trace(dir.file("v1.trace"));
  const ReadResult v2 = read_trace(dir.file("v2.trace"));
  const ReadResult v2b = read_trace(dir.file("v2.trace"), /*batched=*/true);
  EXPECT_EQ(v1.header.version, 1u);
  EXPECT_EQ(v2.header.version, trace::kVersionCompact);
  ASSERT_GT(v1.events.size(), n);
  EXPECT_TRUE(same_events(v1.events, v2.events)) << v1.events.size() << " vs " << v2.events.size();
  EXPECT_TRUE(same_events(v1.events, v2b.events));
  EXPECT_FALSE(v2.stats.truncated) << v2.stats.reason;
  EXPECT_EQ(v2.stats.records, v1.events.size());
  const trace::CompactLayout l = trace::compact_layout(v2.header);
  EXPECT_EQ(l.sealed_chunks, (v1.events.size() + 300) / kChunk + 1) << "every chunk sealed at close";
  // Everything sealed: the file is the header, the (emptied) ring and the compact chunks.
  const uint64_t compact_bytes = size_of(dir.file("v2.trace")) - l.compact_offset;
  EXPECT_LT(compact_bytes, v1.events.size() * 12) << "at most 12 bytes per record here";
}

// A process that dies without closing (as under SIGKILL: the mapping's pages are in the page
// cache) after n appends: all n records read, at and around every chunk and ring boundary.
TEST(TraceCompactFile, ADeathAtAnyPointLosesNoCommittedRecord) {
  ScratchDir dir;
  for (uint64_t n : {uint64_t{0}, uint64_t{1}, kChunk - 1, kChunk, kChunk + 1, 3 * kChunk,
                     7 * kChunk - 1, 7 * kChunk, 8 * kChunk + 1, 20 * kChunk + 17}) {
    SCOPED_TRACE("records " + std::to_string(n));
    const std::string path = dir.file("killed-" + std::to_string(n) + ".trace");
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      TraceWriter w;
      w.set_format(TraceWriter::Format::compact);
      char err[256];
      if (!w.open(path.c_str(), test_header(), err, sizeof err)) _exit(3);
      for (uint64_t i = 0; i < n; ++i) {
        Record r = make_record(Op::alloc, 0x1000 + i * 64, 64 + i);
        r.aux = i;
        w.append(r);
      }
      raise(SIGKILL);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
    const ReadResult t = read_trace(path);
    ASSERT_EQ(t.events.size(), n);
    for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(t.events[i].rec.aux, i) << "in order, none twice";
    EXPECT_TRUE(t.stats.truncated);
    EXPECT_NE(t.stats.reason.find("not closed cleanly"), std::string::npos) << t.stats.reason;
    EXPECT_EQ(t.stats.torn, 0u);
    const ReadResult b = read_trace(path, true);
    EXPECT_EQ(b.events.size(), n);
  }
}

TEST(TraceCompactFile, ThreadsAppendingAtOnceKeepEveryRecordInTheirOrder) {
  ScratchDir dir;
  const std::string path = dir.file("threads.trace");
  constexpr int kThreads = 4;
  constexpr uint64_t kEach = 6 * kChunk;
  {
    TraceWriter w;
    w.set_format(TraceWriter::Format::compact);
    ASSERT_TRUE(open_writer(w, path));
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&w, t] { write_mix(w, kEach, static_cast<uint32_t>(t + 1)); });
    for (auto& th : threads) th.join();
    w.close();
  }
  const ReadResult r = read_trace(path);
  EXPECT_FALSE(r.stats.truncated) << r.stats.reason;
  std::vector<uint64_t> seen(kThreads + 1, 0);
  for (const OwnedEvent& e : r.events) {
    if (e.rec.op != static_cast<uint16_t>(Op::alloc) && e.rec.op != static_cast<uint16_t>(Op::free))
      continue;
    ASSERT_LE(e.rec.aux, static_cast<uint64_t>(kThreads));
    const uint64_t i = seen[e.rec.aux]++;
    ASSERT_EQ(e.rec.t_ns, 1'000'000 + i * 100) << "thread " << e.rec.aux << " record " << i;
  }
  for (int t = 1; t <= kThreads; ++t) EXPECT_EQ(seen[t], kEach);
}

std::string g_warning;
void keep_warning(const char* line) { g_warning = line; }

TEST(TraceCompactFile, TheEnvironmentChoosesTheFormatAndAMisspeltOneIsSaid) {
  ScratchDir dir;
  const char* before = std::getenv("GPUMEM_TRACE_FORMAT");
  const std::string saved = before != nullptr ? before : "";
  for (const char* value : {"compact", "raw", "compat"}) {
    SCOPED_TRACE(value);
    setenv("GPUMEM_TRACE_FORMAT", value, 1);
    g_warning.clear();
    const std::string path = dir.file(std::string(value) + ".trace");
    {
      TraceWriter w;
      w.set_warning_sink(keep_warning);
      ASSERT_TRUE(open_writer(w, path));
      w.append(make_record(Op::alloc, 0x1000, 64));
      w.close();
    }
    const ReadResult r = read_trace(path);
    EXPECT_EQ(r.header.version, std::string(value) == "compact" ? 2u : 1u);
    EXPECT_EQ(r.events.size(), 1u);
    if (std::string(value) == "compat") {
      EXPECT_NE(g_warning.find("GPUMEM_TRACE_FORMAT='compat' is neither 'compact' nor 'raw'"),
                std::string::npos)
          << g_warning;
    } else {
      EXPECT_EQ(g_warning, "");
    }
  }
  if (before != nullptr) {
    setenv("GPUMEM_TRACE_FORMAT", saved.c_str(), 1);
  } else {
    unsetenv("GPUMEM_TRACE_FORMAT");
  }
}

// gpumem top's way (follow.h): each look reads what was appended since the last one, once, in
// order, while chunks are sealed between looks.
TEST(TraceCompactFile, FollowingALiveTraceReadsEachRecordOnce) {
  ScratchDir dir;
  const std::string path = dir.file("live.trace");
  TraceWriter w;
  w.set_format(TraceWriter::Format::compact);
  ASSERT_TRUE(open_writer(w, path));
  uint64_t offset = trace::kHeaderSize, next_aux = 0, written = 0;
  for (uint64_t batch : {uint64_t{5}, kChunk - 5, uint64_t{1}, 9 * kChunk, uint64_t{0}, uint64_t{77}}) {
    for (uint64_t i = 0; i < batch; ++i) {
      Record r = make_record(Op::alloc, 0x1000 + written * 64, 64);
      r.aux = written++;
      w.append(r);
    }
    std::string error;
    auto reader = trace::open_from(path, offset, /*hold=*/true, &error);
    ASSERT_NE(reader, nullptr) << error;
    trace::Event ev;
    while (reader->next(&ev)) ASSERT_EQ(ev.rec.aux, next_aux++) << "once each, in order";
    EXPECT_EQ(next_aux, written) << "a look sees every record committed before it";
    offset = trace::resume_offset(*reader);
  }
  w.close();
}

// A long trace is decoded ahead on a thread (trace/src/decode_ahead.h), a follower's in place: the
// two walks give the same records and the same verdicts, on a whole file, on one with a damaged
// chunk in the middle and on one cut inside a chunk near its end.
TEST(TraceCompactFile, DecodingAheadOnAThreadGivesWhatDecodingInPlaceGives) {
  ScratchDir dir;
  const std::string whole = dir.file("whole.trace");
  write_file(whole, TraceWriter::Format::compact, 200 * kChunk + 77);
  std::ifstream in(whole, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const trace::CompactLayout l = trace::compact_layout(read_trace(whole).header);
  // The decoding thread starts for more than 1 MiB of chunks (DecodeAhead::kMinBytes).
  ASSERT_GT(bytes.size() - l.compact_offset, uint64_t{3} << 20);
  // Where each compact chunk starts.
  std::vector<size_t> chunk_at;
  for (size_t at = l.compact_offset; at + trace::compact::kChunkHeaderBytes <= bytes.size();) {
    trace::compact::ChunkInfo info;
    const auto check = trace::compact::check_chunk(
        reinterpret_cast<const uint8_t*>(bytes.data() + at), bytes.size() - at, &info);
    if (check != trace::compact::ChunkCheck::ok) break;
    chunk_at.push_back(at);
    at += info.size();
  }
  ASSERT_GE(chunk_at.size(), 190u);

  const std::string damaged = dir.file("damaged.trace"), cut = dir.file("cut.trace");
  std::string rotten = bytes;
  rotten[chunk_at[60] + trace::compact::kChunkHeaderBytes + 100] ^= 0x5a;  // its checksum fails
  std::ofstream(damaged, std::ios::binary) << rotten;
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, chunk_at[170] + 333);

  for (const std::string& path : {whole, damaged, cut}) {
    SCOPED_TRACE(path);
    const ReadResult ahead = read_trace(path, /*batched=*/true);
    ReadResult in_place{};
    std::string error;
    auto follower = trace::open_from(path, trace::kHeaderSize, /*hold=*/false, &error);
    ASSERT_NE(follower, nullptr) << error;
    trace::Batch b;
    while (follower->next_batch(&b))
      for (size_t i = 0; i < b.count; ++i) in_place.events.push_back({b.records[i], std::string(b.payload)});
    in_place.stats = follower->stats();
    ASSERT_GT(in_place.events.size(), 100 * kChunk);
    EXPECT_TRUE(same_events(ahead.events, in_place.events))
        << ahead.events.size() << " vs " << in_place.events.size();
    EXPECT_EQ(ahead.stats.records, in_place.stats.records);
    EXPECT_EQ(ahead.stats.torn, in_place.stats.torn);
    EXPECT_EQ(ahead.stats.truncated, in_place.stats.truncated);
    EXPECT_EQ(ahead.stats.reason, in_place.stats.reason);
    EXPECT_EQ(ahead.stats.bytes_read, in_place.stats.bytes_read);
  }
  // The damaged chunk's records are counted as torn, the rest read.
  const ReadResult rot = read_trace(damaged);
  EXPECT_GT(rot.stats.torn, 0u);
  EXPECT_NE(rot.stats.reason.find("1 damaged compact chunk(s) skipped"), std::string::npos)
      << rot.stats.reason;
  // A reader dropped halfway stops its thread (ASan and TSan check the rest).
  std::string error;
  auto half = trace::Reader::open(whole, &error);
  ASSERT_NE(half, nullptr) << error;
  trace::Event ev;
  for (int i = 0; i < 100'000 && half->next(&ev); ++i) {
  }
  half->rewind();
  ASSERT_TRUE(half->next(&ev));
  EXPECT_EQ(ev.rec.t_ns, read_trace(whole).events.front().rec.t_ns);
}

TEST(TraceCompactFile, EveryCutNeverCrashesNorShowsARecordNotWritten) {
  ScratchDir dir;
  const std::string full_path = dir.file("full.trace");
  write_file(full_path, TraceWriter::Format::compact, 3 * kChunk + 5);
  const ReadResult full = read_trace(full_path);
  std::ifstream in(full_path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const trace::CompactLayout l = trace::compact_layout(full.header);
  const std::string cut = dir.file("cut.trace");
  size_t cuts = 0;
  // About 60 places across the compact chunks, two cuts each (each read pays for the emptied
  // ring too: a few seconds under ASan).
  const size_t step = std::max<size_t>(1, (bytes.size() - l.compact_offset) / 60) | 1;
  for (size_t off = l.compact_offset - 1; off <= bytes.size(); off += (off % 2 == 0 ? 1 : step)) {
    std::ofstream(cut, std::ios::binary | std::ios::trunc) << bytes.substr(0, off);
    std::string error;
    auto reader = trace::Reader::open(cut, &error);
    ASSERT_NE(reader, nullptr) << error;
    trace::Event ev;
    size_t k = 0;
    while (reader->next(&ev)) {
      // A subsequence of the full file's records: each one found, in order.
      while (k < full.events.size() && std::memcmp(&full.events[k].rec, &ev.rec, sizeof(Record)) != 0) ++k;
      ASSERT_LT(k, full.events.size()) << "cut at " << off << ": a record the file never held";
      ++k;
    }
    if (off < bytes.size()) {
      EXPECT_TRUE(reader->stats().truncated) << off;
    }
    ++cuts;
  }
  EXPECT_GT(cuts, 100u);
}

}  // namespace
}  // namespace gpumem::test
