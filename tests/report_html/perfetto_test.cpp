// The Perfetto export parsed back: metadata names, counter tracks, phase slices that nest on
// their tracks, instant events, microsecond timestamps, and processes lined up in time.
#include <gtest/gtest.h>

#include <map>

#include "render_perfetto.h"
#include "sample.h"

namespace gpumem::analyzer {
namespace {

using namespace gpumem::analyzer::testing;
using Json = nlohmann::json;

std::vector<Json> events_where(const Json& trace, const std::string& ph,
                               const std::string& name = "") {
  std::vector<Json> out;
  for (const Json& e : trace["traceEvents"])
    if (e["ph"] == ph && (name.empty() || e["name"] == name)) out.push_back(e);
  return out;
}

// On one (pid, tid) any two slices are disjoint or one holds the other (1 ns slack for the
// microsecond doubles).
void expect_slices_nest(const Json& trace) {
  std::map<std::pair<int64_t, int64_t>, std::vector<std::pair<double, double>>> tracks;
  for (const Json& e : events_where(trace, "X")) {
    ASSERT_TRUE(e.contains("dur")) << e;
    double ts = e["ts"].get<double>(), dur = e["dur"].get<double>();
    ASSERT_GE(dur, 0.0);
    tracks[{e["pid"].get<int64_t>(), e["tid"].get<int64_t>()}].push_back({ts, ts + dur});
  }
  const double eps = 1e-3;
  for (const auto& [track, slices] : tracks)
    for (size_t i = 0; i < slices.size(); ++i)
      for (size_t j = 0; j < slices.size(); ++j) {
        if (i == j) continue;
        auto [a0, a1] = slices[i];
        auto [b0, b1] = slices[j];
        bool disjoint = a1 <= b0 + eps || b1 <= a0 + eps;
        bool a_holds_b = a0 <= b0 + eps && b1 <= a1 + eps;
        bool b_holds_a = b0 <= a0 + eps && a1 <= b1 + eps;
        EXPECT_TRUE(disjoint || a_holds_b || b_holds_a)
            << "slices [" << a0 << "," << a1 << ") and [" << b0 << "," << b1 << ") overlap on pid "
            << track.first << " tid " << track.second;
      }
}

TEST(Perfetto, PhaseTracksKeepOverlappingPhasesApart) {
  auto phase = [](int64_t s, int64_t e) {
    PhasePeak p;
    p.start_ns = s;
    p.end_ns = e;
    return p;
  };
  // A holds C; B overlaps A partly; D starts where A ends.
  std::vector<PhasePeak> phases = {phase(0, 10), phase(5, 15), phase(6, 8), phase(10, 12)};
  EXPECT_EQ(phase_tracks(phases), (std::vector<int>{0, 1, 0, 0}));
  EXPECT_TRUE(phase_tracks({}).empty());
}

TEST(Perfetto, SampleHasCountersSlicesInstantsAndNames) {
  Report r = sample_report();
  Json trace = Json::parse(render_perfetto(r));
  EXPECT_EQ(trace["displayTimeUnit"], "ms");
  ASSERT_TRUE(trace["traceEvents"].is_array());

  auto meta = events_where(trace, "M");
  ASSERT_EQ(meta.size(), 2u);
  EXPECT_EQ(meta[0]["name"], "process_name");
  EXPECT_EQ(meta[0]["pid"], 4242);
  EXPECT_EQ(meta[0]["args"]["name"], "pid 4242 on gpu-node-01");
  EXPECT_EQ(meta[1]["name"], "thread_name");
  EXPECT_EQ(meta[1]["tid"], 1);
  EXPECT_EQ(meta[1]["args"]["name"], "phases");

  const DeviceReport& d = r.devices[0];
  auto memory = events_where(trace, "C", "GPU 0 memory");
  auto frag = events_where(trace, "C", "GPU 0 fragmentation");
  ASSERT_EQ(memory.size(), d.timeline.t_ns.size());
  ASSERT_EQ(frag.size(), d.timeline.t_ns.size());
  uint64_t max_alloc = 0, max_reserved = 0;
  double max_frag = 0;
  for (size_t i = 0; i < memory.size(); ++i) {
    EXPECT_EQ(memory[i]["pid"], 4242);
    // Timestamps are microseconds: the report's nanoseconds / 1000 (the origin is t = 0 here).
    EXPECT_DOUBLE_EQ(memory[i]["ts"].get<double>(), static_cast<double>(d.timeline.t_ns[i]) / 1000);
    EXPECT_EQ(memory[i]["args"]["allocated"], d.timeline.allocated[i]);
    EXPECT_EQ(memory[i]["args"]["reserved"], d.timeline.reserved[i]);
    max_alloc = std::max(max_alloc, memory[i]["args"]["allocated"].get<uint64_t>());
    max_reserved = std::max(max_reserved, memory[i]["args"]["reserved"].get<uint64_t>());
    max_frag = std::max(max_frag, frag[i]["args"]["external"].get<double>());
  }
  EXPECT_EQ(max_alloc, 576 * kMiB);
  EXPECT_EQ(max_reserved, 768 * kMiB);
  EXPECT_NEAR(max_frag, d.fragmentation.external_max, 1e-12);

  auto slices = events_where(trace, "X");
  ASSERT_EQ(slices.size(), 3u);
  std::map<std::string, std::pair<double, double>> by_name;
  for (const Json& s : slices) {
    EXPECT_EQ(s["tid"], 1);
    EXPECT_EQ(s["cat"], "phase");
    by_name[s["name"]] = {s["ts"].get<double>(), s["dur"].get<double>()};
  }
  EXPECT_EQ(by_name["epoch 0"], std::make_pair(0.0, 15000.0));
  EXPECT_EQ(by_name["step 1"], std::make_pair(2000.0, 5000.0));
  EXPECT_EQ(by_name["step 2"], std::make_pair(8000.0, 5000.0));
  expect_slices_nest(trace);

  auto peak = events_where(trace, "i", "GPU 0 peak allocated");
  ASSERT_EQ(peak.size(), 1u);
  EXPECT_EQ(peak[0]["s"], "p");
  EXPECT_DOUBLE_EQ(peak[0]["ts"].get<double>(), 10000.0);
  EXPECT_EQ(peak[0]["args"]["allocated_bytes"], 576 * kMiB);
  EXPECT_EQ(peak[0]["args"]["phase"], "step 2");
  auto failed = events_where(trace, "i", "GPU 0 allocation failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_DOUBLE_EQ(failed[0]["ts"].get<double>(), 11000.0);
  EXPECT_EQ(failed[0]["args"]["requested_bytes"], 1024 * kMiB);
  EXPECT_EQ(failed[0]["args"]["in_use_bytes"], 576 * kMiB);

  // Timed events are in time order and never before the origin.
  double last = 0;
  for (const Json& e : trace["traceEvents"]) {
    if (e["ph"] == "M") continue;
    ASSERT_TRUE(e["ts"].is_number()) << e;
    EXPECT_GE(e["ts"].get<double>(), last);
    last = e["ts"].get<double>();
  }
}

TEST(Perfetto, PartlyOverlappingPhasesGoOnTheirOwnTrack) {
  Events e;
  e.string(1, "A")
      .string(2, "B")
      .begin(0, 1)
      .alloc(1000, 0x10, 64)
      .begin(2000, 2)
      .end(3000, 1)
      .free(3500, 0x10)
      .end(4000, 2);
  Json trace = perfetto_json(e.analyze());
  auto slices = events_where(trace, "X");
  ASSERT_EQ(slices.size(), 2u);
  std::map<std::string, int> tid;
  for (const Json& s : slices) tid[s["name"]] = s["tid"];
  EXPECT_EQ(tid["A"], 1);
  EXPECT_EQ(tid["B"], 2);
  bool named = false;
  for (const Json& m : events_where(trace, "M", "thread_name"))
    named = named || (m["tid"] == 2 && m["args"]["name"] == "phases 2");
  EXPECT_TRUE(named);
  expect_slices_nest(trace);
}

TEST(Perfetto, ProcessesOfOneHostShareTheMonotonicClock) {
  Analysis a;
  for (int rank = 0; rank < 2; ++rank) {
    trace::Header h = make_header(700 + static_cast<uint32_t>(rank), rank);
    h.clock_base_ns = kBase + static_cast<uint64_t>(rank) * 5 * kMs;  // rank 1 opened 5 ms later
    Events e;  // both allocate 1 ms after opening their trace
    e.alloc(1 * kMs + rank * 5 * kMs, 0x10, 64).free(2 * kMs + rank * 5 * kMs, 0x10);
    a.begin_trace(h, "rank.trace");
    e.feed(a);
    a.end_trace(trace::ReadStats{});
  }
  Json trace = perfetto_json(a.finish());
  auto peaks = events_where(trace, "i", "GPU 0 peak allocated");
  ASSERT_EQ(peaks.size(), 2u);
  std::map<int, double> ts;
  for (const Json& p : peaks) ts[p["pid"]] = p["ts"];
  EXPECT_DOUBLE_EQ(ts[701] - ts[700], 5000.0);
  std::map<int, std::string> names;
  for (const Json& m : events_where(trace, "M", "process_name"))
    names[m["pid"]] = m["args"]["name"];
  EXPECT_EQ(names[700], "rank 0 (pid 700) on testhost");
  EXPECT_EQ(names[701], "rank 1 (pid 701) on testhost");
}

TEST(Perfetto, HostileStringsStayValidJson) {
  Report r = sample_report(/*evil=*/true);
  r.traces[0].command += "\xFF\xFE";  // not UTF-8
  Json trace = Json::parse(render_perfetto(r));
  bool found = false;
  for (const Json& s : events_where(trace, "X")) found = found || s["name"] == kEvilMarker;
  EXPECT_TRUE(found);
}

// A process that is pid 1 in a container has a thread 1: its NVTX range and marker went on tid 1,
// the process-wide phases' track, where the range partly overlapped a phase (Perfetto cannot
// nest them) and the track had two names. The thread now has a track of its own.
TEST(Perfetto, ThreadOneKeepsItsOwnTrackBesideThePhases) {
  auto on_thread_1 = [](trace::Record r) {
    r.api = static_cast<uint16_t>(trace::Api::nvtx);
    r.tid = 1;
    return r;
  };
  Events e;
  e.string(1, "A").string(2, "N").string(3, "M").alloc(500, 0x10, 64);
  e.begin(0, 1);
  e.add(on_thread_1(Events::rec(1000, trace::Op::mark_begin, 77, 0, 2, -1)));
  e.add(on_thread_1(Events::rec(2000, trace::Op::mark, 0, 0, 3, -1)));
  e.end(4000, 1);
  e.add(on_thread_1(Events::rec(5000, trace::Op::mark_end, 77, 0, 2, -1)));
  const Json trace = perfetto_json(e.analyze());
  std::map<std::string, int64_t> tid;
  for (const Json& s : events_where(trace, "X")) tid[s["name"]] = s["tid"];
  for (const Json& s : events_where(trace, "i", "M")) tid["M"] = s["tid"];
  ASSERT_EQ(tid.size(), 3u);
  EXPECT_EQ(tid["A"], 1);
  EXPECT_EQ(tid["N"], (int64_t{1} << 30) + 1);
  EXPECT_EQ(tid["M"], tid["N"]);
  std::map<int64_t, std::vector<std::string>> names;
  for (const Json& m : events_where(trace, "M", "thread_name"))
    names[m["tid"]].push_back(m["args"]["name"]);
  EXPECT_EQ(names[1], std::vector<std::string>{"phases"});
  EXPECT_EQ(names[tid["N"]], std::vector<std::string>{"thread 1"});
  expect_slices_nest(trace);
}

}  // namespace
}  // namespace gpumem::analyzer
