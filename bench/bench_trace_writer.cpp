// Cost of recording one event in the trace: ns per append (1 and 4 threads), with and without a
// call stack (deduplicated), and the trace bytes each event costs. The file goes to $TMPDIR (or
// /tmp) and is removed afterwards; iterations are capped so it stays a few hundred MiB.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "gpumem/trace/writer.h"

namespace {

using gpumem::TraceWriter;
namespace tr = gpumem::trace;

TraceWriter g_writer;
std::string g_path;
constexpr int64_t kIterationsPerThread = 1 << 20;

void open_trace(benchmark::State& state) {
  const char* dir = std::getenv("TMPDIR");
  g_path = std::string(dir != nullptr ? dir : "/tmp") + "/gpumem-bench-" +
           std::to_string(getpid()) + ".trace";
  tr::Header header{};
  char err[512];
  if (!g_writer.open(g_path.c_str(), header, err, sizeof(err))) state.SkipWithError(err);
}

void close_trace(benchmark::State& state, uint64_t events) {
  const uint64_t slots = g_writer.records_written();
  g_writer.close();
  std::remove(g_path.c_str());
  state.counters["trace_bytes_per_event"] =
      static_cast<double>(slots * tr::kRecordSize) / static_cast<double>(events);
}

tr::Record alloc_record(uint64_t i) {
  tr::Record r{};
  r.op = static_cast<uint16_t>(tr::Op::alloc);
  r.api = static_cast<uint16_t>(tr::Api::cudaMalloc);
  r.address = 0x7f0000000000ull + i * 256;
  r.bytes = 256;
  return r;
}

void BM_Append(benchmark::State& state) {
  if (state.thread_index() == 0) open_trace(state);
  uint64_t i = 0;
  for (auto _ : state) g_writer.append(alloc_record(i++));
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0)
    close_trace(state, static_cast<uint64_t>(state.iterations()) * state.threads());
}
BENCHMARK(BM_Append)->Iterations(kIterationsPerThread)->Threads(1)->Threads(4)->UseRealTime();

// GPUMEM_STACKS=1: every event also interns its 16-frame call stack (64 distinct call sites).
void BM_AppendWithStack(benchmark::State& state) {
  if (state.thread_index() == 0) open_trace(state);
  uint64_t pcs[64][16];
  for (int s = 0; s < 64; ++s)
    for (int f = 0; f < 16; ++f) pcs[s][f] = 0x400000u + static_cast<uint64_t>(s * 4096 + f * 64);
  uint64_t i = 0;
  for (auto _ : state) {
    tr::Record r = alloc_record(i);
    r.site = g_writer.intern_stack(pcs[i % 64], 16);
    g_writer.append(r);
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0)
    close_trace(state, static_cast<uint64_t>(state.iterations()) * state.threads());
}
BENCHMARK(BM_AppendWithStack)
    ->Iterations(kIterationsPerThread)
    ->Threads(1)
    ->Threads(4)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
