// Helpers shared by the trace tests: a scratch directory, and reading a whole trace into memory
// (fine for the small traces of unit tests; the reader itself streams).
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "gpumem/trace/reader.h"
#include "gpumem/trace/writer.h"

namespace gpumem::test {

class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "gpumem-trace-XXXXXX").string();
    path_ = mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string();
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct OwnedEvent {
  trace::Record rec;
  std::string payload;
};

struct ReadResult {
  std::vector<OwnedEvent> events;
  trace::ReadStats stats;
  trace::Header header;
};

// Every record of a trace, read one at a time (Reader::next) or, with `batched`, through
// Reader::next_batch (records read in place, many per call).
inline ReadResult read_trace(const std::string& path, bool batched = false) {
  ReadResult out{};
  std::string error;
  auto reader = trace::Reader::open(path, &error);
  EXPECT_NE(reader, nullptr) << error;
  if (!reader) return out;
  out.header = reader->header();
  trace::Event ev;
  trace::Batch b;
  while (batched ? reader->next_batch(&b) : reader->next(&ev)) {
    if (!batched) {
      out.events.push_back({ev.rec, std::string(ev.payload)});
      continue;
    }
    EXPECT_GE(b.count, 1u);
    EXPECT_TRUE(b.count == 1 || b.payload.empty()) << "a blob comes alone with its payload";
    for (size_t i = 0; i < b.count; ++i)
      out.events.push_back({b.records[i], std::string(b.payload)});
  }
  out.stats = reader->stats();
  return out;
}

// The file's size; 0 when it cannot be seen.
inline uint64_t size_of(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

inline trace::Header test_header() {
  trace::Header h{};
  std::snprintf(h.host, sizeof(h.host), "testhost");
  std::snprintf(h.pool, sizeof(h.pool), "none");
  std::snprintf(h.command, sizeof(h.command), "trace_tests --flag");
  std::snprintf(h.config, sizeof(h.config), "GPUMEM_STACKS=0\n");
  h.rank = 3;
  return h;
}

inline bool open_writer(TraceWriter& w, const std::string& path) {
  char err[512] = {};
  const bool ok = w.open(path.c_str(), test_header(), err, sizeof(err));
  EXPECT_TRUE(ok) << err;
  return ok;
}

inline trace::Record make_record(trace::Op op, uint64_t address, uint64_t bytes) {
  trace::Record r{};
  r.op = static_cast<uint16_t>(op);
  r.api = static_cast<uint16_t>(trace::Api::cudaMalloc);
  r.address = address;
  r.bytes = bytes;
  return r;
}

}  // namespace gpumem::test
