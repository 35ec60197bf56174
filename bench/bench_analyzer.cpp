// Events per second of the analysis: a generated alloc/free stream (4096 live slots, addresses
// reused, 64 call sites) fed straight to gpumem::analyzer::Analysis, then the JSON rendered.
// Reading the file is the trace reader's own benchmark; this measures the model.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <vector>

#include "gpumem/analyzer/analysis.h"
#include "gpumem/analyzer/render_json.h"
#include "segment_space.h"

namespace {

using gpumem::trace::Event;
using gpumem::trace::Op;

std::vector<Event> generate(size_t n, bool pooled, bool sites = true) {
  std::mt19937_64 rng(1);
  std::vector<Event> events(n);
  std::vector<uint64_t> live(4096, 0);
  const uint64_t base = 0x7f0000000000ull;
  for (size_t i = 0; i < n; ++i) {
    gpumem::trace::Record& r = events[i].rec;
    r = {};
    size_t slot = rng() % live.size();
    r.t_ns = 1'000'000'000ull + i * 100;
    r.address = base + slot * (1 << 20);
    r.commit = gpumem::trace::kCommitted;
    if (live[slot]) {
      r.op = static_cast<uint16_t>(Op::free);
      live[slot] = 0;
    } else {
      r.op = static_cast<uint16_t>(Op::alloc);
      r.bytes = 1 + rng() % (1 << 20);
      const uint32_t site = static_cast<uint32_t>(rng() % 64);
      if (sites) r.site = site;
      if (pooled) r.flags = gpumem::trace::kFlagPooled;
      live[slot] = r.bytes;
    }
  }
  if (pooled) {  // one segment covering every slot, first
    Event seg{};
    seg.rec.op = static_cast<uint16_t>(Op::segment_reserve);
    seg.rec.t_ns = 1'000'000'000ull;
    seg.rec.address = base;
    seg.rec.bytes = live.size() << 20;
    events.insert(events.begin(), seg);
  }
  return events;
}

gpumem::trace::Header& header() {
  static gpumem::trace::Header h{};
  h.clock_base_ns = 1'000'000'000ull;
  return h;
}

void run(benchmark::State& state, bool pooled) {
  const auto events = generate(static_cast<size_t>(state.range(0)), pooled);
  for (auto _ : state) {
    gpumem::analyzer::Analysis a;
    a.begin_trace(header(), "bench.trace");
    for (const Event& e : events) a.feed(e);
    a.end_trace({});
    auto report = a.finish();
    benchmark::DoNotOptimize(gpumem::analyzer::render_json(report).size());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(events.size()));
  state.counters["events_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * events.size()), benchmark::Counter::kIsRate);
}

// The reader's way: records in runs (Analysis::feed(Batch)), so plain allocations and frees take
// the fast path (DeviceState::plain_run). With call sites (GPUMEM_STACKS) or without.
void run_batched(benchmark::State& state, bool sites, bool pooled = false,
                 gpumem::analyzer::AnalysisOptions options = {}) {
  const auto events = generate(static_cast<size_t>(state.range(0)), pooled, sites);
  std::vector<gpumem::trace::Record> records;
  for (const Event& e : events) records.push_back(e.rec);
  for (auto _ : state) {
    gpumem::analyzer::Analysis a(options);
    a.begin_trace(header(), "bench.trace");
    for (size_t i = 0; i < records.size(); i += 4096) {
      gpumem::trace::Batch b;
      b.records = records.data() + i;
      b.count = std::min<size_t>(4096, records.size() - i);
      a.feed(b);
    }
    a.end_trace({});
    auto report = a.finish();
    benchmark::DoNotOptimize(gpumem::analyzer::render_json(report).size());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(records.size()));
}

void BM_AnalyzeNoPool(benchmark::State& state) {
  run(state, false);
}
void BM_AnalyzePooled(benchmark::State& state) {
  run(state, true);
}
void BM_AnalyzeBatchNoSites(benchmark::State& state) {
  run_batched(state, false);
}
void BM_AnalyzeBatchSites(benchmark::State& state) {
  run_batched(state, true);
}
// As gpumem top analyses: with sites, no timeline_by_site (AnalysisOptions::site_series).
void BM_AnalyzeBatchTop(benchmark::State& state) {
  gpumem::analyzer::AnalysisOptions options;
  options.site_series = false;
  run_batched(state, true, false, options);
}
// Pooled, the reader's way: the allocations inside one segment (free extents tracked), 64 sites.
void BM_AnalyzeBatchPooled(benchmark::State& state) {
  run_batched(state, true, true);
}

// The segment space alone (what a pooled event adds): the pooled pattern's takes and give-backs,
// with the largest free extent and total free read after each, as the analysis reads them. The
// 4 GiB of slots in `state.range(0)` equal segments: 1 as BM_AnalyzePooled has it, 64 for a pool
// of many segments (the growth pool's are 2 or 20 MiB), where the segment lookup counts too.
void BM_SegmentSpace(benchmark::State& state) {
  const auto events = generate(1 << 21, true);
  const uint64_t segments = static_cast<uint64_t>(state.range(0));
  const uint64_t base = events[0].rec.address, bytes = events[0].rec.bytes / segments;
  for (auto _ : state) {
    gpumem::analyzer::SegmentSpace space;
    std::vector<uint64_t> ids;
    for (uint64_t k = 0; k < segments; ++k) ids.push_back(space.reserve(base + k * bytes, bytes));
    std::vector<uint64_t> live_bytes(4096, 0);
    uint64_t sum = 0;
    for (size_t i = 1; i < events.size(); ++i) {
      const gpumem::trace::Record& r = events[i].rec;
      const uint64_t slot = (r.address - base) >> 20;
      if (r.op == static_cast<uint16_t>(Op::alloc)) {
        sum += space.take(r.address, r.bytes);
        live_bytes[slot] = r.bytes;
      } else {
        sum += space.give_back(r.address, live_bytes[slot], ids[(r.address - base) / bytes]);
      }
      sum += space.largest_free() ^ space.total_free();
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(events.size() - 1));
}

BENCHMARK(BM_AnalyzeNoPool)->Arg(1 << 21)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AnalyzePooled)->Arg(1 << 21)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AnalyzeBatchNoSites)->Arg(1 << 21)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AnalyzeBatchSites)->Arg(1 << 21)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AnalyzeBatchTop)->Arg(1 << 21)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AnalyzeBatchPooled)->Arg(1 << 21)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SegmentSpace)->ArgName("segments")->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
