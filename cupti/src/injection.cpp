// libgpumem_cupti.so: loaded by the CUDA driver through CUDA_INJECTION64_PATH, which calls
// InitializeInjection() during cuInit, before the program's first allocation. It records CUPTI's
// MEMORY2 and MEMORY_POOL activity into a gpumem trace. Observation only: nothing is refused or
// changed. When CUPTI cannot be used it says why on stderr and the program runs on untouched.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <vector>

#include "convert.h"
#include "cupti_api.h"
#include "gpumem/trace/writer.h"
#include "trace_setup.h"

namespace gpumem::cupti {
namespace {

constexpr size_t kBufferBytes = 4u << 20;  // CUPTI fills these; 8-byte alignment is required

struct State {
  CuptiApi api;
  CUpti_SubscriberHandle subscriber = nullptr;
  TraceWriter* writer = nullptr;  // never destroyed: records may arrive during exit
  std::mutex writer_mutex;        // buffer completion vs close at exit (not a hot path)
  bool closed = false;
  ConvertContext ctx;
  uint64_t devices_seen = 0;  // bit per device ordinal: header entry written
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> skipped{0};
  std::atomic<uint64_t> dropped{0};
  bool verbose = false;  // GPUMEM_LOG=info or debug
};

State& state() {
  static State* s = new State;  // leaked on purpose: used from atexit and CUPTI's thread
  return *s;
}

__attribute__((format(printf, 1, 2))) void say(const char* fmt, ...) {
  char line[8192];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(line, sizeof line, fmt, args);
  va_end(args);
  std::fprintf(stderr, "gpumem-cupti: %s\n", line);
}

void say_unavailable(const char* step, CUptiResult r) {
  State& s = state();
  std::fprintf(stderr,
               "gpumem-cupti: CUPTI unavailable: %s failed with CUPTI error %d (%s): %s. No CUPTI "
               "trace is written; the program runs on.\n",
               step, static_cast<int>(r), result_name(s.api, r), unavailable_advice(r));
}

uint64_t CUPTIAPI monotonic_timestamp() {
  return monotonic_ns();
}

void CUPTIAPI ignore_callback(void*, CUpti_CallbackDomain, CUpti_CallbackId, const void*) {}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  void* p = nullptr;
  if (posix_memalign(&p, 8, kBufferBytes) != 0) p = nullptr;
  *buffer = static_cast<uint8_t*>(p);
  *size = p != nullptr ? kBufferBytes : 0;  // 0: CUPTI drops records rather than crash
  *max_records = 0;
}

void write_records(std::vector<trace::Record>& recs) {
  State& s = state();
  // CUPTI delivers buffers roughly in time order; sorting each buffer keeps allocs before frees.
  std::stable_sort(recs.begin(), recs.end(),
                   [](const trace::Record& a, const trace::Record& b) { return a.t_ns < b.t_ns; });
  std::lock_guard<std::mutex> lock(s.writer_mutex);
  if (s.closed || s.writer == nullptr) return;
  for (const trace::Record& r : recs) {
    if (r.device >= 0 && (s.devices_seen & (1ull << r.device)) == 0) {
      s.devices_seen |= 1ull << r.device;
      // CUPTI does not report capacity; calling the driver from here is not safe, so it stays 0.
      s.writer->set_device(r.device, 0, 0, "unknown (CUPTI capture)");
    }
    s.writer->append(r);
  }
  s.records.fetch_add(recs.size(), std::memory_order_relaxed);
}

void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream_id, uint8_t* buffer, size_t,
                               size_t valid) {
  State& s = state();
  std::vector<trace::Record> recs;
  CUpti_Activity* activity = nullptr;
  while (valid > 0 && s.api.ActivityGetNextRecord(buffer, valid, &activity) == CUPTI_SUCCESS) {
    trace::Record r;
    if (convert_activity(activity, s.ctx, &r))
      recs.push_back(r);
    else
      s.skipped.fetch_add(1, std::memory_order_relaxed);
  }
  if (!recs.empty()) write_records(recs);
  size_t dropped = 0;
  if (s.api.ActivityGetNumDroppedRecords(ctx, stream_id, &dropped) == CUPTI_SUCCESS && dropped > 0)
    s.dropped.fetch_add(dropped, std::memory_order_relaxed);
  std::free(buffer);  // ours from buffer_requested; CUPTI hands it back only here
}

void flush_and_close() {
  State& s = state();
  s.api.ActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  std::lock_guard<std::mutex> lock(s.writer_mutex);
  if (s.closed) return;
  s.closed = true;
  uint64_t dropped = s.dropped.load();
  if (dropped > 0)
    std::fprintf(stderr,
                 "gpumem-cupti: CUPTI dropped %llu activity records (its buffers were full); the "
                 "trace %s misses them. Use the preload capture for a complete trace.\n",
                 static_cast<unsigned long long>(dropped), s.writer->path());
  if (s.verbose)
    std::fprintf(stderr, "gpumem-cupti: wrote %llu records to %s (%llu CUPTI records not kept)\n",
                 static_cast<unsigned long long>(s.records.load()), s.writer->path(),
                 static_cast<unsigned long long>(s.skipped.load()));
  s.writer->close();
}

// Returns 1 when recording, 0 when CUPTI is unavailable (already said why on stderr).
int start() {
  State& s = state();
  const char* log = std::getenv("GPUMEM_LOG");
  s.verbose = log != nullptr && (std::strcmp(log, "info") == 0 || std::strcmp(log, "debug") == 0);
  const char* tmpl = std::getenv("GPUMEM_TRACE");
  if (tmpl == nullptr || *tmpl == '\0') tmpl = kDefaultTraceTemplate;
  if (std::strcmp(tmpl, "off") == 0) {
    if (s.verbose) say("GPUMEM_TRACE=off: nothing to record, CUPTI capture not started");
    return 1;
  }

  char err[8192];
  if (!load_cupti(std::getenv("GPUMEM_CUPTI_LIB"), &s.api, err, sizeof err)) {
    say("CUPTI unavailable: %s. No CUPTI trace is written; the program runs on.", err);
    return 0;
  }
  uint32_t version = 0;
  if (s.api.GetVersion(&version) == CUPTI_SUCCESS && version / 10000 != CUPTI_API_VERSION / 10000)
    std::fprintf(stderr,
                 "gpumem-cupti: warning: %s is CUPTI API %u but gpumem was built for %u; records "
                 "may be misread. Set GPUMEM_CUPTI_LIB to a CUDA 13 libcupti.so.13.\n",
                 s.api.path, version, static_cast<unsigned>(CUPTI_API_VERSION));

  // Subscribing first is what reports "no driver" (999) and "another profiler" (39) clearly.
  CUptiResult r = s.api.Subscribe(&s.subscriber, ignore_callback, nullptr);
  if (r != CUPTI_SUCCESS) {
    say_unavailable("cuptiSubscribe", r);
    return 0;
  }
  auto give_up = [&](const char* step, CUptiResult res) {
    say_unavailable(step, res);
    s.api.ActivityDisable(CUPTI_ACTIVITY_KIND_MEMORY2);
    s.api.ActivityDisable(CUPTI_ACTIVITY_KIND_MEMORY_POOL);
    s.api.Unsubscribe(s.subscriber);
    return 0;
  };
  // Records on gpumem's clock (CLOCK_MONOTONIC), like the preload's; else a measured offset.
  if (s.api.ActivityRegisterTimestampCallback == nullptr ||
      s.api.ActivityRegisterTimestampCallback(monotonic_timestamp) != CUPTI_SUCCESS) {
    uint64_t cupti_now = 0;
    if (s.api.GetTimestamp(&cupti_now) == CUPTI_SUCCESS)
      s.ctx.clock_offset_ns =
          static_cast<int64_t>(monotonic_ns()) - static_cast<int64_t>(cupti_now);
  }
  r = s.api.ActivityRegisterCallbacks(buffer_requested, buffer_completed);
  if (r != CUPTI_SUCCESS) return give_up("cuptiActivityRegisterCallbacks", r);

  // The trace opens before the kinds are enabled so no record arrives without a writer.
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  uint64_t start_unix_ns = static_cast<uint64_t>(now.tv_sec) * 1000000000ull + now.tv_nsec;
  char host[64] = {};
  gethostname(host, sizeof host - 1);
  int rank = rank_from_environment(std::getenv);
  char path[4096];
  if (!expand_trace_template(tmpl, getpid(), host, rank, start_unix_ns, path, sizeof path)) {
    std::fprintf(stderr,
                 "gpumem-cupti: GPUMEM_TRACE=%s expands to a path longer than 4095 bytes; use a "
                 "shorter template. No CUPTI trace is written; the program runs on.\n",
                 tmpl);
    s.api.Unsubscribe(s.subscriber);
    return 0;
  }
  auto* header = new trace::Header{};  // 64 KiB: not on the stack of the driver's thread
  header->start_unix_ns = start_unix_ns;
  fill_header(header, rank, tmpl, s.api.path);
  s.writer = new TraceWriter;
  // As the preload: never an existing file; the next free path.1, path.2... instead.
  bool opened = s.writer->open_unused(path, *header, err, sizeof err);
  delete header;
  if (!opened) {
    std::fprintf(stderr, "gpumem-cupti: %s. No CUPTI trace is written; the program runs on.\n",
                 err);
    s.api.Unsubscribe(s.subscriber);
    return 0;
  }
  s.ctx.pool_marks.created = s.writer->intern_string(kPoolCreatedText);
  s.ctx.pool_marks.destroyed = s.writer->intern_string(kPoolDestroyedText);

  r = s.api.ActivityEnable(CUPTI_ACTIVITY_KIND_MEMORY2);
  if (r != CUPTI_SUCCESS) {
    {
      std::lock_guard<std::mutex> lock(s.writer_mutex);
      s.closed = true;
      s.writer->close();
      unlink(s.writer->path());  // an empty trace would read as "no allocations"
    }
    return give_up("cuptiActivityEnable(MEMORY2)", r);
  }
  r = s.api.ActivityEnable(CUPTI_ACTIVITY_KIND_MEMORY_POOL);
  if (r != CUPTI_SUCCESS)
    std::fprintf(stderr,
                 "gpumem-cupti: warning: memory pool records are off (CUPTI error %d, %s); "
                 "allocations are still recorded.\n",
                 static_cast<int>(r), result_name(s.api, r));
  std::atexit(flush_and_close);
  if (s.verbose) say("recording CUDA memory activity (CUPTI) to %s", path);
  return 1;
}

}  // namespace
}  // namespace gpumem::cupti

// The CUDA driver's injection entry point (CUDA_INJECTION64_PATH). Safe to call more than once:
// later calls return the first call's answer.
extern "C" __attribute__((visibility("default"))) int InitializeInjection(void) {
  static std::once_flag once;
  static int result = 0;
  std::call_once(once, [] { result = gpumem::cupti::start(); });
  return result;
}
