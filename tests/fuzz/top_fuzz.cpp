// libFuzzer target: `gpumem top`'s follower (cli/top_watch.cpp) against a trace that grows, is cut
// and is closed while it watches. The first byte picks how the trace is written: slot by slot by
// this target (raw format), or by the real writer (TraceWriter) in the raw or the compact format,
// bounded or not (GPUMEM_TRACE_MAX at its least),
// the records of the input repeated as many times as the second byte says (so that compact
// traces seal raw chunks into compact ones while top follows). The records come from
// record_stream.h; the run length the input gives after each record picks what happens next:
// nothing, a refresh, or (written slot by slot) the file cut at a slot or inside one below its
// end, then a refresh. The header names this process, so the writer is alive until the trace is
// closed and a last refresh runs. Then top's view must equal, number for number, a fresh
// analysis of the file as it is: the whole point of top is that its numbers are `gpumem
// report`'s at that moment.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "gpumem/analyzer/analysis.h"
#include "gpumem/trace/format_v2.h"
#include "gpumem/trace/reader.h"
#include "gpumem/trace/writer.h"
#include "record_stream.h"
#include "top_watch.h"

using namespace gpumem::fuzz;
namespace analyzer = gpumem::analyzer;

namespace {

void trap_unless(bool ok) {
  if (!ok) __builtin_trap();
}

analyzer::Report fresh_report(const std::string& path) {
  std::string error;
  auto reader = gpumem::trace::Reader::open(path, &error);
  trap_unless(reader != nullptr);
  analyzer::AnalysisOptions options;
  options.max_points = 240;  // top's timeline
  options.site_series = false;
  analyzer::Analysis a(options);
  a.begin_trace(reader->header(), path);
  gpumem::trace::Batch b;
  while (reader->next_batch(&b)) a.feed(b);
  a.end_trace(reader->stats());
  return a.finish();
}

// top's view after its last refresh against a fresh analysis of the file.
void check(const gpumem::cli::top::ProcessView& view, const std::string& path) {
  const analyzer::Report r = fresh_report(path);
  ::unlink(path.c_str());
  trap_unless(view.state == "ended");
  trap_unless(view.events == r.traces.at(0).events);
  trap_unless(view.devices.size() == r.devices.size());
  for (size_t k = 0; k < r.devices.size(); ++k) {
    const gpumem::cli::top::DeviceView& v = view.devices[k];
    const analyzer::DeviceReport& dr = r.devices[k];
    trap_unless(v.device == dr.device);
    trap_unless(v.allocated_bytes == dr.final.allocated_bytes);
    trap_unless(v.reserved_bytes == dr.final.reserved_bytes);
    trap_unless(v.peak_bytes == dr.peak.allocated_bytes);
    trap_unless(v.peak_time_ns == dr.peak.time_ns);
    trap_unless(v.allocs == dr.counts.alloc && v.frees == dr.counts.free);
    trap_unless(v.failed == dr.counts.alloc_failed);
  }
}

// Written by the real writer: no cuts (the writer maps the file).
void write_with_writer(const Decoded& d, const std::string& path, bool compact, bool bounded,
                       size_t repeats, gpumem::cli::top::Watch& watch, double& now) {
  gpumem::TraceWriter w;
  w.set_format(compact ? gpumem::TraceWriter::Format::compact : gpumem::TraceWriter::Format::raw);
  // Bounded: its follower is opened again at each look (its window may turn), not followed on.
  if (bounded) w.set_max_bytes(gpumem::trace::kMinTraceMax);
  gpumem::trace::Header h = header();
  h.pid = static_cast<uint32_t>(getpid());
  char err[512];
  trap_unless(w.open(path.c_str(), h, err, sizeof err));
  for (size_t k = 0; k < repeats; ++k) {
    for (size_t i = 0; i < d.records.size(); ++i) {
      const Record& r = d.records[i];
      if (is_blob(r))
        w.append_blob(static_cast<Op>(r.op), r.aux, d.payloads[i].data(), d.payloads[i].size());
      else
        w.append(r);
      if (d.runs[i] % 8 == 1 && (k + i) % 3 == 0) watch.poll(now += 1, 10);
    }
  }
  w.close();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0] % 4;  // by slot; the writer, raw; compact; compact and bounded
  const size_t repeats = 1 + data[1] % 8;
  Input in{data + 2, size - 2};
  const Decoded d = decode(in);
  static const std::string path = "/tmp/gpumem-fuzz-top-" + std::to_string(getpid()) + ".trace";
  ::unlink(path.c_str());
  double now = 1;
  if (mode != 0) {
    gpumem::cli::top::Watch watch(path, path);
    write_with_writer(d, path, mode >= 2, mode == 3, repeats, watch, now);
    watch.poll(now += 1, 10);
    check(watch.view(), path);
    return 0;
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  gpumem::trace::Header h = header();
  h.pid = static_cast<uint32_t>(getpid());  // a writer that is alive until the close
  std::string bytes = header_bytes(h, false, 0);
  trap_unless(::pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
  uint64_t end = bytes.size();
  gpumem::cli::top::Watch watch(path, path);
  for (size_t i = 0; i < d.records.size(); ++i) {
    const std::string slots = record_bytes(d, i);
    trap_unless(::pwrite(fd, slots.data(), slots.size(), static_cast<off_t>(end)) ==
                static_cast<ssize_t>(slots.size()));
    end += slots.size();
    const size_t action = d.runs[i];
    if (action % 8 == 1) {
      watch.poll(now += 1, 10);
    } else if (action == 2 || action == 10) {  // cut back by a few slots (or into one)
      const uint64_t back = (action == 2 ? 64 : 100) * (1 + d.runs[(i + 1) % d.runs.size()] % 4);
      end = std::max<uint64_t>(gpumem::trace::kHeaderSize, end > back ? end - back : 0);
      trap_unless(::ftruncate(fd, static_cast<off_t>(end)) == 0);
      watch.poll(now += 1, 10);
    }
  }
  bytes = header_bytes(h, true, end - (end - gpumem::trace::kHeaderSize) % 64);
  trap_unless(::pwrite(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
  ::close(fd);
  watch.poll(now += 1, 10);
  check(watch.view(), path);
  return 0;
}
