// Writes gpumem trace files directly from gpumem/trace/format.h structs, for replay tests with
// known answers: a header (devices, capacities, limits, pool) and 64-byte records, closed cleanly;
// load() compiles one into a replay program.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gpumem/replay/replay.h"
#include "gpumem/trace/format.h"

namespace gpumem::replay_test {

class TraceFile {
 public:
  explicit TraceFile(uint64_t capacity, const char* pool = "none", uint64_t limit = 0,
                     int devices = 1) {
    std::memset(&header_, 0, sizeof header_);
    std::memcpy(header_.magic, trace::kMagic, sizeof header_.magic);
    header_.version = trace::kVersion;
    header_.header_size = trace::kHeaderSize;
    header_.record_size = trace::kRecordSize;
    header_.pid = 4242;
    header_.rank = -1;
    header_.flags = trace::kHeaderClosed | trace::kHeaderSimulated;
    header_.clock_base_ns = 1000;
    header_.device_count = static_cast<uint32_t>(devices);
    std::snprintf(header_.pool, sizeof header_.pool, "%s", pool);
    std::snprintf(header_.command, sizeof header_.command, "replay-test");
    for (int d = 0; d < devices; ++d) {
      header_.devices[d].capacity_bytes = capacity;
      header_.devices[d].limit_bytes = limit;
      std::snprintf(header_.devices[d].name, sizeof header_.devices[d].name, "test device");
      header_.devices[d].present = 1;
    }
  }

  trace::Record& add(trace::Op op, uint64_t address, uint64_t bytes, int device = 0,
                     trace::Api api = trace::Api::cudaMalloc, uint16_t flags = 0) {
    trace::Record r{};
    r.t_ns = header_.clock_base_ns + 1000 * (records_.size() + 1);
    r.op = static_cast<uint16_t>(op);
    r.api = static_cast<uint16_t>(api);
    r.device = static_cast<int16_t>(device);
    r.flags = flags;
    r.address = address;
    r.bytes = bytes;
    r.commit = trace::kCommitted;
    records_.push_back(r);
    return records_.back();
  }
  void alloc(uint64_t address, uint64_t bytes, int device = 0, uint16_t flags = 0) {
    add(trace::Op::alloc, address, bytes, device, trace::Api::cudaMalloc, flags);
  }
  void free(uint64_t address, uint64_t bytes, int device = 0, uint16_t flags = 0) {
    add(trace::Op::free, address, bytes, device, trace::Api::cudaFree, flags);
  }
  void failed(uint64_t bytes, uint64_t in_use, int device = 0) {
    add(trace::Op::alloc_failed, 0, bytes, device).aux = in_use;
  }
  // A string blob (one head, payload in continuation slots) and a phase begin/end using it.
  void string(uint64_t id, const std::string& text) {
    const size_t slots = (text.size() + trace::kBlobBytesPerSlot - 1) / trace::kBlobBytesPerSlot;
    trace::Record& head = add(trace::Op::string, slots, text.size(), -1, trace::Api::gpumem);
    head.aux = id;
    for (size_t i = 0; i < slots; ++i) {
      trace::Record c{};
      std::memcpy(&c, text.data() + i * trace::kBlobBytesPerSlot,
                  std::min(trace::kBlobBytesPerSlot, text.size() - i * trace::kBlobBytesPerSlot));
      c.commit = trace::kContinuation;
      records_.push_back(c);
    }
  }
  void begin(uint64_t id) { add(trace::Op::mark_begin, 0, 0, -1, trace::Api::gpumem).aux = id; }
  void end(uint64_t id) { add(trace::Op::mark_end, 0, 0, -1, trace::Api::gpumem).aux = id; }

  void write(const std::string& path) {
    std::vector<char> head(trace::kHeaderSize, 0);
    header_.end_offset = trace::kHeaderSize + records_.size() * trace::kRecordSize;
    std::memcpy(head.data(), &header_, sizeof header_);
    FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(head.data(), 1, head.size(), f);
    std::fwrite(records_.data(), trace::kRecordSize, records_.size(), f);
    std::fclose(f);
  }

  trace::Header& header() { return header_; }

 private:
  trace::Header header_;
  std::vector<trace::Record> records_;
};

// A fresh file name under the test's temporary directory.
inline std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir && *dir ? dir : "/tmp") + "/gpumem-replay-" + std::to_string(getpid()) +
         "-" + name + ".trace";
}

// Writes `t` to a temporary file, compiles it (load_program) and removes the file.
inline std::unique_ptr<replay::Program> load(TraceFile& t, const std::string& name) {
  const std::string path = temp_path(name);
  t.write(path);
  std::string error;
  auto p = replay::load_program(path, &error);
  EXPECT_NE(p, nullptr) << error;
  ::unlink(path.c_str());
  return p;
}

}  // namespace gpumem::replay_test
