// A bounded trace (GPUMEM_TRACE_MAX, issue 23): a synthetic writer appends a tensor-like stream
// (three threads' worth of allocations and frees from 200 call sites, a live set of about 600,
// and a 300-allocation burst at a third of the run: its peak, in the part a bound drops) with the
// real writer under the bound, then `gpumem report`'s analysis reads the file. Counters: the
// file's size against the bound, whether the report's peak, leaks and allocation count equal
// those computed from the full stream as it was written, and the append cost against the same
// appends unbounded (at most 20M of them, so the baseline's file stays small).
//   short form (bench.smoke, bench/run): GPUMEM_BENCH_BOUNDED_EVENTS (default 1M), bound 4 MiB
//   long form: GPUMEM_BENCH_BOUNDED_EVENTS=1000000000 GPUMEM_BENCH_BOUNDED_MAX=1GiB (bench/run
//   --long): 10^9 events, a 1 GiB file
#include <benchmark/benchmark.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "gpumem/analyzer/report.h"
#include "gpumem/trace/format_v2.h"
#include "gpumem/trace/writer.h"
#include "gpumem/units.h"

namespace {

using gpumem::TraceWriter;
namespace tr = gpumem::trace;

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  uint64_t bytes = 0;
  return v != nullptr && gpumem::parse_size(v, &bytes) == gpumem::SizeParse::ok ? bytes : fallback;
}

// What the report must show, computed from every record as it is appended.
struct Truth {
  uint64_t peak = 0, live_bytes = 0, allocs = 0;
};

// Appends `events` records to `w` (when given) and returns the truth; the stream is the same for
// the same count.
Truth append_stream(TraceWriter* w, uint64_t events) {
  std::mt19937_64 rng(2026);
  const uint64_t sizes[] = {768 * 4, 2048 * 768 * 4, 12582912, 3 << 20};
  std::vector<std::pair<uint64_t, uint64_t>> live;
  std::vector<uint64_t> reusable;
  uint64_t next = 0x7f2000000000ull, t = 1'000'000'000, cur = 0;
  Truth truth;
  auto put = [&](tr::Record r) {
    r.t_ns = t;
    r.device = 0;
    if (w != nullptr) w->append(r);
  };
  auto alloc = [&](uint64_t bytes, uint32_t site, uint32_t tid) {
    tr::Record r{};
    r.op = static_cast<uint16_t>(tr::Op::alloc);
    r.api = static_cast<uint16_t>(tr::Api::cudaMallocAsync);
    r.flags = tr::kFlagAsync;
    r.tid = tid;
    r.site = site;
    r.bytes = bytes;
    if (!reusable.empty() && rng() % 3 != 0) {
      r.address = reusable.back();
      reusable.pop_back();
    } else {
      r.address = next;
      next += (bytes + 0x1FFFFF) & ~0x1FFFFFull;
    }
    live.emplace_back(r.address, bytes);
    cur += bytes;
    ++truth.allocs;
    truth.peak = std::max(truth.peak, cur);
    put(r);
  };
  auto free_at = [&](size_t i, uint32_t tid) {
    tr::Record r{};
    r.op = static_cast<uint16_t>(tr::Op::free);
    r.api = static_cast<uint16_t>(tr::Api::cudaFreeAsync);
    r.flags = tr::kFlagAsync;
    r.tid = tid;
    r.address = live[i].first;
    r.bytes = live[i].second;
    cur -= r.bytes;
    reusable.push_back(r.address);
    live[i] = live.back();
    live.pop_back();
    put(r);
  };
  const uint64_t spike = events / 3;
  for (uint64_t n = 0; n < events;) {
    t += 300 + rng() % 20000;
    const auto tid = 2000 + static_cast<uint32_t>(rng() % 3);
    if (n >= spike && n < spike + 600) {  // the burst: 300 allocations of 64 MiB, then their frees
      if (n < spike + 300) {
        alloc(uint64_t{64} << 20, 999, tid);
      } else {
        for (size_t i = live.size(); i-- > 0;)
          if (live[i].second == uint64_t{64} << 20) {
            free_at(i, tid);
            break;
          }
      }
      ++n;
      continue;
    }
    if (live.empty() || (live.size() < 600 && rng() % 2 == 0))
      alloc(sizes[rng() % 4] + 512 * (rng() % 3), static_cast<uint32_t>(1 + rng() % 200), tid);
    else
      free_at(rng() % live.size(), tid);
    ++n;
  }
  truth.live_bytes = cur;
  return truth;
}

uint64_t size_of(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

std::string scratch(const char* tag) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/gpumem-bench-" + tag + "-" +
         std::to_string(getpid()) + ".trace";
}

// Writes `events` records (bounded when max_bytes != 0); the ns per append and the truth.
double write(const std::string& path, uint64_t events, uint64_t max_bytes, Truth* truth) {
  TraceWriter w;
  w.set_format(TraceWriter::Format::compact);
  w.set_max_bytes(max_bytes);
  char err[512];
  if (!w.open(path.c_str(), tr::Header{}, err, sizeof err)) return 0;
  const auto start = std::chrono::steady_clock::now();
  *truth = append_stream(&w, events);
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  w.close();
  // The generator's own cost, taken out of both figures.
  const auto g = std::chrono::steady_clock::now();
  append_stream(nullptr, events);
  const double gen = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - g).count();
  return (ns - gen) / static_cast<double>(events);
}

void BM_BoundedTrace(benchmark::State& state) {
  const uint64_t events = env_u64("GPUMEM_BENCH_BOUNDED_EVENTS", 1'000'000);
  const uint64_t max_bytes = env_u64("GPUMEM_BENCH_BOUNDED_MAX", tr::kMinTraceMax);
  const std::string bounded = scratch("bounded"), full = scratch("unbounded");
  Truth truth, baseline_truth;
  double ns = 0, baseline_ns = 0;
  for (auto _ : state) {
    ns = write(bounded, events, max_bytes, &truth);
    baseline_ns = write(full, std::min<uint64_t>(events, 20'000'000), 0, &baseline_truth);
  }
  std::remove(full.c_str());
  const uint64_t file_bytes = size_of(bounded);
  std::vector<std::string> errors;
  gpumem::analyzer::Analysis analysis;
  gpumem::analyzer::analyze_files({bounded}, analysis, &errors, false);
  const gpumem::analyzer::Report report = analysis.finish();
  std::remove(bounded.c_str());
  if (file_bytes == 0 || report.devices.size() != 1) return state.SkipWithError("cannot write or read the trace");
  const auto& d = report.devices[0];
  const auto& t = report.traces[0];
  state.counters["events"] = static_cast<double>(events);
  state.counters["max_bytes"] = static_cast<double>(max_bytes);
  state.counters["file_bytes"] = static_cast<double>(file_bytes);
  state.counters["dropped_records"] = t.dropped ? static_cast<double>(t.dropped->records) : 0;
  state.counters["peak_exact"] = d.peak.allocated_bytes == truth.peak ? 1 : 0;
  state.counters["leaks_exact"] = d.final.leaked_bytes == truth.live_bytes ? 1 : 0;
  state.counters["allocs_exact"] = d.counts.alloc == truth.allocs ? 1 : 0;
  state.counters["ns_per_append"] = ns;
  state.counters["unbounded_ns_per_append"] = baseline_ns;
}

BENCHMARK(BM_BoundedTrace)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
