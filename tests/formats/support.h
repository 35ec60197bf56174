// Shared by the formats tests: temporary files, Python runs, and a trace analysed into a Report.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gpumem/analyzer/report.h"
#include "gpumem/formats/convert.h"

namespace gpumem::formats_test {

inline std::string temp_file(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/gpumem-formats-" + std::to_string(getpid()) +
         "-" + name;
}

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

inline void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Runs a shell command; returns its stdout, *status its exit status.
inline std::string shell(const std::string& command, int* status = nullptr) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  char buf[4096];
  size_t n;
  while (p && (n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = p ? ::pclose(p) : -1;
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

// python3 runs `program` (which writes the pickle to the path in sys.argv[1]); returns the bytes.
inline std::string python_pickle(const std::string& name, const std::string& program) {
  const std::string script = temp_file(name + ".py"), out = temp_file(name + ".pickle");
  write_all(script, program);
  int status = 0;
  shell("python3 " + script + " " + out + " 2>&1", &status);
  EXPECT_EQ(status, 0) << "python3 failed on " << script;
  std::string bytes = read_all(out);
  ::unlink(script.c_str());
  ::unlink(out.c_str());
  return bytes;
}

// A hostile snapshot of a few KB: `segments` lists one segment dict `segments` times and its
// `blocks` one active block dict `blocks` times, each repeat a one-byte DUP. Read naively it is
// segments x blocks allocations (3000 x 3000 from 6 KB: 20 s and 2 GB before the reader refused
// repeated dicts). PROTO 2, {"segments": [MARK {address: 0, total_size: 1, blocks: [MARK
// {state: "active_allocated", size: 1, address: 0} DUP...  APPENDS]} DUP... APPENDS]} STOP.
inline std::string repeated_dict_snapshot(size_t segments, size_t blocks) {
  const auto str = [](const std::string& t) {  // SHORT_BINUNICODE
    return std::string("\x8c") + static_cast<char>(t.size()) + t;
  };
  const std::string zero("K\x00", 2), one("K\x01", 2);  // BININT1
  std::string p("\x80\x02}", 3);                        // PROTO 2, EMPTY_DICT
  p += str("segments") + "](";                          // EMPTY_LIST, MARK
  p += "}(" + str("address") + zero + str("total_size") + one + str("blocks") + "](";
  p += "}(" + str("state") + str("active_allocated") + str("size") + one + str("address") + zero +
       "u";                           // SETITEMS: the block dict
  p += std::string(blocks - 1, '2');  // DUP
  p += "eu";                          // APPENDS (blocks), SETITEMS (the segment dict)
  p += std::string(segments - 1, '2');
  p += "es.";  // APPENDS (segments), SETITEM, STOP
  return p;
}

inline analyzer::Report analyze(const std::string& trace_path) {
  analyzer::Analysis analysis;
  std::vector<std::string> errors;
  EXPECT_EQ(analyzer::analyze_files({trace_path}, analysis, &errors, false), 1u)
      << (errors.empty() ? "" : errors[0]);
  return analysis.finish();
}

inline analyzer::Report analyze(formats::TraceImage& image, const std::string& name) {
  const std::string path = temp_file(name + ".trace");
  ::unlink(path.c_str());
  std::string error;
  EXPECT_TRUE(image.write(path, &error)) << error;
  analyzer::Report r = analyze(path);
  ::unlink(path.c_str());
  return r;
}

// What a converted file must report as the trace did: peaks, final state, leaks, counts and live
// at peak by size class; reserved only when the format keeps segments (`reserved`).
inline void expect_same(const analyzer::Report& want, const analyzer::Report& got, bool reserved) {
  ASSERT_EQ(got.devices.size(), want.devices.size());
  for (size_t i = 0; i < want.devices.size(); ++i) {
    const analyzer::DeviceReport& a = want.devices[i];
    const analyzer::DeviceReport& b = got.devices[i];
    EXPECT_EQ(b.peak.allocated_bytes, a.peak.allocated_bytes);
    if (reserved) {
      EXPECT_EQ(b.peak.reserved_bytes, a.peak.reserved_bytes);
      EXPECT_EQ(b.peak.reserved_at_peak_bytes, a.peak.reserved_at_peak_bytes);
      EXPECT_EQ(b.final.reserved_bytes, a.final.reserved_bytes);
    }
    EXPECT_EQ(b.final.allocated_bytes, a.final.allocated_bytes);
    EXPECT_EQ(b.final.leaked_allocations, a.final.leaked_allocations);
    EXPECT_EQ(b.final.leaked_bytes, a.final.leaked_bytes);
    EXPECT_EQ(b.counts.alloc, a.counts.alloc);
    EXPECT_EQ(b.counts.free, a.counts.free);
    ASSERT_EQ(b.peak.live_at_peak_by_size_class.size(), a.peak.live_at_peak_by_size_class.size());
    for (size_t k = 0; k < a.peak.live_at_peak_by_size_class.size(); ++k) {
      const auto& x = a.peak.live_at_peak_by_size_class[k];
      const auto& y = b.peak.live_at_peak_by_size_class[k];
      EXPECT_EQ(y.min_bytes, x.min_bytes);
      EXPECT_EQ(y.count, x.count);
      EXPECT_EQ(y.bytes, x.bytes);
    }
  }
}

}  // namespace gpumem::formats_test
