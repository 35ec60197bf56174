// libFuzzer target: arbitrary bytes as a stream of trace records for the analysis model (not the
// reader: fuzz_trace_reader has that), then the JSON, text, HTML and Perfetto outputs. The reader
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
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gpumem/analyzer/analysis.h"
#include "gpumem/analyzer/render_json.h"
#include "gpumem/analyzer/render_text.h"
#include "record_stream.h"
#include "render_html.h"
#include "render_perfetto.h"

namespace {

using namespace gpumem::fuzz;

// Process k's header: its own pid and rank, and for some inputs a budget all of them share
// (GPUMEM_LIMIT_SCOPE=shared), so the cross-process summaries (ranks, shared budgets) run too.
gpumem::trace::Header process_header(const Decoded& d, int k) {
  gpumem::trace::Header h = header();
  h.pid = 100 + static_cast<uint32_t>(k);
  h.rank = k;
  if (!d.runs.empty() && d.runs[0] % 2 == 1)
    std::snprintf(h.config, sizeof h.config, "GPUMEM_LIMIT_SCOPE=shared\nGPUMEM_LIMIT_NAME=team\n");
  return h;
}

gpumem::analyzer::Report analyse(const Decoded& d, bool in_runs, bool snapshot_midway) {
  gpumem::analyzer::AnalysisOptions options;
  options.max_points = 50;  // small: boxes merge often
  gpumem::analyzer::Analysis a(options);
  int process = 0;
  a.begin_trace(process_header(d, process), "fuzz-0.trace");
  size_t i = 0, run = 0;
  while (i < d.records.size()) {
    // The stream is up to three processes' traces: a record whose run length is the largest
    // (one in 64) ends one.
    if (i > 0 && d.runs[i - 1] == 64 && process < 2) {
      a.end_trace(gpumem::trace::ReadStats{});
      ++process;
      a.begin_trace(process_header(d, process), "fuzz-" + std::to_string(process) + ".trace");
    }
    if (snapshot_midway && i >= d.records.size() / 2) {
      (void)a.snapshot(gpumem::trace::ReadStats{});
      snapshot_midway = false;
    }
    size_t n = 1;
    if (in_runs && !is_blob(d.records[i])) {
      n = std::min(d.runs[run++ % d.runs.size()], d.records.size() - i);
      for (size_t k = 0; k < n; ++k)
        if (is_blob(d.records[i + k]) || (k > 0 && d.runs[i + k - 1] == 64)) n = k;
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
  if (gpumem::analyzer::render_html(one).empty()) __builtin_trap();
  return 0;
}
