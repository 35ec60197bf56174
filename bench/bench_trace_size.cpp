// Bytes per event of the compact trace format (version 2, issue 23) against the raw format
// (version 1) on the same appends, written with the real writer: the bench loop (alloc/free
// pairs, 4096 live slots, as bench_vs_heaptrack writes), a randomised tensor-like stream (three
// threads, four sizes of tensors, frees in random order, addresses reused, call sites), and
// optionally any trace given in GPUMEM_BENCH_TRACE (e.g. the demo trainer's: its records appended
// again). Also the append cost of each format, ratio in the same run, and what reading the compact
// format costs before any analysis: checking and decoding the same streams' chunks in memory
// (BM_Decode*), one thread.
#include <benchmark/benchmark.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "gpumem/trace/compact.h"
#include "gpumem/trace/format_v2.h"
#include "gpumem/trace/reader.h"
#include "gpumem/trace/writer.h"

namespace {

using gpumem::TraceWriter;
namespace tr = gpumem::trace;

struct Item {
  tr::Record rec;
  std::string payload;
};

std::vector<Item> bench_loop(uint64_t events) {
  std::vector<Item> out;
  for (uint64_t i = 0; i < events / 2; ++i) {
    tr::Record r{};
    r.op = static_cast<uint16_t>(tr::Op::alloc);
    r.api = static_cast<uint16_t>(tr::Api::cuMemAlloc);
    r.address = 0x7f0000000000ull + (i % 4096) * (1 << 20);
    r.bytes = 256 * (i % 16 + 1);
    r.t_ns = 1'000'000'000ull + i * 100;
    r.tid = 1000;
    out.push_back({r, {}});
    r.op = static_cast<uint16_t>(tr::Op::free);
    r.api = static_cast<uint16_t>(tr::Api::cuMemFree);
    r.t_ns += 50;
    out.push_back({r, {}});
  }
  return out;
}

std::vector<Item> tensor_stream(uint64_t events) {
  std::mt19937_64 rng(2026);
  const uint64_t sizes[] = {768 * 4, 2048 * 768 * 4, 12582912, 3 << 20};
  std::vector<std::pair<uint64_t, uint64_t>> live;
  std::vector<uint64_t> reusable;
  uint64_t next = 0x7f2000000000ull, t = 1'000'000'000;
  std::vector<Item> out;
  while (out.size() < events) {
    t += 300 + rng() % 20000;
    tr::Record r{};
    const bool alloc = live.empty() || (live.size() < 600 && rng() % 2 == 0);
    r.op = static_cast<uint16_t>(alloc ? tr::Op::alloc : tr::Op::free);
    r.api = static_cast<uint16_t>(alloc ? tr::Api::cudaMallocAsync : tr::Api::cudaFreeAsync);
    r.flags = tr::kFlagAsync | tr::kFlagPooled;
    r.tid = 2000 + static_cast<uint32_t>(rng() % 3);
    r.stream = rng() % 5 == 0 ? 0x55550000 : 0;
    r.site = static_cast<uint32_t>(1 + rng() % 200);
    r.t_ns = t;
    if (alloc) {
      r.bytes = sizes[rng() % 4] + 512 * (rng() % 3);
      if (!reusable.empty() && rng() % 3 != 0) {
        r.address = reusable.back();
        reusable.pop_back();
      } else {
        r.address = next;
        next += (r.bytes + 0x1FFFFF) & ~0x1FFFFFull;
      }
      live.emplace_back(r.address, r.bytes);
    } else {
      const size_t i = rng() % live.size();
      r.address = live[i].first;
      r.bytes = live[i].second;
      reusable.push_back(r.address);
      live[i] = live.back();
      live.pop_back();
    }
    out.push_back({r, {}});
  }
  return out;
}

std::vector<Item> from_trace(const char* path) {
  std::vector<Item> out;
  std::string error;
  auto reader = tr::Reader::open(path, &error);
  if (!reader) return out;
  tr::Event ev;
  while (reader->next(&ev)) out.push_back({ev.rec, std::string(ev.payload)});
  return out;
}

uint64_t size_of(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// Appends the items with the writer in `format`; returns the file's bytes and the ns per append.
std::pair<uint64_t, double> write(const std::vector<Item>& items, TraceWriter::Format format) {
  const char* dir = std::getenv("TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/gpumem-bench-size-" +
                           std::to_string(getpid()) + ".trace";
  TraceWriter w;
  w.set_format(format);
  char err[512];
  if (!w.open(path.c_str(), tr::Header{}, err, sizeof err)) return {0, 0};
  const auto start = std::chrono::steady_clock::now();
  for (const Item& it : items) {
    const auto op = static_cast<tr::Op>(it.rec.op);
    if (op == tr::Op::string || op == tr::Op::stack)
      w.append_blob(op, it.rec.aux, it.payload.data(), it.payload.size());
    else
      w.append(it.rec);
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  w.close();
  const uint64_t bytes = size_of(path);
  std::remove(path.c_str());
  return {bytes, ns / static_cast<double>(items.size())};
}

void measure(benchmark::State& state, const std::vector<Item>& items) {
  if (items.empty()) return state.SkipWithError("no events (GPUMEM_BENCH_TRACE unreadable?)");
  const double n = static_cast<double>(items.size());
  const uint64_t ring = uint64_t{TraceWriter::kRingChunks} * TraceWriter::kChunkSlots * tr::kRecordSize;
  std::pair<uint64_t, double> raw{}, compact{};
  for (auto _ : state) {
    raw = write(items, TraceWriter::Format::raw);
    compact = write(items, TraceWriter::Format::compact);
  }
  if (raw.first == 0 || compact.first == 0) return state.SkipWithError("cannot write the trace");
  state.counters["events"] = n;
  state.counters["raw_bytes_per_event"] = static_cast<double>(raw.first - tr::kHeaderSize) / n;
  // The records alone (the compact chunks), and the whole file (header and emptied ring too).
  state.counters["compact_bytes_per_event"] =
      static_cast<double>(compact.first - tr::kHeaderSize - ring) / n;
  state.counters["compact_file_bytes_per_event"] = static_cast<double>(compact.first) / n;
  state.counters["raw_ns_per_append"] = raw.second;
  state.counters["compact_ns_per_append"] = compact.second;
}

uint64_t events_wanted() {
  const char* v = std::getenv("GPUMEM_BENCH_EVENTS");
  return v != nullptr ? std::strtoull(v, nullptr, 10) : 2'000'000;
}

void BM_BenchLoop(benchmark::State& state) { measure(state, bench_loop(events_wanted())); }
void BM_TensorStream(benchmark::State& state) { measure(state, tensor_stream(events_wanted())); }
void BM_GivenTrace(benchmark::State& state) {
  const char* path = std::getenv("GPUMEM_BENCH_TRACE");
  if (path == nullptr) return state.SkipWithError("set GPUMEM_BENCH_TRACE to a trace");
  measure(state, from_trace(path));
}

// The items as the writer seals them: a chunk per kChunkSlots records (or fewer, when the chunk's
// bytes run out first).
std::vector<std::vector<uint8_t>> encode(const std::vector<Item>& items) {
  std::vector<std::vector<uint8_t>> chunks;
  std::vector<uint8_t> buf(1 << 20);
  tr::compact::ChunkEncoder enc;
  enc.begin(buf.data(), buf.size());
  auto seal = [&] {
    const size_t n = enc.finish();
    chunks.emplace_back(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n));
    enc.begin(buf.data(), buf.size());
  };
  for (const Item& it : items) {
    if (enc.records() == TraceWriter::kChunkSlots || !enc.add(it.rec, it.payload)) {
      seal();
      if (!enc.add(it.rec, it.payload)) return {};  // larger than a chunk: not in these streams
    }
  }
  if (enc.records() > 0) seal();
  return chunks;
}

// Checking and decoding every chunk, as the reader does for each (its checksum included), with
// the chunks and the decoded records in memory: the compact reader's cost per record before any
// analysis, on one core.
void decode(benchmark::State& state, const std::vector<Item>& items) {
  const auto chunks = encode(items);
  if (chunks.empty()) return state.SkipWithError("cannot encode the stream");
  tr::compact::DecodedChunk out;
  uint64_t records = 0;
  for (auto _ : state) {
    for (const auto& c : chunks) {
      if (!tr::compact::decode_chunk(c.data(), c.size(), &out, nullptr))
        return state.SkipWithError("a chunk the encoder wrote did not decode");
      records += out.records.size();
    }
  }
  if (records != state.iterations() * items.size())
    return state.SkipWithError("decoded another number of records than encoded");
  state.SetItemsProcessed(static_cast<int64_t>(records));  // records per second
  state.counters["chunks"] = static_cast<double>(chunks.size());
}

void BM_DecodeBenchLoop(benchmark::State& state) { decode(state, bench_loop(events_wanted())); }
void BM_DecodeTensorStream(benchmark::State& state) {
  decode(state, tensor_stream(events_wanted()));
}

BENCHMARK(BM_BenchLoop)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TensorStream)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GivenTrace)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeBenchLoop)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeTensorStream)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
