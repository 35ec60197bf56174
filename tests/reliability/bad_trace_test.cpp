// Bad-input matrix, traces: a small real trace cut at byte offsets through `gpumem dump` and
// `gpumem report`; empty and header-only traces. Never a crash: exit 0 (with what could be read)
// or 1 (with a message); a cut never invents records.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "gpumem/trace/writer.h"
#include "process.h"
#include "sanitized.h"
#include "support.h"

namespace reliability {
namespace {

namespace tr = gpumem::trace;
using BadTrace = ScratchTest;

// A small trace of every kind of record the preload writes (device info, allocations with a
// call stack, a marked phase, frees, an anomaly, a failure), written with the real writer
// in-process, so this test also runs in the sanitizer builds where preloaded children cannot.
std::string make_small_trace(const std::string& dir) {
  const std::string trace = dir + "/small.trace";
  gpumem::TraceWriter w;
  tr::Header header{};
  header.flags = tr::kHeaderStacks;
  char err[512];
  EXPECT_TRUE(w.open(trace.c_str(), header, err, sizeof err)) << err;
  w.set_device(0, 16ull << 30, 0, "simulated");
  const uint64_t pcs[3] = {0x401000, 0x402000, 0x403000};
  tr::Record r{};
  r.op = static_cast<uint16_t>(tr::Op::mark_begin);
  r.aux = w.intern_string("epoch 1");
  w.append(r);
  for (uint64_t i = 0; i < 6; ++i) {
    r = {};
    r.op = static_cast<uint16_t>(tr::Op::alloc);
    r.api = static_cast<uint16_t>(tr::Api::cudaMalloc);
    r.address = 0x7f0000000000ull + i * 4096;
    r.bytes = 1000 * (i + 1);
    r.site = w.intern_stack(pcs, 1 + static_cast<int>(i % 3));
    w.append(r);
  }
  for (uint64_t i = 0; i < 5; ++i) {
    r = {};
    r.op = static_cast<uint16_t>(tr::Op::free);
    r.api = static_cast<uint16_t>(tr::Api::cudaFree);
    r.address = 0x7f0000000000ull + i * 4096;
    r.bytes = 1000 * (i + 1);
    w.append(r);
  }
  r = {};
  r.op = static_cast<uint16_t>(tr::Op::anomaly);
  r.address = 0x1234;
  r.aux = static_cast<uint64_t>(tr::AnomalyKind::free_unknown);
  w.append(r);
  r = {};
  r.op = static_cast<uint16_t>(tr::Op::alloc_failed);
  r.bytes = 1ull << 40;
  r.result = 2;
  w.append(r);
  r = {};
  r.op = static_cast<uint16_t>(tr::Op::mark_end);
  w.append(r);
  w.close();
  return trace;
}

void write_prefix(const std::string& full, const std::string& path, size_t n) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, full.data(), n), static_cast<ssize_t>(n));
  ::close(fd);
}

// Records printed by `gpumem dump` (lines other than the header and summary).
int dumped_records(const std::string& out) {
  int lines = 0;
  size_t pos = 0;
  while ((pos = out.find("{\"op\"", pos)) != std::string::npos) ++lines, ++pos;
  return lines;
}

TEST_F(BadTrace, CutAtByteOffsetsNeverCrashesNorInventsRecords) {
  const std::string full = slurp(make_small_trace(dir_));
  ASSERT_GT(full.size(), size_t{tr::kHeaderSize});
  // Every byte in the long form. Otherwise: all of the record area near record boundaries and
  // every 7th byte elsewhere, and every 997th byte of the header plus its first 128. Under a
  // sanitizer (two spawns per offset, each paying the runtime's start-up) only the boundaries and
  // each record's middle; the fuzz stage cuts traces at every byte in-process.
  constexpr bool sparse = gpumem::test::kSanitized;
  std::vector<size_t> offsets;
  for (size_t off = 0; off <= full.size(); ++off) {
    const size_t in_rec = off < tr::kHeaderSize ? 0 : (off - tr::kHeaderSize) % tr::kRecordSize;
    const bool in_record_pick = sparse ? (in_rec <= 1 || in_rec == tr::kRecordSize - 1 ||
                                          in_rec == tr::kRecordSize / 2)
                                       : (in_rec <= 1 || in_rec >= 62 || in_rec % 7 == 0);
    const bool pick = long_form() || off == full.size() ||
                      (off < tr::kHeaderSize ? (off < (sparse ? 32 : 128) || off % 997 == 0)
                                             : in_record_pick);
    if (pick) offsets.push_back(off);
  }
  const auto env = child_environment(false, {});
  const std::string cut = dir_ + "/cut.trace";
  int previous_records = 0, runs = 0;
  for (size_t off : offsets) {
    SCOPED_TRACE("cut at byte " + std::to_string(off));
    write_prefix(full, cut, off);
    const Outcome dump = run({GPUMEM_CLI, "dump", cut}, env, dir_);
    const Outcome report = run({GPUMEM_CLI, "report", cut, "--json", "-"}, env, dir_);
    runs += 2;
    for (const Outcome* o : {&dump, &report}) {
      ASSERT_FALSE(o->signaled) << o->err;
      ASSERT_TRUE(o->status == 0 || o->status == 1) << o->status << " " << o->err;
      if (o->status == 1) {
        EXPECT_FALSE(o->err.empty()) << "exit 1 without a message";
      }
    }
    if (off < tr::kHeaderSize) {
      EXPECT_EQ(dump.status, 1) << "a cut header is refused";
      continue;
    }
    EXPECT_EQ(dump.status, 0) << dump.err;
    EXPECT_EQ(report.status, 0) << report.err;
    const int records = dumped_records(dump.out);
    EXPECT_GE(records, previous_records) << "a longer prefix shows fewer records";
    EXPECT_LE(static_cast<size_t>(records), (off - tr::kHeaderSize) / tr::kRecordSize);
    previous_records = records;
    if (HasFailure()) break;
  }
  // The whole file shows every record the reader sees.
  const LoadedTrace t = load_trace(cut);
  ASSERT_TRUE(t.opened);
  EXPECT_GE(previous_records, static_cast<int>(t.records.size()));
  std::printf("reliability.bad_trace: %zu cut offsets, %d dump/report runs\n", offsets.size(),
              runs);
}

TEST_F(BadTrace, EmptyFileIsRefusedWithAMessage) {
  const std::string empty = dir_ + "/empty.trace";
  write_prefix("", empty, 0);
  const auto env = child_environment(false, {});
  for (const auto& argv : {std::vector<std::string>{GPUMEM_CLI, "dump", empty},
                           std::vector<std::string>{GPUMEM_CLI, "report", empty, "--json", "-"},
                           std::vector<std::string>{GPUMEM_CLI, "report", empty}}) {
    const Outcome o = run(argv, env, dir_);
    EXPECT_EQ(o.status, 1) << argv[1] << ": " << o.err;
    EXPECT_NE(o.err.find(empty), std::string::npos) << "the message names the file: " << o.err;
  }
}

TEST_F(BadTrace, HeaderOnlyTraceReportsNothingAllocated) {
  const std::string path = dir_ + "/header-only.trace";
  gpumem::TraceWriter writer;
  tr::Header header{};
  char err[512];
  ASSERT_TRUE(writer.open(path.c_str(), header, err, sizeof err)) << err;
  writer.close();
  const auto env = child_environment(false, {});
  const Outcome dump = run({GPUMEM_CLI, "dump", path}, env, dir_);
  EXPECT_EQ(dump.status, 0) << dump.err;
  EXPECT_EQ(dumped_records(dump.out), 0);
  const Outcome report = run({GPUMEM_CLI, "report", path, "--json", "-"}, env, dir_);
  ASSERT_EQ(report.status, 0) << report.err;
  const auto j = nlohmann::json::parse(report.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << report.out;
  const Outcome text = run({GPUMEM_CLI, "report", path}, env, dir_);
  EXPECT_EQ(text.status, 0) << text.err;
  // A directory with no traces in it.
  const std::string empty_dir = dir_ + "/none";
  ASSERT_EQ(::mkdir(empty_dir.c_str(), 0700), 0);
  const Outcome none = run({GPUMEM_CLI, "report", empty_dir}, env, dir_);
  EXPECT_EQ(none.status, 1) << none.err;
  EXPECT_FALSE(none.err.empty());
}

}  // namespace
}  // namespace reliability
