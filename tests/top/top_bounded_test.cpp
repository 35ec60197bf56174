// `gpumem top` following a bounded trace (GPUMEM_TRACE_MAX, issue 23) that this test writes with
// the real writer: when the trace drops more of its middle between two looks, top reads it again
// from its start and ends with the counts and peak of the whole run, as `gpumem report` has them.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "gpumem/trace/format_v2.h"
#include "gpumem/trace/writer.h"
#include "scratch.h"
#include "shell.h"
#include "top_support.h"

namespace {

using gpumem::TraceWriter;
using gpumem::test::ScratchDir;
using gpumem::test::sh;
using gpumem::test::top::read_file;
using gpumem::test::top::start_plain_top;
using gpumem::test::top::stop_top;
using gpumem::test::top::wait_for;
namespace tr = gpumem::trace;

// `pairs` allocation/free pairs of 4 KiB (a new address each, random aux: about 18 bytes a
// record), the first `first` of them already appended.
void append_pairs(TraceWriter& w, uint64_t first, uint64_t pairs) {
  for (uint64_t i = first; i < first + pairs; ++i) {
    tr::Record r{};
    r.op = static_cast<uint16_t>(tr::Op::alloc);
    r.api = static_cast<uint16_t>(tr::Api::cudaMalloc);
    r.device = 0;
    r.address = 0x7f0000000000ull + i * 4096;
    r.bytes = 4096;
    r.aux = (i * 0x9E3779B97F4A7C15ull) >> 7;
    w.append(r);
    r.op = static_cast<uint16_t>(tr::Op::free);
    w.append(r);
  }
}

TEST(TopFollow, ABoundedTraceThatDropsMoreIsReadAgainAndEndsWithTheWholeRunsCounts) {
  ScratchDir dir("gpumem-top-bounded");
  const std::string path = dir / "bounded.trace";
  const std::string out = dir / "top.out";
  TraceWriter w;
  w.set_max_bytes(tr::kMinTraceMax);
  char err[512];
  ASSERT_TRUE(w.open(path.c_str(), tr::Header{}, err, sizeof err)) << err;
  w.set_device(0, 16ull << 30, 0, "test device");
  append_pairs(w, 0, 100'000);  // the window goes round: part of the middle is dropped
  const pid_t top = start_plain_top(std::string(GPUMEM_CLI), path, out, dir / "top.pid");
  ASSERT_GT(top, 0);
  ASSERT_TRUE(wait_for([&] {
    return read_file(out).find("state=running allocated=0 ") != std::string::npos &&
           read_file(out).find(" allocs=100000 ") != std::string::npos;
  })) << read_file(out);
  append_pairs(w, 100'000, 100'000);  // more of the middle goes
  w.close();
  const bool ended = wait_for(
      [&] { return read_file(out).find("state=ended allocated=0 ") != std::string::npos; });
  stop_top(top);
  const std::string seen = read_file(out);
  EXPECT_TRUE(ended) << seen.substr(seen.size() > 2000 ? seen.size() - 2000 : 0);
  const size_t at = seen.find("state=ended allocated=0 ");
  ASSERT_NE(at, std::string::npos);
  const std::string line = seen.substr(at, seen.find('\n', at) - at);
  EXPECT_NE(line.find(" peak=4096 "), std::string::npos) << line;
  EXPECT_NE(line.find(" allocs=200000 "), std::string::npos) << line;
  EXPECT_NE(seen.find("dropped more of its middle: read again from its start"), std::string::npos)
      << seen.substr(seen.size() > 2000 ? seen.size() - 2000 : 0);
}

}  // namespace
