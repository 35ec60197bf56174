// Hand-built trace events for analyzer tests: every number in them is chosen, so every number in
// the report is known.
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "gpumem/analyzer/analysis.h"
#include "gpumem/trace/format.h"
#include "gpumem/trace/reader.h"

namespace gpumem::analyzer::testing {

using trace::MemKind;
using trace::Op;

inline constexpr uint64_t kBase = 1'000'000'000;  // clock_base_ns of test headers

inline trace::Header make_header(uint32_t pid = 100, int32_t rank = -1,
                                 const char* pool = "none") {
  static trace::Header h;  // large: keep it off the stack
  std::memset(&h, 0, sizeof h);
  std::memcpy(h.magic, trace::kMagic, 8);
  h.version = trace::kVersion;
  h.header_size = trace::kHeaderSize;
  h.record_size = trace::kRecordSize;
  h.pid = pid;
  h.rank = rank;
  h.clock_base_ns = kBase;
  h.device_count = 1;
  std::strncpy(h.host, "testhost", sizeof h.host - 1);
  std::strncpy(h.pool, pool, sizeof h.pool - 1);
  std::strncpy(h.command, "train --steps 3", sizeof h.command - 1);
  h.devices[0].capacity_bytes = 16ull << 30;
  std::strncpy(h.devices[0].name, "Simulated GPU", sizeof h.devices[0].name - 1);
  h.devices[0].present = 1;
  return h;
}

// A stream of events; times are given relative to kBase.
class Events {
 public:
  Events& alloc(int64_t t, uint64_t address, uint64_t bytes, uint32_t site = 0, int dev = 0,
                uint16_t flags = 0) {
    return add(rec(t, Op::alloc, address, bytes, 0, dev, site, flags));
  }
  Events& pooled(int64_t t, uint64_t address, uint64_t bytes, int dev = 0) {
    return alloc(t, address, bytes, 0, dev, trace::kFlagPooled);
  }
  Events& free(int64_t t, uint64_t address, int dev = 0) {
    return add(rec(t, Op::free, address, 0, 0, dev));
  }
  Events& failed(int64_t t, uint64_t bytes, uint64_t in_use, int dev = 0) {
    trace::Record r = rec(t, Op::alloc_failed, 0, bytes, in_use, dev);
    r.result = 2;  // cudaErrorMemoryAllocation
    return add(r);
  }
  Events& segment(int64_t t, uint64_t address, uint64_t bytes, int dev = 0) {
    return add(rec(t, Op::segment_reserve, address, bytes, 1, dev));
  }
  Events& release(int64_t t, uint64_t address, uint64_t bytes, int dev = 0) {
    return add(rec(t, Op::segment_release, address, bytes, 1, dev));
  }
  Events& begin(int64_t t, uint64_t name_id) { return add(rec(t, Op::mark_begin, 0, 0, name_id, -1)); }
  Events& end(int64_t t, uint64_t name_id) { return add(rec(t, Op::mark_end, 0, 0, name_id, -1)); }
  Events& anomaly(int64_t t, trace::AnomalyKind kind, uint64_t address, int dev = 0) {
    return add(rec(t, Op::anomaly, address, 0, static_cast<uint64_t>(kind), dev));
  }
  Events& string(uint64_t id, const std::string& text) {
    payloads_.push_back(text);
    return add(rec(0, Op::string, 1, text.size(), id, -1), payloads_.size());
  }
  Events& stack(uint32_t id, const std::vector<uint64_t>& pcs) {
    payloads_.emplace_back(reinterpret_cast<const char*>(pcs.data()), pcs.size() * 8);
    return add(rec(0, Op::stack, 1, pcs.size() * 8, id, -1), payloads_.size());
  }
  Events& symbol(uint64_t pc, uint64_t string_id) {
    return add(rec(0, Op::symbol, pc, 0, string_id, -1));
  }
  Events& add(trace::Record r, size_t payload = 0) {
    records_.push_back(r);
    payload_index_.push_back(payload);
    return *this;
  }

  static trace::Record rec(int64_t t, Op op, uint64_t address, uint64_t bytes, uint64_t aux,
                           int dev, uint32_t site = 0, uint16_t flags = 0) {
    trace::Record r{};
    r.t_ns = static_cast<uint64_t>(static_cast<int64_t>(kBase) + t);
    r.op = static_cast<uint16_t>(op);
    r.address = address;
    r.bytes = bytes;
    r.aux = aux;
    r.device = static_cast<int16_t>(dev);
    r.site = site;
    r.flags = flags;
    r.tid = 7;
    r.commit = trace::kCommitted;
    return r;
  }

  void feed(Analysis& a) const {
    for (size_t i = 0; i < records_.size(); ++i) feed_one(a, i);
  }
  // Record i alone, as an Event (the one-record path).
  void feed_one(Analysis& a, size_t i) const {
    trace::Event ev;
    ev.rec = records_[i];
    if (payload_index_[i]) ev.payload = payloads_[payload_index_[i] - 1];
    a.feed(ev);
  }

  // Analyses this stream as one trace.
  Report analyze(const trace::Header& header = make_header(), AnalysisOptions options = {}) const {
    Analysis a(options);
    a.begin_trace(header, "test.trace");
    feed(a);
    a.end_trace(trace::ReadStats{});
    return a.finish();
  }

  const std::vector<trace::Record>& records() const { return records_; }

  // The stream as a trace file (header + records); blobs get their continuation slots, as the
  // writer lays them out.
  std::string file_bytes(trace::Header header, bool closed = true) const {
    std::string records;
    auto put = [&](const trace::Record& r) {
      records.append(reinterpret_cast<const char*>(&r), sizeof r);
    };
    for (size_t i = 0; i < records_.size(); ++i) {
      trace::Record head = records_[i];
      if (!payload_index_[i]) {
        put(head);
        continue;
      }
      const std::string& payload = payloads_[payload_index_[i] - 1];
      uint64_t slots = (payload.size() + trace::kBlobBytesPerSlot - 1) / trace::kBlobBytesPerSlot;
      head.address = slots;
      head.bytes = payload.size();
      put(head);
      for (uint64_t s = 0; s < slots; ++s) {
        trace::Record c{};
        size_t at = s * trace::kBlobBytesPerSlot;
        std::memcpy(&c, payload.data() + at, std::min(trace::kBlobBytesPerSlot, payload.size() - at));
        c.commit = trace::kContinuation;
        put(c);
      }
    }
    if (closed) {
      header.flags |= trace::kHeaderClosed;
      header.end_offset = trace::kHeaderSize + records.size();
    }
    std::string bytes(trace::kHeaderSize, '\0');
    std::memcpy(bytes.data(), &header, sizeof header);
    return bytes + records;
  }

 private:
  std::vector<trace::Record> records_;
  std::vector<size_t> payload_index_;  // 1-based into payloads_, 0 = none
  std::vector<std::string> payloads_;
};

}  // namespace gpumem::analyzer::testing
