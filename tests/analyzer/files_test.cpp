// Trace files written by hand (header + 64-byte records), read through the real reader:
// clean, not closed, torn, cut, corrupt; directories; and the `gpumem report` command itself.
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <fstream>

#include <nlohmann/json.hpp>

#include "events.h"
#include "gpumem/analyzer/report.h"

namespace gpumem::analyzer {
namespace {

namespace fs = std::filesystem;
using testing::Events;
using testing::make_header;

class Files : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("gpumem-analyzer-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes the events as a trace file. Blob records get their continuation slots.
  std::string write(const std::string& name, const Events& e, trace::Header header,
                    bool closed = true) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << e.file_bytes(header, closed);
    return path;
  }

  Report analyze(const std::vector<std::string>& inputs, std::vector<std::string>* errors) {
    Analysis a;
    analyze_files(expand_inputs(inputs, errors), a, errors, false);
    return a.finish();
  }

  fs::path dir_;
};

Events simple() {
  Events e;
  e.alloc(10, 0x10, 1000).alloc(20, 0x20, 500).free(30, 0x10);
  return e;
}

TEST_F(Files, CleanTraceIsNotTruncated) {
  std::string path = write("a.trace", simple(), make_header());
  std::vector<std::string> errors;
  Report r = analyze({path}, &errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(r.traces.size(), 1u);
  EXPECT_FALSE(r.traces[0].truncated);
  EXPECT_EQ(r.traces[0].events, 3u);
  EXPECT_EQ(r.devices[0].peak.allocated_bytes, 1500u);
  EXPECT_EQ(r.devices[0].final.leaked_bytes, 500u);
}

TEST_F(Files, NotClosedIsTruncatedWithReason) {
  std::string path = write("a.trace", simple(), make_header(), /*closed=*/false);
  std::vector<std::string> errors;
  Report r = analyze({path}, &errors);
  ASSERT_EQ(r.traces.size(), 1u);
  EXPECT_TRUE(r.traces[0].truncated);
  EXPECT_NE(r.traces[0].truncated_reason.find("not closed"), std::string::npos);
  EXPECT_EQ(r.devices[0].peak.allocated_bytes, 1500u);  // everything readable was analysed
}

TEST_F(Files, TornRecordIsSkippedAndTheRestAnalysed) {
  Events e = simple();
  trace::Record torn = Events::rec(25, trace::Op::alloc, 0x30, 1 << 30, 0, 0);
  torn.commit = 0x12345678;  // cut by a kill
  e.add(torn).alloc(40, 0x40, 7);
  std::string path = write("a.trace", e, make_header(), /*closed=*/false);
  std::vector<std::string> errors;
  Report r = analyze({path}, &errors);
  ASSERT_EQ(r.traces.size(), 1u);
  EXPECT_EQ(r.traces[0].torn, 1u);
  EXPECT_EQ(r.traces[0].events, 4u);
  EXPECT_TRUE(r.traces[0].truncated);
  EXPECT_EQ(r.devices[0].peak.allocated_bytes, 1500u);
  EXPECT_EQ(r.devices[0].final.allocated_bytes, 507u);
}

TEST_F(Files, CutInTheMiddleOfARecord) {
  std::string path = write("a.trace", simple(), make_header(), /*closed=*/false);
  fs::resize_file(path, fs::file_size(path) - 20);
  std::vector<std::string> errors;
  Report r = analyze({path}, &errors);
  ASSERT_EQ(r.traces.size(), 1u);
  EXPECT_TRUE(r.traces[0].truncated);
  EXPECT_EQ(r.traces[0].events, 2u);
  EXPECT_EQ(r.devices[0].peak.allocated_bytes, 1500u);
  EXPECT_EQ(r.devices[0].final.allocated_bytes, 1500u);
}

TEST_F(Files, CorruptFilesAreSkippedWithAMessage) {
  std::string bad = (dir_ / "bad.trace").string();
  std::ofstream(bad) << "this is not a trace";
  std::string good = write("good.trace", simple(), make_header());
  std::vector<std::string> errors;
  Report r = analyze({bad, good, (dir_ / "missing.trace").string()}, &errors);
  ASSERT_EQ(errors.size(), 2u);
  // Missing paths are found while expanding the inputs, bad files while reading them.
  EXPECT_NE(errors[0].find("missing.trace: no such file"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("bad.trace"), std::string::npos) << errors[1];
  ASSERT_EQ(r.traces.size(), 1u);
  EXPECT_EQ(r.traces[0].path, good);
}

TEST_F(Files, RandomGarbageAfterTheHeaderNeverCrashes) {
  Events e;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 2000; ++i) {
    trace::Record r;
    uint64_t words[8];
    for (auto& w : words) w = rng();
    std::memcpy(&r, words, sizeof r);
    if (i % 2) r.commit = trace::kCommitted;
    r.op = static_cast<uint16_t>(rng() % 20);
    e.add(r);
  }
  std::string path = write("noise.trace", e, make_header());
  std::vector<std::string> errors;
  Report r = analyze({path}, &errors);
  ASSERT_EQ(r.traces.size(), 1u);
  EXPECT_GT(r.traces[0].events, 0u);
}

TEST_F(Files, DirectoryOfRanks) {
  for (int rank = 0; rank < 3; ++rank) {
    Events e;
    e.alloc(1, 0x10, 1000u * (rank + 1));
    write("rank" + std::to_string(rank) + ".trace", e, make_header(300 + rank, rank));
  }
  std::ofstream(dir_ / "notes.txt") << "ignored";
  std::vector<std::string> errors;
  Report r = analyze({dir_.string()}, &errors);
  EXPECT_TRUE(errors.empty());
  ASSERT_EQ(r.traces.size(), 3u);
  EXPECT_EQ(r.traces[2].rank, 2);
  ASSERT_TRUE(r.ranks.has_value());
  EXPECT_EQ(r.ranks->peak_allocated.max_bytes, 3000u);
  EXPECT_EQ(r.ranks->peak_allocated.min_bytes, 1000u);
  EXPECT_DOUBLE_EQ(r.ranks->peak_allocated.mean_bytes, 2000.0);
  EXPECT_DOUBLE_EQ(r.ranks->peak_allocated.imbalance, 0.5);
}

TEST_F(Files, StringsAndStacksTravelAsBlobs) {
  // A phase name longer than one slot (60 bytes) needs two continuation slots.
  std::string name(100, 'p');
  Events e;
  auto blob = [&](trace::Op op, uint64_t id, const std::string& payload) {
    uint64_t slots = (payload.size() + trace::kBlobBytesPerSlot - 1) / trace::kBlobBytesPerSlot;
    e.add(Events::rec(0, op, slots, payload.size(), id, -1));
    for (uint64_t s = 0; s < slots; ++s) {
      trace::Record c{};
      std::string part = payload.substr(s * trace::kBlobBytesPerSlot, trace::kBlobBytesPerSlot);
      std::memcpy(&c, part.data(), part.size());
      c.commit = trace::kContinuation;
      e.add(c);
    }
  };
  blob(trace::Op::string, 1, name);
  uint64_t pcs[2] = {0x400000, 0x500000};
  blob(trace::Op::stack, 9, std::string(reinterpret_cast<const char*>(pcs), sizeof pcs));
  e.begin(5, 1).alloc(10, 0x10, 64, 9).end(20, 1);
  std::string path = write("a.trace", e, make_header());
  std::vector<std::string> errors;
  Report r = analyze({path}, &errors);
  ASSERT_EQ(r.devices.size(), 1u);
  ASSERT_TRUE(r.devices[0].peak.phase.has_value());
  EXPECT_EQ(*r.devices[0].peak.phase, name);
  ASSERT_EQ(r.devices[0].peak.live_at_peak.size(), 1u);
  EXPECT_EQ(r.devices[0].peak.live_at_peak[0].frames,
            (std::vector<std::string>{"0x400000", "0x500000"}));
}

TEST_F(Files, ReportMainWritesJson) {
  std::string path = write("a.trace", simple(), make_header());
  ReportOptions o;
  o.inputs = {path};
  o.json_path = (dir_ / "report.json").string();
  o.progress = false;
  ASSERT_EQ(report_main(o), 0);
  std::ifstream in(o.json_path);
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["schema"], "gpumem.report/1");
  EXPECT_EQ(j["devices"][0]["peak"]["allocated_bytes"], 1500);
}

TEST_F(Files, ReportMainFailsWhenNothingIsReadable) {
  ReportOptions o;
  o.inputs = {(dir_ / "nothing-here.trace").string()};
  o.progress = false;
  EXPECT_EQ(report_main(o), 1);
}

std::string run(const std::string& command, int* status) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *status = WEXITSTATUS(pclose(p));
  return out;
}

TEST_F(Files, CommandLine) {
  if (!fs::exists(GPUMEM_CLI)) GTEST_SKIP() << GPUMEM_CLI << " is not built";
  std::string path = write("a.trace", simple(), make_header());
  int status = -1;
  std::string json = run(std::string(GPUMEM_CLI) + " report " + path + " --json - 2>/dev/null", &status);
  EXPECT_EQ(status, 0);
  auto j = nlohmann::json::parse(json);
  EXPECT_EQ(j["devices"][0]["peak"]["allocated_bytes"], 1500);

  std::string text = run(std::string(GPUMEM_CLI) + " report " + dir_.string(), &status);
  EXPECT_EQ(status, 0);
  EXPECT_NE(text.find("peak allocated: 1.46 KiB"), std::string::npos) << text;

  std::string err = run(std::string(GPUMEM_CLI) + " report " + (dir_ / "nope").string() + " 2>&1",
                        &status);
  EXPECT_EQ(status, 1);
  EXPECT_NE(err.find("no such file or directory"), std::string::npos) << err;
  EXPECT_NE(err.find("no trace could be read"), std::string::npos) << err;

  const std::string page = (dir_ / "report.html").string();
  std::string html = run(std::string(GPUMEM_CLI) + " report " + path + " --html " + page + " 2>&1",
                         &status);
  EXPECT_EQ(status, 0) << html;
  EXPECT_TRUE(std::filesystem::exists(page)) << html;
  EXPECT_GT(std::filesystem::file_size(page), 1000u) << html;
}

// `gpumem report` streams a trace file: its peak resident size does not grow with the file. A
// 64 MiB trace (1M records) read whole into memory, as the foreign-format check once did
// (formats/src/foreign_inputs.cpp), shows as 64 MiB or more here.
TEST_F(Files, CommandLineStreamsInBoundedMemory) {
  if (!fs::exists(GPUMEM_CLI)) GTEST_SKIP() << GPUMEM_CLI << " is not built";
  const uint64_t n = 1u << 20;
  const std::string path = (dir_ / "big.trace").string();
  {
    std::ofstream out(path, std::ios::binary);
    trace::Header h = make_header();
    h.flags |= trace::kHeaderClosed;
    h.end_offset = trace::kHeaderSize + n * trace::kRecordSize;
    std::string head(trace::kHeaderSize, '\0');
    std::memcpy(head.data(), &h, sizeof h);
    out << head;
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t address = 0x100000 + (i / 2 % 512) * 0x1000;
      const trace::Record r = i % 2 == 0 ? Events::rec(static_cast<int64_t>(i), trace::Op::alloc, address, 4096, 0, 0)
                                         : Events::rec(static_cast<int64_t>(i), trace::Op::free, address, 0, 0, 0);
      out.write(reinterpret_cast<const char*>(&r), sizeof r);
    }
  }
  ASSERT_EQ(fs::file_size(path), trace::kHeaderSize + n * trace::kRecordSize);
  // The child's peak counts what it held before exec: this process's resident heap, which the
  // tests before this one grew to 55 MiB (the test failed after them, passed alone).
  malloc_trim(0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const char* argv[] = {GPUMEM_CLI, "report", path.c_str(), "--json", "/dev/null", nullptr};
    execv(GPUMEM_CLI, const_cast<char* const*>(argv));
    _exit(127);
  }
  int status = -1;
  rusage usage{};
  ASSERT_EQ(wait4(pid, &status, 0, &usage), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_LT(usage.ru_maxrss, 40 * 1024) << "gpumem report's peak resident size was "
                                          << usage.ru_maxrss << " KiB on a 64 MiB trace";
}

}  // namespace
}  // namespace gpumem::analyzer
