// Bounded compact traces (GPUMEM_TRACE_MAX; docs/trace-format.md, "Bounded traces"): the file
// stays within its bound however many records are appended; what a reader sees (head, digest,
// window) gives the same peak, peak time, live set at the peak and leaks as the whole stream;
// every record is either delivered or counted as omitted, also after a SIGKILL; a damaged or cut
// digest never crashes the reader.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "gpumem/trace/format_v2.h"
#include "trace_test_util.h"

namespace gpumem::test {
namespace {

using trace::Op;
using trace::Record;
constexpr uint64_t kMax = trace::kMinTraceMax;  // 4 MiB: the window goes round many times

// Allocations and frees on one device: 50 allocations made first and kept to the end (leaks),
// 50 made first and freed in the middle, churn throughout, and at `spike` a burst of 400 large
// allocations freed together, the run's peak, far from both ends.
std::vector<Record> make_stream(uint64_t n, uint64_t spike) {
  std::vector<Record> out;
  uint64_t lcg = 12345, next_address = 0x7f0000000000;
  auto rnd = [&] { return (lcg = lcg * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  std::vector<Record> live;
  auto alloc = [&](uint64_t bytes, uint32_t site) {
    Record r = make_record(Op::alloc, next_address, bytes);
    next_address += 0x100000;
    r.site = site;
    r.device = 0;
    live.push_back(r);
    out.push_back(r);
  };
  auto free_at = [&](size_t i) {
    Record r = make_record(Op::free, live[i].address, live[i].bytes);
    r.device = 0;
    out.push_back(r);
    live.erase(live.begin() + static_cast<long>(i));
  };
  for (int i = 0; i < 100; ++i) alloc(4096 * (1 + i % 5), 1 + i % 2);
  while (out.size() < n) {
    if (out.size() == spike) {
      const size_t before = live.size();
      for (int i = 0; i < 400; ++i) alloc(1 << 20, 9);
      while (live.size() > before) free_at(before);
      for (int i = 0; i < 50; ++i) free_at(50);  // the first allocations' second half
      continue;
    }
    if (live.size() < 150 || (live.size() < 300 && rnd() % 2 == 0))
      alloc(256 * (1 + rnd() % 200), static_cast<uint32_t>(3 + rnd() % 5));
    else
      free_at(100 + rnd() % (live.size() - 100));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].t_ns = 1'000'000 + i * 10;
    out[i].tid = 7;
    out[i].aux = rnd();  // about 18 bytes a record: the window goes round after fewer of them
  }
  return out;
}

// What a report needs from a stream: the peak (first reached), its live bytes per site, leaks.
struct Summary {
  uint64_t peak = 0;
  uint64_t peak_t = 0;
  std::map<uint32_t, uint64_t> at_peak_by_site;
  std::map<uint64_t, uint64_t> leaks;  // address -> bytes
  uint64_t allocs = 0, frees = 0;
};

Summary summarise(const std::vector<Record>& records) {
  Summary s;
  std::map<uint64_t, Record> live;
  uint64_t cur = 0;
  for (const Record& r : records) {
    if (r.op == static_cast<uint16_t>(Op::alloc)) {
      ++s.allocs;
      live[r.address] = r;
      cur += r.bytes;
      if (cur > s.peak) {
        s.peak = cur, s.peak_t = r.t_ns;
        s.at_peak_by_site.clear();
        for (const auto& [a, l] : live) s.at_peak_by_site[l.site] += l.bytes;
      }
    } else if (r.op == static_cast<uint16_t>(Op::free)) {
      ++s.frees;
      auto it = live.find(r.address);
      if (it == live.end()) continue;
      cur -= it->second.bytes;
      live.erase(it);
    }
  }
  for (const auto& [a, l] : live) s.leaks[a] = l.bytes;
  return s;
}

void write_bounded(const std::string& path, const std::vector<Record>& stream, uint64_t kill_after) {
  TraceWriter w;
  w.set_max_bytes(kMax);
  ASSERT_TRUE(open_writer(w, path));
  for (uint64_t i = 0; i < stream.size(); ++i) {
    w.append(stream[i]);
    if (i == kill_after) raise(SIGKILL);
  }
  w.close();
}

std::vector<Record> records_of(const ReadResult& r) {
  std::vector<Record> out;
  for (const auto& e : r.events) out.push_back(e.rec);
  return out;
}

uint64_t omitted(const trace::DroppedSpan& d, Op op) {
  uint64_t n = 0;
  for (const auto& row : d.omitted)
    if (row.op == static_cast<uint16_t>(op)) n += row.count;
  return n;
}

TEST(TraceBoundedFile, StaysWithinItsBoundAndKeepsPeakLeaksAndCountsExact) {
  ScratchDir dir;
  const std::vector<Record> stream = make_stream(300'000, 100'000);
  write_bounded(dir.file("b.trace"), stream, UINT64_MAX);
  EXPECT_LE(size_of(dir.file("b.trace")), kMax);

  std::string error;
  auto reader = trace::Reader::open(dir.file("b.trace"), &error);
  ASSERT_NE(reader, nullptr) << error;
  const ReadResult got = read_trace(dir.file("b.trace"));
  EXPECT_FALSE(got.stats.truncated) << got.stats.reason;
  const trace::DroppedSpan* d = reader->dropped();
  ASSERT_NE(d, nullptr);
  EXPECT_GT(d->records, 100'000u);  // most of the run went
  EXPECT_LT(got.events.size(), stream.size() * 2 / 3);
  // Every record is delivered or counted, and the dropped span is the middle.
  EXPECT_EQ(got.events.size() + d->records - d->kept, stream.size());
  EXPECT_GT(static_cast<uint64_t>(d->first_t_ns), stream.front().t_ns);
  EXPECT_LT(static_cast<uint64_t>(d->last_t_ns), stream.back().t_ns);
  EXPECT_LE(static_cast<uint64_t>(d->first_t_ns), stream[100'000].t_ns);
  EXPECT_GE(static_cast<uint64_t>(d->last_t_ns), stream[100'000].t_ns);

  const Summary want = summarise(stream);
  const Summary have = summarise(records_of(got));
  EXPECT_GT(want.peak, uint64_t{400} << 20) << "the spike is the peak";
  EXPECT_EQ(have.peak, want.peak);
  EXPECT_EQ(have.peak_t, want.peak_t);
  EXPECT_EQ(have.at_peak_by_site, want.at_peak_by_site);
  EXPECT_EQ(have.leaks, want.leaks);
  EXPECT_EQ(have.allocs + omitted(*d, Op::alloc), want.allocs);
  EXPECT_EQ(have.frees + omitted(*d, Op::free), want.frees);
  // The newest records are all there, in order.
  for (size_t i = 1; i <= 1000; ++i)
    ASSERT_EQ(got.events[got.events.size() - i].rec.t_ns, stream[stream.size() - i].t_ns);
}

// Four threads appending at once under the bound (sealing, dropping and the digest run on
// whichever appending thread crosses a chunk): each thread's records, told apart by device, are
// all delivered or counted.
TEST(TraceBoundedFile, ThreadsAppendingAtOnceLoseNoRecord) {
  ScratchDir dir;
  constexpr int kThreads = 4;
  constexpr uint64_t kEach = 80'000;
  {
    TraceWriter w;
    w.set_max_bytes(kMax);
    ASSERT_TRUE(open_writer(w, dir.file("t.trace")));
    std::vector<std::thread> threads;
    for (int th = 0; th < kThreads; ++th)
      threads.emplace_back([&w, th] {
        for (uint64_t i = 0; i < kEach; ++i) {
          Record r = make_record(i % 2 ? Op::free : Op::alloc,
                                 0x7f0000000000 + (uint64_t(th) << 32) + (i / 2) % 97 * 4096,
                                 512 * (1 + (i / 2) % 89));
          r.device = static_cast<int16_t>(th);
          r.t_ns = 1'000'000 + i * 40 + static_cast<uint64_t>(th);
          r.aux = (i * 0x9E3779B97F4A7C15ull) >> 8;  // bigger records: fewer fill the window
          w.append(r);
        }
      });
    for (auto& t : threads) t.join();
    w.close();
  }
  EXPECT_LE(size_of(dir.file("t.trace")), kMax);
  std::string error;
  auto reader = trace::Reader::open(dir.file("t.trace"), &error);
  ASSERT_NE(reader, nullptr) << error;
  const ReadResult got = read_trace(dir.file("t.trace"));
  const trace::DroppedSpan* d = reader->dropped();
  ASSERT_NE(d, nullptr) << "the window went round";
  uint64_t per_device[kThreads] = {};
  for (const auto& e : got.events)
    if (e.rec.device >= 0 && e.rec.device < kThreads) ++per_device[e.rec.device];
  for (const auto& row : d->omitted)
    if (row.device >= 0 && row.device < kThreads) per_device[row.device] += row.count;
  for (int th = 0; th < kThreads; ++th) EXPECT_EQ(per_device[th], kEach) << "thread " << th;
}

// More allocations live across the dropped middle than an eighth of the bound holds: the writer
// says so in one line (what to raise), stops growing the trace and counts what it drops; the file
// stays within its bound and reads as incomplete, never as damaged.
TEST(TraceBoundedFile, ALiveSetTooLargeForTheDigestIsSaidAndCounted) {
  ScratchDir dir;
  static std::string warning;
  warning.clear();
  TraceWriter w;
  w.set_max_bytes(kMax);
  w.set_warning_sink([](const char* line) { warning += std::string(line) + "\n"; });
  ASSERT_TRUE(open_writer(w, dir.file("big.trace")));
  // 120k allocations, none freed: those made after the head are the digest's live set.
  for (uint64_t i = 0; i < 400'000; ++i) {
    Record r = make_record(Op::alloc, 0x7f0000000000 + i * 4096, 4096 + i % 1000);
    r.t_ns = 1'000'000 + i;
    r.aux = (i * 0x9E3779B97F4A7C15ull) >> 7;
    if (i >= 120'000) r.op = static_cast<uint16_t>(Op::mark);  // filler: not live
    w.append(r);
  }
  w.close();
  EXPECT_LE(size_of(dir.file("big.trace")), kMax);
  EXPECT_EQ(std::count(warning.begin(), warning.end(), '\n'), 1) << warning;
  EXPECT_NE(warning.find("cannot stay within GPUMEM_TRACE_MAX"), std::string::npos) << warning;
  EXPECT_NE(warning.find("raise GPUMEM_TRACE_MAX"), std::string::npos) << warning;
  const ReadResult got = read_trace(dir.file("big.trace"));
  EXPECT_GT(got.stats.dropped, 0u);
  EXPECT_TRUE(got.stats.truncated);
  EXPECT_NE(got.stats.reason.find("could not stay within GPUMEM_TRACE_MAX"), std::string::npos)
      << got.stats.reason;
  EXPECT_LE(got.events.size() + got.stats.dropped, 400'000u + 10);
}

// A process killed at any moment: the window's newest record is the last one appended, and
// every record is delivered or counted.
TEST(TraceBoundedFile, KilledAtRandomMomentsLosesNoAppendedRecord) {
  ScratchDir dir;
  const std::vector<Record> stream = make_stream(240'000, 100'000);
  for (uint64_t kill_after : {200'001ull, 239'990ull}) {
    const std::string path = dir.file("k" + std::to_string(kill_after) + ".trace");
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      write_bounded(path, stream, kill_after);
      _exit(3);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
    EXPECT_LE(size_of(path), kMax);
    std::string error;
    auto reader = trace::Reader::open(path, &error);
    ASSERT_NE(reader, nullptr) << error;
    const ReadResult got = read_trace(path);
    ASSERT_FALSE(got.events.empty());
    EXPECT_EQ(got.events.back().rec.t_ns, stream[kill_after].t_ns) << kill_after;
    const trace::DroppedSpan* d = reader->dropped();
    if (kill_after > 190'000) {
      EXPECT_NE(d, nullptr) << "killed after the window went round";
    }
    const uint64_t counted = got.events.size() + (d != nullptr ? d->records - d->kept : 0);
    EXPECT_EQ(counted, kill_after + 1);
    const std::vector<Record> head(stream.begin(), stream.begin() + static_cast<long>(kill_after) + 1);
    EXPECT_EQ(summarise(records_of(got)).leaks, summarise(head).leaks) << kill_after;
    EXPECT_EQ(summarise(records_of(got)).peak, summarise(head).peak) << kill_after;
  }
}

// Digest slots flipped byte by byte, the file cut anywhere: the reader never crashes, never
// delivers more records than the file held, and a damaged digest falls back to the other slot
// or to none.
TEST(TraceBoundedFile, DamagedOrCutDigestNeverCrashesTheReader) {
  ScratchDir dir;
  const std::vector<Record> stream = make_stream(200'000, 100'000);
  write_bounded(dir.file("b.trace"), stream, UINT64_MAX);
  std::ifstream in(dir.file("b.trace"), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  const trace::Header* h = reinterpret_cast<const trace::Header*>(bytes.data());
  trace::BoundedLayout b;
  ASSERT_TRUE(trace::bounded_layout(trace::compact_layout(*h), &b));
  const uint64_t whole = read_trace(dir.file("b.trace")).events.size();
  int variants = 0;
  auto check = [&](const std::string& data) {
    std::ofstream(dir.file("x.trace"), std::ios::binary | std::ios::trunc) << data;
    std::string error;
    auto reader = trace::Reader::open(dir.file("x.trace"), &error);
    if (!reader) return;
    trace::Event ev;
    uint64_t n = 0;
    while (reader->next(&ev)) ++n;
    EXPECT_LE(n, whole + 1000);
    ++variants;
  };
  for (uint64_t slot : b.digest_at)
    for (uint64_t off = 0; off < 200; off += 17) {
      std::string data = bytes;
      data[slot + off] = static_cast<char>(data[slot + off] ^ 0x5A);
      check(data);
    }
  for (uint64_t cut = b.head_end - 5000; cut < bytes.size(); cut += (bytes.size() - b.head_end) / 8)
    check(bytes.substr(0, cut));
  EXPECT_GT(variants, 25);
}

}  // namespace
}  // namespace gpumem::test
