// The writer: round trip of every op, many threads, dedup tables, file safety, symbols.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <thread>

#include "intern_hash.h"
#include "trace_test_util.h"

namespace gpumem::test {
namespace {

using trace::Api;
using trace::Op;
using trace::Record;

TEST(TraceWriter, RoundTripEveryOp) {
  ScratchDir dir;
  const std::string path = dir.file("every-op.trace");
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, path));
  std::vector<Record> written;
  for (uint16_t op = 1; op <= static_cast<uint16_t>(Op::trim); ++op) {
    if (op == static_cast<uint16_t>(Op::string) || op == static_cast<uint16_t>(Op::stack)) continue;
    Record r{};
    r.t_ns = 1000 + op;
    r.address = 0x7f0000000000ull + op;
    r.bytes = 4096ull * op;
    r.stream = 0x5000 + op;
    r.aux = 77 + op;
    r.tid = 4242;
    r.site = op;
    r.result = -op;
    r.op = op;
    r.api = op;  // every op with a different api value
    r.device = static_cast<int16_t>(op % 3 - 1);
    r.flags = static_cast<uint16_t>(op & 0xff);
    w.append(r);
    written.push_back(r);
  }
  const uint64_t sid = w.intern_string("phase: forward");
  const uint64_t pcs[3] = {0x1000, 0x2000, 0x3000};
  const uint32_t kid = w.intern_stack(pcs, 3);
  const uint64_t long_text_id = w.intern_string(std::string(1000, 'x').c_str());  // 17 slots
  w.close();

  ReadResult got = read_trace(path);
  EXPECT_FALSE(got.stats.truncated) << got.stats.reason;
  EXPECT_EQ(got.stats.torn, 0u);
  ASSERT_EQ(got.events.size(), written.size() + 3);
  for (size_t i = 0; i < written.size(); ++i) {
    Record expect = written[i];
    expect.commit = trace::kCommitted;
    EXPECT_EQ(std::memcmp(&got.events[i].rec, &expect, sizeof(Record)), 0) << "record " << i;
  }
  const OwnedEvent& s = got.events[written.size()];
  EXPECT_EQ(s.rec.op, static_cast<uint16_t>(Op::string));
  EXPECT_EQ(s.rec.aux, sid);
  EXPECT_EQ(s.payload, "phase: forward");
  const OwnedEvent& k = got.events[written.size() + 1];
  EXPECT_EQ(k.rec.op, static_cast<uint16_t>(Op::stack));
  EXPECT_EQ(k.rec.aux, kid);
  ASSERT_EQ(k.payload.size(), sizeof(pcs));
  EXPECT_EQ(std::memcmp(k.payload.data(), pcs, sizeof(pcs)), 0);
  const OwnedEvent& l = got.events[written.size() + 2];
  EXPECT_EQ(l.rec.aux, long_text_id);
  EXPECT_EQ(l.rec.address, 17u);  // 1000 bytes in 60-byte slots
  EXPECT_EQ(l.payload, std::string(1000, 'x'));

  // Header: what the caller gave, plus what open() and close() fill in.
  EXPECT_EQ(std::memcmp(got.header.magic, trace::kMagic, 8), 0);
  EXPECT_EQ(got.header.version, trace::kVersion);
  EXPECT_EQ(got.header.pid, static_cast<uint32_t>(getpid()));
  EXPECT_EQ(got.header.rank, 3);
  EXPECT_STREQ(got.header.host, "testhost");
  EXPECT_STREQ(got.header.command, "trace_tests --flag");
  EXPECT_NE(got.header.clock_base_ns, 0u);
  EXPECT_NE(got.header.start_unix_ns, 0u);
  EXPECT_NE(got.header.flags & trace::kHeaderClosed, 0u);
  // 15 plain records + string (1 + 1 payload) + stack (1 + 1) + long string (1 + 17).
  EXPECT_EQ(got.header.end_offset, trace::kHeaderSize + (15 + 2 + 2 + 18) * trace::kRecordSize);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), got.header.end_offset);  // trimmed at close
}

TEST(TraceWriter, FillsTimeAndThreadWhenZero) {
  ScratchDir dir;
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, dir.file("t.trace")));
  const uint64_t before = monotonic_ns();
  w.append(make_record(Op::alloc, 1, 2));
  const uint64_t after = monotonic_ns();
  w.close();
  ReadResult got = read_trace(dir.file("t.trace"));
  ASSERT_EQ(got.events.size(), 1u);
  EXPECT_GE(got.events[0].rec.t_ns, before);
  EXPECT_LE(got.events[0].rec.t_ns, after);
  EXPECT_EQ(got.events[0].rec.tid, current_tid());
  EXPECT_EQ(current_tid(), static_cast<uint32_t>(gettid()));
}

// 16 threads x 100k appends: exact count, every record intact, each thread's order preserved.
TEST(TraceWriter, SixteenThreadsExactCountAndOrder) {
  constexpr int kThreads = 16;
  constexpr uint64_t kPerThread = 100000;
  ScratchDir dir;
  const std::string path = dir.file("threads.trace");
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, path));
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (uint64_t i = 0; i < kPerThread; ++i) {
        Record r = make_record(Op::alloc, (static_cast<uint64_t>(t) << 32) | i, i * 8 + 1);
        r.aux = static_cast<uint64_t>(t);
        r.site = static_cast<uint32_t>(i);
        w.append(r);
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(w.records_written(), kThreads * kPerThread);
  w.close();

  std::string error;
  auto reader = trace::Reader::open(path, &error);
  ASSERT_NE(reader, nullptr) << error;
  std::vector<uint64_t> next_index(kThreads, 0);
  std::vector<uint32_t> tid_of(kThreads, 0);
  uint64_t count = 0, bad = 0;
  trace::Event ev;
  while (reader->next(&ev)) {
    ++count;
    const Record& r = ev.rec;
    const uint64_t t = r.aux;
    if (t >= kThreads) {
      ++bad;
      continue;
    }
    const uint64_t i = next_index[t]++;
    if (tid_of[t] == 0) tid_of[t] = r.tid;
    bad += r.address != ((t << 32) | i) || r.bytes != i * 8 + 1 || r.site != i ||
           r.tid != tid_of[t] || r.op != static_cast<uint16_t>(Op::alloc);
  }
  EXPECT_EQ(count, kThreads * kPerThread);
  EXPECT_EQ(bad, 0u);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(next_index[t], kPerThread) << "thread " << t;
  EXPECT_EQ(reader->stats().torn, 0u);
  EXPECT_FALSE(reader->stats().truncated) << reader->stats().reason;
}

TEST(TraceWriter, StringsAreDeduplicated) {
  ScratchDir dir;
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, dir.file("s.trace")));
  const uint64_t a = w.intern_string("forward");
  const uint64_t b = w.intern_string("backward");
  EXPECT_EQ(w.intern_string("forward"), a);
  EXPECT_EQ(w.intern_string("backward"), b);
  EXPECT_NE(a, b);
  EXPECT_NE(a, 0u);
  EXPECT_NE(w.intern_string(nullptr), 0u);  // the empty string
  w.close();
  ReadResult got = read_trace(dir.file("s.trace"));
  ASSERT_EQ(got.events.size(), 3u);
  EXPECT_EQ(got.events[0].payload, "forward");
  EXPECT_EQ(got.events[1].payload, "backward");
  EXPECT_EQ(got.events[2].payload, "");
}

TEST(TraceWriter, StacksAreDeduplicatedAcrossThreads) {
  ScratchDir dir;
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, dir.file("k.trace")));
  constexpr int kThreads = 8, kStacks = 100, kRounds = 50;
  std::vector<std::vector<uint32_t>> ids(kThreads, std::vector<uint32_t>(kStacks));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < kRounds; ++round) {
        for (int s = 0; s < kStacks; ++s) {
          const uint64_t pcs[4] = {0x400000u + static_cast<uint64_t>(s), 0x500000, 0x600000,
                                   static_cast<uint64_t>(s % 7)};
          const uint32_t id = w.intern_stack(pcs, 4);
          Record r = make_record(Op::alloc, static_cast<uint64_t>(s), 1);
          r.site = id;
          w.append(r);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  // Settled (every first sight finished): each thread now gets the table's id for a stack. Not
  // asserted inside the race: a first writer preempted between claiming a slot and publishing
  // its id makes the others write copies meanwhile (by design they never wait).
  threads.clear();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int s = 0; s < kStacks; ++s) {
        const uint64_t pcs[4] = {0x400000u + static_cast<uint64_t>(s), 0x500000, 0x600000,
                                 static_cast<uint64_t>(s % 7)};
        ids[t][s] = w.intern_stack(pcs, 4);
      }
    });
  }
  for (auto& th : threads) th.join();
  w.close();

  // Every site refers to a stack record seen earlier in the file, with the right frames.
  ReadResult got = read_trace(dir.file("k.trace"));
  std::map<uint32_t, std::string> stacks;
  uint64_t allocs = 0, wrong = 0;
  for (const OwnedEvent& e : got.events) {
    if (e.rec.op == static_cast<uint16_t>(Op::stack)) {
      stacks[static_cast<uint32_t>(e.rec.aux)] = e.payload;
    } else {
      ++allocs;
      auto it = stacks.find(e.rec.site);
      uint64_t first_pc = 0;
      if (it == stacks.end() || it->second.size() != 32) {
        ++wrong;
        continue;
      }
      std::memcpy(&first_pc, it->second.data(), 8);
      wrong += first_pc != 0x400000u + e.rec.address;
    }
  }
  EXPECT_EQ(allocs, uint64_t{kThreads} * kStacks * kRounds);
  EXPECT_EQ(wrong, 0u);
  // Dedup: once settled, every thread gets the same id for a stack. Only a race on first sight
  // may write a stack twice, so there are at most kThreads copies of each, far fewer than calls.
  // (Lookups after settling write nothing new.)
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(ids[t], ids[0]);
  EXPECT_GE(stacks.size(), size_t{kStacks});
  EXPECT_LE(stacks.size(), size_t{kStacks} * kThreads);
}

TEST(TraceWriter, StackTableFullStillRecordsEveryStack) {
  ScratchDir dir;
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, dir.file("full.trace")));
  const uint64_t n = TraceWriter::kStackTableSize + 5000;
  uint64_t zero_ids = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t pcs[2] = {i, ~i};
    zero_ids += w.intern_stack(pcs, 2) == 0;
  }
  const uint64_t deep[300] = {};
  const uint32_t deep_id = w.intern_stack(deep, 300);  // cut to kMaxStackDepth
  w.close();
  EXPECT_EQ(zero_ids, 0u);
  ReadResult got = read_trace(dir.file("full.trace"));
  ASSERT_EQ(got.events.size(), n + 1);
  EXPECT_EQ(got.events.back().rec.aux, deep_id);
  EXPECT_EQ(got.events.back().payload.size(), TraceWriter::kMaxStackDepth * sizeof(uint64_t));
}

// Two 16-byte keys with the same intern hash, built from the hash's structure (hash_words over
// two words: the second word cancels the difference the first made). `first` is the one to
// vary until the second word suits the caller (a string must not contain a zero byte).
struct Colliding {
  uint64_t a[2], b[2];
};
Colliding colliding_pair(uint64_t seed, uint64_t first) {
  const uint64_t h0 = intern::mix64(seed + 16 + 0x9e3779b97f4a7c15ull);
  Colliding c{{0x1111222233334444ull, 0x5555666677778888ull}, {first, 0}};
  c.b[1] = intern::mix64(h0 ^ c.a[0]) ^ c.a[1] ^ intern::mix64(h0 ^ c.b[0]);
  return c;
}

// A slot's hash only finds it: a different stack with the same hash gets its own id (before,
// the table returned the first stack's id, so the allocation showed the other call site).
TEST(TraceWriter, StacksWithTheSameHashKeepTheirOwnIds) {
  const Colliding c = colliding_pair(1, 0x0123456789abcdefull);
  ASSERT_EQ(intern::hash_stack(c.a, 2), intern::hash_stack(c.b, 2));  // the test's premise
  ScratchDir dir;
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, dir.file("k.trace")));
  const uint32_t a = w.intern_stack(c.a, 2);
  const uint32_t b = w.intern_stack(c.b, 2);
  EXPECT_NE(a, b);
  EXPECT_EQ(w.intern_stack(c.a, 2), a);  // both stay deduplicated
  EXPECT_EQ(w.intern_stack(c.b, 2), b);
  w.close();
  ReadResult got = read_trace(dir.file("k.trace"));
  ASSERT_EQ(got.events.size(), 2u);  // each written once
  EXPECT_EQ(got.events[0].rec.aux, a);
  EXPECT_EQ(got.events[0].payload, std::string(reinterpret_cast<const char*>(c.a), 16));
  EXPECT_EQ(got.events[1].rec.aux, b);
  EXPECT_EQ(got.events[1].payload, std::string(reinterpret_cast<const char*>(c.b), 16));
}

TEST(TraceWriter, StringsWithTheSameHashKeepTheirOwnIds) {
  auto printable = [](uint64_t w) {
    for (int i = 0; i < 8; ++i) {
      const uint8_t byte = static_cast<uint8_t>(w >> (8 * i));
      if (byte == 0) return false;
    }
    return true;
  };
  Colliding c{};
  for (uint64_t first = 0x6161616161616161ull;; ++first) {  // "aaaaaaaa", then on
    c = colliding_pair(2, first);
    if (printable(c.b[0]) && printable(c.b[1])) break;
  }
  char sa[17] = {}, sb[17] = {};
  std::memcpy(sa, c.a, 16);
  std::memcpy(sb, c.b, 16);
  ASSERT_EQ(intern::hash_string(sa, 16), intern::hash_string(sb, 16));
  ASSERT_NE(std::string(sa), std::string(sb));
  ScratchDir dir;
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, dir.file("s.trace")));
  const uint64_t a = w.intern_string(sa);
  const uint64_t b = w.intern_string(sb);
  EXPECT_NE(a, b);
  EXPECT_EQ(w.intern_string(sa), a);
  EXPECT_EQ(w.intern_string(sb), b);
  w.close();
  ReadResult got = read_trace(dir.file("s.trace"));
  ASSERT_EQ(got.events.size(), 2u);
  EXPECT_EQ(got.events[0].payload, std::string(sa, 16));
  EXPECT_EQ(got.events[1].payload, std::string(sb, 16));
}

// Once the frames kept for comparison fill their arena, new stacks are written again on every
// call (as with a full table), and every id still names its own frames.
TEST(TraceWriter, StackArenaUsedUpStillGivesEveryStackItsOwnId) {
  ScratchDir dir;
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, dir.file("arena.trace")));
  constexpr int kDepth = TraceWriter::kMaxStackDepth;
  const uint64_t fit = TraceWriter::kStackArenaPcs / kDepth, extra = 50;
  std::vector<uint64_t> pcs(kDepth);
  auto stack_of = [&](uint64_t i) {
    for (int f = 0; f < kDepth; ++f) pcs[f] = i * 1000 + static_cast<uint64_t>(f) + 1;
    return pcs.data();
  };
  std::map<uint32_t, uint64_t> stack_by_id;
  for (int round = 0; round < 2; ++round) {
    for (uint64_t i = 0; i < fit + extra; ++i) {
      const uint32_t id = w.intern_stack(stack_of(i), kDepth);
      auto [it, inserted] = stack_by_id.emplace(id, i);
      EXPECT_EQ(it->second, i) << "id " << id << " given to two stacks";
      if (round == 1 && i < fit) {
        EXPECT_FALSE(inserted) << "stack " << i << " kept";
      }
    }
  }
  w.close();
  ReadResult got = read_trace(dir.file("arena.trace"));
  // The ones that fit once, the rest twice.
  EXPECT_EQ(got.events.size(), fit + 2 * extra);
  uint64_t wrong = 0;
  for (const OwnedEvent& e : got.events) {
    const uint64_t i = stack_by_id.at(static_cast<uint32_t>(e.rec.aux));
    wrong += e.payload != std::string(reinterpret_cast<const char*>(stack_of(i)), kDepth * 8);
  }
  EXPECT_EQ(wrong, 0u);
}

TEST(TraceWriter, CreatesFileWithMode0600) {
  ScratchDir dir;
  const mode_t old = umask(0);  // a permissive umask must not widen the mode
  TraceWriter w;
  const bool ok = open_writer(w, dir.file("mode.trace"));
  umask(old);
  ASSERT_TRUE(ok);
  struct stat st;
  ASSERT_EQ(stat(dir.file("mode.trace").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  w.close();
}

TEST(TraceWriter, NeverOpensAnExistingFileOpenUnusedTakesTheNextName) {
  ScratchDir dir;
  const std::string path = dir.file("old.trace");
  std::ofstream(path) << "stale contents";
  chmod(path.c_str(), 0644);
  TraceWriter w;
  char err[512] = {};
  EXPECT_FALSE(w.open(path.c_str(), test_header(), err, sizeof(err)));
  EXPECT_NE(std::string(err).find("exists already"), std::string::npos) << err;
  ASSERT_TRUE(w.open_unused(path.c_str(), test_header(), err, sizeof(err))) << err;
  EXPECT_EQ(std::string(w.path()), path + ".1");
  w.close();
  std::ifstream in(path);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), {}), "stale contents");
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);  // not ours to change
  ASSERT_EQ(stat((path + ".1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(read_trace(path + ".1").events.size(), 0u);
}

TEST(TraceWriter, RefusesSymlinkAtPath) {
  ScratchDir dir;
  const std::string target = dir.file("precious.txt");
  const std::string link = dir.file("gpumem.trace");
  std::ofstream(target) << "precious";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  TraceWriter w;
  char err[512] = {};
  EXPECT_FALSE(w.open(link.c_str(), test_header(), err, sizeof(err)));
  EXPECT_FALSE(w.is_open());
  EXPECT_NE(std::string(err).find("symbolic link"), std::string::npos) << err;
  EXPECT_NE(std::string(err).find(link), std::string::npos) << err;
  std::ifstream in(target);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "precious");
  w.append(make_record(Op::alloc, 1, 1));  // a closed writer ignores appends
}

TEST(TraceWriter, RefusesDanglingSymlinkWithoutCreatingTarget) {
  ScratchDir dir;
  const std::string target = dir.file("would-be-created");
  const std::string link = dir.file("gpumem.trace");
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  TraceWriter w;
  char err[512] = {};
  EXPECT_FALSE(w.open(link.c_str(), test_header(), err, sizeof(err)));
  EXPECT_FALSE(std::filesystem::exists(target));
}

TEST(TraceWriter, RefusesDirectoryAndMissingFolder) {
  ScratchDir dir;
  TraceWriter w;
  char err[512] = {};
  EXPECT_FALSE(w.open(dir.path().c_str(), test_header(), err, sizeof(err)));
  EXPECT_NE(std::string(err).find("GPUMEM_TRACE"), std::string::npos) << err;
  EXPECT_FALSE(w.open(dir.file("no/such/dir.trace").c_str(), test_header(), err, sizeof(err)));
  EXPECT_NE(std::string(err).find("cannot create trace file"), std::string::npos) << err;
  EXPECT_FALSE(w.open("", test_header(), err, sizeof(err)));
}

TEST(TraceWriter, RefusesFileWithOtherHardLinks) {
  ScratchDir dir;
  const std::string other = dir.file("other.txt");
  std::ofstream(other) << "keep me";
  ASSERT_EQ(link(other.c_str(), dir.file("x.trace").c_str()), 0);
  TraceWriter w;
  char err[512] = {};
  EXPECT_FALSE(w.open(dir.file("x.trace").c_str(), test_header(), err, sizeof(err)));
  EXPECT_NE(std::string(err).find("hard links"), std::string::npos) << err;
  EXPECT_EQ(std::filesystem::file_size(other), 7u);
}

TEST(TraceWriter, SetDeviceFillsHeaderOnce) {
  ScratchDir dir;
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, dir.file("dev.trace")));
  w.set_device(2, 80ull << 30, 8ull << 30, "Simulated GPU");
  w.set_device(2, 1, 1, "ignored");  // once per device
  w.set_device(0, 16ull << 30, 0, "Other");
  w.set_device(trace::kMaxDevices, 1, 1, "out of range");
  w.set_device(-1, 1, 1, "out of range");
  w.close();
  ReadResult got = read_trace(dir.file("dev.trace"));
  EXPECT_EQ(got.header.device_count, 3u);
  EXPECT_EQ(got.header.devices[2].present, 1u);
  EXPECT_EQ(got.header.devices[2].capacity_bytes, 80ull << 30);
  EXPECT_EQ(got.header.devices[2].limit_bytes, 8ull << 30);
  EXPECT_STREQ(got.header.devices[2].name, "Simulated GPU");
  EXPECT_EQ(got.header.devices[1].present, 0u);
  EXPECT_STREQ(got.header.devices[0].name, "Other");
  ASSERT_EQ(got.events.size(), 2u);  // one device_info record per device
  EXPECT_EQ(got.events[0].rec.op, static_cast<uint16_t>(Op::device_info));
  EXPECT_EQ(got.events[0].rec.device, 2);
  EXPECT_EQ(got.events[0].rec.bytes, 80ull << 30);
  EXPECT_EQ(got.events[0].rec.aux, 8ull << 30);
}

TEST(TraceWriter, WritesSymbolsForStackAddresses) {
  ScratchDir dir;
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, dir.file("sym.trace")));
  // Return addresses inside a libc function and a mangled libstdc++ one.
  const uint64_t in_getpid = reinterpret_cast<uint64_t>(&getpid) + 1;
  const uint64_t in_terminate = reinterpret_cast<uint64_t>(&std::terminate) + 1;
  // A Python frame (tagged) is named when first seen, never here.
  const uint64_t python_frame = gpumem::trace::kPythonFrameTag | 7;
  const uint64_t pcs[4] = {in_getpid, python_frame, in_terminate, in_getpid};
  w.intern_stack(pcs, 4);
  EXPECT_EQ(w.write_symbols(), 2u);  // distinct addresses only
  EXPECT_EQ(w.write_symbols(), 0u);  // already symbolised
  w.close();
  ReadResult got = read_trace(dir.file("sym.trace"));
  std::map<uint64_t, std::string> strings, symbols;
  for (const OwnedEvent& e : got.events) {
    if (e.rec.op == static_cast<uint16_t>(Op::string)) strings[e.rec.aux] = e.payload;
    if (e.rec.op == static_cast<uint16_t>(Op::symbol)) symbols[e.rec.address] = strings[e.rec.aux];
  }
  ASSERT_EQ(symbols.size(), 2u);
  EXPECT_NE(symbols[in_getpid].find("getpid (libc.so"), std::string::npos) << symbols[in_getpid];
  EXPECT_NE(symbols[in_getpid].find("+0x"), std::string::npos);
  EXPECT_NE(symbols[in_terminate].find("std::terminate()"), std::string::npos)
      << symbols[in_terminate];
}

TEST(TraceWriter, ReopenStartsFreshTables) {
  ScratchDir dir;
  TraceWriter w;
  ASSERT_TRUE(open_writer(w, dir.file("a.trace")));
  w.intern_string("x");
  const uint64_t pcs[1] = {42};
  w.intern_stack(pcs, 1);
  w.close();
  ASSERT_TRUE(open_writer(w, dir.file("b.trace")));
  EXPECT_EQ(w.intern_string("x"), 1u);
  EXPECT_EQ(w.intern_stack(pcs, 1), 1u);
  w.close();
  ReadResult got = read_trace(dir.file("b.trace"));
  ASSERT_EQ(got.events.size(), 2u);  // both written again into the new file
}

}  // namespace
}  // namespace gpumem::test
