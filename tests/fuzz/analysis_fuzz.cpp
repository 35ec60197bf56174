// libFuzzer target: arbitrary bytes as a stream of trace records for the analysis model (not the
// reader: fuzz_trace_reader has that), then the JSON, text and Perfetto outputs. The reader
// passes on any committed record, so whatever fields a damaged trace holds reach the analysis.
//
// Each record is decoded from 16 bytes into a mostly plausible one (ops and kinds in range, few
// devices, addresses from a small set so that allocations, frees, segments and NVTX heaps meet),
// with an escape to raw field values; strings and stacks take their payload from the bytes that
// follow. The stream is analysed twice, one record at a time and in runs of lengths the input
// chooses: the two JSON reports must be equal to the byte (the fast path must count as the
// general one), and no output may crash, hang or grow without bound (-rss_limit_mb).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gpumem/analyzer/analysis.h"
#include "gpumem/analyzer/render_json.h"
#include "gpumem/analyzer/render_text.h"
#include "render_perfetto.h"

namespace {

using gpumem::trace::Op;
using gpumem::trace::Record;

constexpr uint64_t kBase = 1'000'000'000;

struct Input {
  const uint8_t* p;
  size_t n;
  size_t at = 0;
  size_t left() const { return n - at; }
  uint8_t u8() { return at < n ? p[at++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  uint32_t u32() { return u16() | (static_cast<uint32_t>(u16()) << 16); }
  uint64_t u64() { return u32() | (static_cast<uint64_t>(u32()) << 32); }
};

struct Decoded {
  std::vector<Record> records;
  std::vector<std::string> payloads;  // one per record (empty unless a blob)
  std::vector<size_t> runs;           // run lengths for the batched pass
};

// An address from a small set: a few segments' worth of 4 KiB slots, at an offset.
uint64_t address(Input& in) {
  const uint16_t a = in.u16();
  if (a == 0xFFFF) return in.u64();
  return 0x7f0000000000ull + (static_cast<uint64_t>(a & 0x3FF) << 12) + ((a >> 10) & 0x3F) * 64;
}

uint64_t bytes(Input& in) {
  const uint8_t b = in.u8();
  switch (b >> 6) {
    case 0: return b & 0x3F;                                 // tiny, 0 included
    case 1: return static_cast<uint64_t>(b & 0x3F) << 12;    // pages
    case 2: return static_cast<uint64_t>(b & 0x3F) << 21;    // segments
    default: return b == 0xFF ? in.u64() : (uint64_t{1} << (b & 0x3F));
  }
}

Decoded decode(Input& in) {
  Decoded d;
  uint64_t t = kBase;
  while (in.left() >= 16 && d.records.size() < 20000) {
    Record r{};
    const uint8_t op = in.u8();
    r.op = static_cast<uint16_t>(op < 0xF0 ? op % 26 : op);
    const uint8_t dev = in.u8();
    r.device = static_cast<int16_t>(dev < 0xF8 ? dev % 4 - 1 : static_cast<int16_t>(in.u16()));
    r.address = address(in);
    r.bytes = bytes(in);
    r.flags = in.u16();
    const uint8_t aux = in.u8();
    r.aux = aux < 0xF0 ? aux % 16 : (aux == 0xFF ? in.u64() : bytes(in));
    r.site = in.u8() % 8;
    r.tid = 1 + in.u8() % 3;
    r.api = in.u8() % 8;
    r.stream = in.u8() % 3;
    r.result = static_cast<int8_t>(in.u8());
    const uint8_t dt = in.u8();
    t += dt < 0xF0 ? dt * 1000ull : (dt == 0xFF ? in.u64() : 0);
    r.t_ns = dt == 0xFE ? t - 5000 : t;  // now and then out of order
    r.commit = gpumem::trace::kCommitted;
    std::string payload;
    if (r.op == static_cast<uint16_t>(Op::string) || r.op == static_cast<uint16_t>(Op::stack)) {
      const size_t len = std::min<size_t>(in.u8(), in.left());
      payload.assign(reinterpret_cast<const char*>(in.p + in.at), len);
      in.at += len;
      r.bytes = len;
    }
    d.records.push_back(r);
    d.payloads.push_back(std::move(payload));
    d.runs.push_back(1 + in.u8() % 64);
  }
  return d;
}

gpumem::trace::Header header() {
  static gpumem::trace::Header h;  // large: off the stack
  std::memset(&h, 0, sizeof h);
  std::memcpy(h.magic, gpumem::trace::kMagic, 8);
  h.version = gpumem::trace::kVersion;
  h.header_size = gpumem::trace::kHeaderSize;
  h.record_size = gpumem::trace::kRecordSize;
  h.pid = 100;
  h.clock_base_ns = kBase;
  h.device_count = 2;
  std::strncpy(h.pool, "growth", sizeof h.pool - 1);
  for (int d = 0; d < 2; ++d) {
    h.devices[d].capacity_bytes = 1ull << 30;
    h.devices[d].limit_bytes = d == 1 ? 64ull << 20 : 0;
    h.devices[d].present = 1;
  }
  return h;
}

bool is_blob(const Record& r) {
  return r.op == static_cast<uint16_t>(Op::string) || r.op == static_cast<uint16_t>(Op::stack);
}

gpumem::analyzer::Report analyse(const Decoded& d, bool in_runs, bool snapshot_midway) {
  gpumem::analyzer::AnalysisOptions options;
  options.max_points = 50;  // small: boxes merge often
  gpumem::analyzer::Analysis a(options);
  a.begin_trace(header(), "fuzz.trace");
  size_t i = 0, run = 0;
  while (i < d.records.size()) {
    if (snapshot_midway && i >= d.records.size() / 2) {
      (void)a.snapshot(gpumem::trace::ReadStats{});
      snapshot_midway = false;
    }
    size_t n = 1;
    if (in_runs && !is_blob(d.records[i])) {
      n = std::min(d.runs[run++ % d.runs.size()], d.records.size() - i);
      for (size_t k = 0; k < n; ++k)
        if (is_blob(d.records[i + k])) n = k;
    }
    if (n <= 1) {
      gpumem::trace::Event ev;
      ev.rec = d.records[i];
      ev.payload = d.payloads[i];
      a.feed(ev);
      ++i;
      continue;
    }
    gpumem::trace::Batch b;
    b.records = d.records.data() + i;
    b.count = n;
    a.feed(b);
    i += n;
  }
  a.end_trace(gpumem::trace::ReadStats{});
  return a.finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in{data, size};
  const Decoded d = decode(in);
  const gpumem::analyzer::Report one = analyse(d, false, false);
  const gpumem::analyzer::Report runs = analyse(d, true, true);
  const std::string json = gpumem::analyzer::render_json(one);
  const std::string json_runs = gpumem::analyzer::render_json(runs);
  if (const char* dump = std::getenv("GPUMEM_FUZZ_DUMP")) {  // a failing input's two reports
    std::ofstream(std::string(dump) + ".one.json") << json;
    std::ofstream(std::string(dump) + ".runs.json") << json_runs;
    std::ofstream(std::string(dump) + ".runs-only.json")
        << gpumem::analyzer::render_json(analyse(d, true, false));
    std::ofstream records(std::string(dump) + ".records.txt");
    for (const Record& r : d.records)
      records << "t " << r.t_ns - kBase << " op " << r.op << " dev " << r.device << " addr 0x"
              << std::hex << r.address << std::dec << " bytes " << r.bytes << " flags 0x"
              << std::hex << r.flags << std::dec << " aux " << r.aux << " site " << r.site
              << " tid " << r.tid << " api " << r.api << "\n";
  }
  if (json != json_runs) __builtin_trap();  // runs (and a snapshot) count as one by one
  (void)gpumem::analyzer::render_text(one);
  (void)gpumem::analyzer::render_perfetto(one);
  return 0;
}
