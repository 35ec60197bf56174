// NVTX without a code change (prefix nvtx.): nvtx_program, annotated with the toolkit's NVTX v3
// headers only, runs under `gpumem run` on simcuda; its ranges must be in the trace with their
// exact nesting and thread, its marks and memory-extension regions too, and the report's phases
// must be the ranges it opened (docs/interception.md, "NVTX").
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gpumem/trace/reader.h"
#include "scratch.h"
#include "shell.h"

namespace {

using gpumem::trace::Api;
using gpumem::trace::Op;
using gpumem::trace::Record;
using nlohmann::json;

constexpr uint64_t kMiB = 1 << 20;

struct Trace {
  std::vector<Record> nvtx;  // the api nvtx records, in file order
  std::map<uint64_t, std::string> strings;
  std::string name(uint64_t id) const {
    auto it = strings.find(id);
    return it != strings.end() ? it->second : "?" + std::to_string(id);
  }
  uint64_t id_of(const std::string& s) const {
    for (const auto& [id, text] : strings)
      if (text == s) return id;
    return 0;
  }
};

Trace load(const std::string& path) {
  Trace t;
  std::string err;
  auto reader = gpumem::trace::Reader::open(path, &err);
  EXPECT_NE(reader, nullptr) << err;
  if (reader == nullptr) return t;
  gpumem::trace::Event ev;
  while (reader->next(&ev)) {
    if (ev.rec.op == static_cast<uint16_t>(Op::string))
      t.strings[ev.rec.aux] = std::string(ev.payload);
    else if (ev.rec.api == static_cast<uint16_t>(Api::nvtx))
      t.nvtx.push_back(ev.rec);
  }
  return t;
}

// The successful allocations (Op::alloc records) in the trace.
uint64_t count_allocs(const std::string& path) {
  std::string err;
  auto reader = gpumem::trace::Reader::open(path, &err);
  EXPECT_NE(reader, nullptr) << err;
  uint64_t n = 0;
  gpumem::trace::Event ev;
  while (reader != nullptr && reader->next(&ev)) n += ev.rec.op == static_cast<uint16_t>(Op::alloc);
  return n;
}

// "tid NAME N" and "heap 0xADDR" lines of the program's output.
struct Printed {
  std::map<std::string, uint32_t> tids;
  uint64_t heap = 0;
};

Printed parse(const std::string& out) {
  Printed p;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string what, name;
    words >> what;
    if (what == "tid") {
      uint32_t tid = 0;
      words >> name >> tid;
      p.tids[name] = tid;
    } else if (what == "heap") {
      words >> name;
      p.heap = std::stoull(name, nullptr, 16);
    }
  }
  return p;
}

std::string op_and_name(const Trace& t, const Record& r) {
  return std::string(gpumem::trace::op_name(static_cast<Op>(r.op))) + " " + t.name(r.aux);
}

class Nvtx : public ::testing::Test {
 protected:
  gpumem::test::ScratchDir dir_{"gpumem-nvtx"};
  std::string trace() const { return dir_ / "t.trace"; }
  // `gpumem run` on simcuda of `command` (nvtx_program with `args` by default).
  gpumem::test::Output run(const std::string& env, const std::string& args,
                           const std::string& command = NVTX_PROGRAM) {
    return gpumem::test::sh("env -u LD_PRELOAD -u NVTX_INJECTION64_PATH " + env +
                            " " GPUMEM_CLI " run --device sim --trace " + trace() + " -- " +
                            command + " " + args);
  }
};

TEST_F(Nvtx, RangesNestPerThreadWithTheirDomainsInTheTrace) {
  auto out = run("", "levels");  // the program checks NVTX's push/pop levels itself (exit 3)
  ASSERT_EQ(out.status, 0) << out.out;
  const Printed p = parse(out.out);
  ASSERT_EQ(p.tids.size(), 7u) << out.out;
  const Trace t = load(trace());

  // Per thread: the exact sequence of begins, ends and marks.
  std::map<uint32_t, std::vector<std::string>> by_thread;
  for (const Record& r : t.nvtx)
    if (r.op == static_cast<uint16_t>(Op::mark_begin) ||
        r.op == static_cast<uint16_t>(Op::mark_end) || r.op == static_cast<uint16_t>(Op::mark))
      by_thread[r.tid].push_back(op_and_name(t, r));
  for (int i = 0; i < 4; ++i) {
    const std::string layer = "layer" + std::to_string(i);
    EXPECT_EQ(by_thread[p.tids.at("worker" + std::to_string(i))],
              (std::vector<std::string>{"mark_begin step", "mark_begin " + layer,
                                        "mark_end " + layer, "mark_end step"}))
        << "worker " << i;
  }
  EXPECT_EQ(by_thread[p.tids.at("main")],
            (std::vector<std::string>{
                "mark_begin load", "mark_begin \xc3\xa9valuation", "mark_end \xc3\xa9valuation",
                "mark_begin trainer::forward", "mark_begin attention", "mark_end attention",
                "mark_end trainer::forward", "mark checkpoint", "mark trainer::epoch-end"}));
  EXPECT_EQ(by_thread[p.tids.at("ender")], (std::vector<std::string>{"mark_end load"}));
  EXPECT_EQ(by_thread[p.tids.at("background")],
            (std::vector<std::string>{"mark_begin background", "mark_end background"}));
  EXPECT_EQ(by_thread.size(), 7u);

  // Every begin has exactly one end with its range id; start/end ranges say so in their flags;
  // the domain is the string id of "trainer" for trainer's events, 0 for the default domain.
  const uint64_t trainer = t.id_of("trainer");
  ASSERT_NE(trainer, 0u);
  std::map<uint64_t, int> open;
  int ranges = 0;
  for (const Record& r : t.nvtx) {
    const std::string name = t.name(r.aux);
    const bool in_trainer = name.rfind("trainer::", 0) == 0;
    if (r.op == static_cast<uint16_t>(Op::mark_begin) ||
        r.op == static_cast<uint16_t>(Op::mark_end) || r.op == static_cast<uint16_t>(Op::mark)) {
      EXPECT_EQ(r.stream, in_trainer ? trainer : 0u) << name;
    }
    if (r.op == static_cast<uint16_t>(Op::mark_begin)) {
      EXPECT_NE(r.address, 0u);
      EXPECT_EQ(open.count(r.address), 0u) << "range id reused while open: " << name;
      open[r.address] = 1;
      ++ranges;
    } else if (r.op == static_cast<uint16_t>(Op::mark_end)) {
      EXPECT_EQ(open.erase(r.address), 1u) << "end without its begin: " << name;
    }
    if (r.op == static_cast<uint16_t>(Op::mark_begin) ||
        r.op == static_cast<uint16_t>(Op::mark_end)) {
      EXPECT_EQ(r.flags, name == "load" ? gpumem::trace::kFlagProcessRange : 0) << name;
    }
  }
  EXPECT_TRUE(open.empty());
  EXPECT_EQ(ranges, 13);  // 4 x (step, layer), load, évaluation, trainer::forward, attention,
                          // background
}

TEST_F(Nvtx, MemoryExtensionRegionsAreRecordedWithExactSizes) {
  auto out = run("", "");
  ASSERT_EQ(out.status, 0) << out.out;
  const Printed p = parse(out.out);
  ASSERT_NE(p.heap, 0u) << out.out;
  const Trace t = load(trace());
  std::vector<std::string> mem;
  uint64_t heap_id = 0;
  for (const Record& r : t.nvtx) {
    const Op op = static_cast<Op>(r.op);
    if (op < Op::heap_register || op > Op::region_unregister) continue;
    if (op == Op::heap_register) heap_id = r.aux;
    std::ostringstream s;
    s << gpumem::trace::op_name(op) << " "
      << (r.address != 0 ? "+" + std::to_string((r.address - p.heap) / kMiB) + "MiB" : "-") << " "
      << r.bytes / kMiB << "MiB heap" << (r.aux == heap_id ? "=" : "!") << " domain "
      << t.name(r.stream);
    mem.push_back(s.str());
    EXPECT_EQ(r.tid, p.tids.at("main"));
  }
  ASSERT_NE(heap_id, 0u);
  // Resize and unregister name the region by address only (NVTX gives no heap there): aux 0.
  EXPECT_EQ(mem, (std::vector<std::string>{"heap_register +0MiB 16MiB heap= domain trainer",
                                           "region_register +0MiB 1MiB heap= domain trainer",
                                           "region_register +2MiB 2MiB heap= domain trainer",
                                           "region_register +6MiB 3MiB heap= domain trainer",
                                           "region_resize +2MiB 4MiB heap! domain trainer",
                                           "region_unregister +0MiB 0MiB heap! domain trainer",
                                           "region_unregister +6MiB 0MiB heap! domain trainer",
                                           "heap_unregister - 0MiB heap= domain trainer"}));

  // The report: the heap on the device of its allocation, how full the allocator's pool got
  // (1 + 4 + 3 MiB after the resize), and the largest gap then (9..16 MiB).
  auto rep = gpumem::test::sh(std::string(GPUMEM_CLI) + " report " + trace() + " --json " +
                              (dir_ / "r.json"));
  ASSERT_EQ(rep.status, 0) << rep.out;
  std::ifstream in(dir_ / "r.json");
  const json r = json::parse(in);
  const json& heaps = r["devices"][0]["nvtx_heaps"];
  ASSERT_EQ(heaps.size(), 1u) << r["devices"][0].dump();
  const json& h = heaps[0];
  EXPECT_EQ(h["domain"], "trainer");
  EXPECT_EQ(h["address"].get<uint64_t>(), p.heap);
  EXPECT_EQ(h["bytes"].get<uint64_t>(), 16 * kMiB);
  EXPECT_EQ(h["regions_registered"].get<uint64_t>(), 3u);
  EXPECT_EQ(h["regions_peak_bytes"].get<uint64_t>(), 8 * kMiB);
  EXPECT_EQ(h["regions_peak_count"].get<uint64_t>(), 3u);
  EXPECT_EQ(h["largest_free_at_peak_bytes"].get<uint64_t>(), 7 * kMiB);
  EXPECT_EQ(h["regions_final_bytes"].get<uint64_t>(), 0u);
  EXPECT_FALSE(h["end_ns"].is_null());
  EXPECT_TRUE(h["counted"].get<bool>());
  // The heap's memory is counted once: its cudaMalloc became a segment while the heap was
  // registered, its regions the allocations in it (at most 8 MiB: below the 32 MiB peak); the
  // heap unregistered, the allocation was plain again until its cudaFree.
  const json& d = r["devices"][0];
  EXPECT_EQ(d["peak"]["allocated_bytes"].get<uint64_t>(), 32 * kMiB);
  EXPECT_EQ(d["peak"]["reserved_bytes"].get<uint64_t>(), 32 * kMiB);
  EXPECT_EQ(d["final"]["allocated_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(d["final"]["reserved_bytes"].get<uint64_t>(), 0u);
  EXPECT_TRUE(d["leaks"].empty()) << d["leaks"].dump();
  EXPECT_EQ(d["counts"]["segment_reserve"].get<uint64_t>(), 0u);  // pool records only
  // The 3 regions are 3 allocations, the resize none; unregistered or dropped with the heap, 3
  // frees.
  EXPECT_EQ(d["counts"]["alloc"].get<uint64_t>(), count_allocs(trace()) + 3);
  EXPECT_EQ(d["counts"]["free"].get<uint64_t>(), d["counts"]["alloc"].get<uint64_t>());
}

// The same heap left registered: its regions are the program's live allocations, with their exact
// sizes, inside the heap's 16 MiB segment.
TEST_F(Nvtx, MemoryExtensionRegionsArePooledAllocationsInTheirHeap) {
  auto out = run("", "keep");
  ASSERT_EQ(out.status, 0) << out.out;
  auto rep = gpumem::test::sh(std::string(GPUMEM_CLI) + " report " + trace() + " --json " +
                              (dir_ / "r.json"));
  ASSERT_EQ(rep.status, 0) << rep.out;
  std::ifstream in(dir_ / "r.json");
  const json r = json::parse(in);
  const json& d = r["devices"][0];
  // The peak: the regions (1 + 4 + 3 MiB) and the 30 MiB allocated after them; reserved: the
  // heap's 16 MiB and those 30.
  EXPECT_EQ(d["peak"]["allocated_bytes"].get<uint64_t>(), 38 * kMiB);
  EXPECT_EQ(d["peak"]["reserved_at_peak_bytes"].get<uint64_t>(), 46 * kMiB);
  EXPECT_EQ(d["peak"]["reserved_bytes"].get<uint64_t>(), 46 * kMiB);
  EXPECT_EQ(d["final"]["allocated_bytes"].get<uint64_t>(), 38 * kMiB);
  EXPECT_EQ(d["final"]["reserved_bytes"].get<uint64_t>(), 46 * kMiB);
  // Each region alone in its size class: the rows are the regions, with their exact sizes.
  auto rows = [](const json& list) {
    std::map<uint64_t, std::pair<uint64_t, uint64_t>> m;  // class min -> (count, bytes)
    for (const auto& row : list)
      m[row["size_class"]["min_bytes"].get<uint64_t>()] = {row["count"].get<uint64_t>(),
                                                           row["bytes"].get<uint64_t>()};
    return m;
  };
  const std::map<uint64_t, std::pair<uint64_t, uint64_t>> live{{1 * kMiB, {1, 1 * kMiB}},
                                                               {2 * kMiB, {1, 3 * kMiB}},
                                                               {4 * kMiB, {1, 4 * kMiB}},
                                                               {16 * kMiB, {1, 30 * kMiB}}};
  EXPECT_EQ(rows(d["peak"]["live_at_peak_by_size_class"]), live);
  EXPECT_EQ(d["peak"]["grouped_by"], "size_class");
  EXPECT_EQ(rows(d["peak"]["live_at_peak"]), live);
  EXPECT_EQ(rows(d["leaks"]), live);
  EXPECT_EQ(d["final"]["leaked_bytes"].get<uint64_t>(), 38 * kMiB);
  // Inside the heap: free 1..2 and 9..16 MiB.
  EXPECT_EQ(d["fragmentation"]["free_in_segments_at_peak_bytes"].get<uint64_t>(), 8 * kMiB);
  EXPECT_EQ(d["fragmentation"]["largest_free_block_at_peak_bytes"].get<uint64_t>(), 7 * kMiB);
  const json& h = d["nvtx_heaps"][0];
  EXPECT_EQ(h["regions_final_bytes"].get<uint64_t>(), 8 * kMiB);
  EXPECT_TRUE(h["end_ns"].is_null());

  // With call stacks, the regions are the site of the call that registered them (one call for the
  // three), apart from the 30 MiB cudaMalloc's.
  const std::string stacked = dir_ / "s.trace";  // a second run: a new trace (never overwritten)
  out = gpumem::test::sh("env -u LD_PRELOAD -u NVTX_INJECTION64_PATH " GPUMEM_CLI
                         " run --device sim --stacks --trace " +
                         stacked + " -- " NVTX_PROGRAM " keep");
  ASSERT_EQ(out.status, 0) << out.out;
  rep = gpumem::test::sh(std::string(GPUMEM_CLI) + " report " + stacked + " --json " +
                         (dir_ / "s.json"));
  ASSERT_EQ(rep.status, 0) << rep.out;
  std::ifstream s_in(dir_ / "s.json");
  const json s = json::parse(s_in);
  const json& sd = s["devices"][0];
  EXPECT_EQ(sd["peak"]["grouped_by"], "site");
  for (const char* list : {"live", "leaks"}) {
    const json& rows = list == std::string("live") ? sd["peak"]["live_at_peak"] : sd["leaks"];
    std::map<uint64_t, uint64_t> count_of;  // bytes -> count
    std::set<uint64_t> sites;
    for (const auto& row : rows) {
      count_of[row["bytes"].get<uint64_t>()] = row["count"].get<uint64_t>();
      sites.insert(row["site"].get<uint64_t>());
      EXPECT_FALSE(row["frames"].empty()) << row.dump();
    }
    EXPECT_EQ(count_of, (std::map<uint64_t, uint64_t>{{8 * kMiB, 3}, {30 * kMiB, 1}})) << list;
    EXPECT_EQ(sites.size(), 2u);
    EXPECT_EQ(sites.count(0), 0u);
  }
  ASSERT_TRUE(sd.contains("timeline_by_site")) << sd.dump();
}

TEST_F(Nvtx, ReportPhasesAreTheRangesTheProgramOpened) {
  auto out = run("", "");
  ASSERT_EQ(out.status, 0) << out.out;
  const Printed p = parse(out.out);
  auto rep = gpumem::test::sh(std::string(GPUMEM_CLI) + " report " + trace() + " --json " +
                              (dir_ / "r.json"));
  ASSERT_EQ(rep.status, 0) << rep.out;
  std::ifstream in(dir_ / "r.json");
  const json r = json::parse(in);
  ASSERT_EQ(r["devices"].size(), 1u);
  const json& d = r["devices"][0];
  std::multiset<std::string> phases;
  std::map<std::string, uint32_t> thread_of;
  for (const auto& ph : d["phases"]) {
    phases.insert(ph["name"].get<std::string>());
    EXPECT_TRUE(ph["closed"].get<bool>()) << ph.dump();
    if (ph.contains("tid")) thread_of[ph["name"].get<std::string>()] = ph["tid"].get<uint32_t>();
  }
  EXPECT_EQ(phases, (std::multiset<std::string>{"step", "step", "step", "step", "layer0", "layer1",
                                                "layer2", "layer3", "load", "\xc3\xa9valuation",
                                                "trainer::forward", "attention", "background"}));
  // Push/pop ranges carry their thread; the start/end range "load" belongs to none.
  EXPECT_EQ(thread_of["layer2"], p.tids.at("worker2"));
  EXPECT_EQ(thread_of["attention"], p.tids.at("main"));
  EXPECT_EQ(thread_of["background"], p.tids.at("background"));
  EXPECT_EQ(thread_of.count("load"), 0u);
  // Each range's peak: the device's allocated while it was open, whichever thread allocated. The
  // 32 MiB were allocated inside trainer::forward > attention, with "background" open too; each
  // worker allocated (i + 1) MiB inside its layer, the 4 of them 10 MiB at most together.
  std::map<std::string, uint64_t> peak_of;
  for (const auto& ph : d["phases"])
    peak_of[ph["name"].get<std::string>()] = ph["peak_allocated_bytes"].get<uint64_t>();
  EXPECT_EQ(peak_of["attention"], 32 * kMiB);
  EXPECT_EQ(peak_of["trainer::forward"], 32 * kMiB);
  EXPECT_EQ(peak_of["background"], 32 * kMiB);
  for (uint64_t i = 0; i < 4; ++i) {
    EXPECT_GE(peak_of["layer" + std::to_string(i)], (i + 1) * kMiB) << i;
    EXPECT_LE(peak_of["layer" + std::to_string(i)], 10 * kMiB) << i;
  }
  // The peak: the allocating thread's innermost range with its ancestors, not "background",
  // which another thread began later and still had open.
  EXPECT_EQ(d["peak"]["allocated_bytes"].get<uint64_t>(), 32 * kMiB);
  EXPECT_EQ(d["peak"]["phase"], "attention");
  EXPECT_EQ(d["peak"]["phase_path"], json::array({"trainer::forward", "attention"}));
  EXPECT_EQ(d["peak"]["phase_tid"].get<uint32_t>(), p.tids.at("main"));

  // Marks are instant markers with their thread.
  ASSERT_EQ(d["marks"].size(), 2u) << d.dump();
  EXPECT_EQ(d["marks"][0]["name"], "checkpoint");
  EXPECT_EQ(d["marks"][1]["name"], "trainer::epoch-end");
  for (const auto& m : d["marks"]) EXPECT_EQ(m["tid"].get<uint32_t>(), p.tids.at("main"));
  EXPECT_LE(d["marks"][0]["t_ns"].get<int64_t>(), d["marks"][1]["t_ns"].get<int64_t>());

  // Perfetto: push ranges nest on their own thread's track, markers are instants there, the
  // start/end range stays on the process's phase track.
  auto pf = gpumem::test::sh(std::string(GPUMEM_CLI) + " report " + trace() + " --perfetto " +
                             (dir_ / "p.json"));
  ASSERT_EQ(pf.status, 0) << pf.out;
  std::ifstream pf_in(dir_ / "p.json");
  const json pj = json::parse(pf_in);
  const json& events = pj.is_object() ? pj["traceEvents"] : pj;
  std::map<std::string, std::vector<uint32_t>> track_of;  // "X name" / "i name" -> tids
  for (const auto& e : events)
    if (e.value("cat", "") == "phase" || e.value("cat", "") == "mark")
      track_of[e["ph"].get<std::string>() + " " + e["name"].get<std::string>()].push_back(
          e["tid"].get<uint32_t>());
  EXPECT_EQ(track_of["X attention"], std::vector<uint32_t>{p.tids.at("main")});
  EXPECT_EQ(track_of["X layer3"], std::vector<uint32_t>{p.tids.at("worker3")});
  EXPECT_EQ(track_of["X step"].size(), 4u);
  EXPECT_EQ(track_of["X load"], std::vector<uint32_t>{1u});  // the first phase track
  EXPECT_EQ(track_of["i checkpoint"], std::vector<uint32_t>{p.tids.at("main")});

  // The HTML page lays the ranges out in one strip per thread (docs/report-html.md): the
  // process-wide "load" first, then the 7 threads.
  auto html = gpumem::test::sh(std::string(GPUMEM_CLI) + " report " + trace() + " --html " +
                               (dir_ / "r.html"));
  ASSERT_EQ(html.status, 0) << html.out;
  std::ifstream page_in(dir_ / "r.html");
  const std::string page((std::istreambuf_iterator<char>(page_in)), {});
  const size_t lanes = page.find("\"lanes\":[{\"label\":\"process\",\"tid\":null}");
  EXPECT_NE(lanes, std::string::npos);
  for (const auto& [name, tid] : p.tids) {
    if (name == "ender") continue;  // it only ends "load": no range of its own
    EXPECT_NE(page.find("{\"label\":\"thread " + std::to_string(tid) +
                            "\",\"tid\":" + std::to_string(tid) + "}",
                        lanes),
              std::string::npos)
        << name;
  }
  EXPECT_EQ(page.find("\"label\":\"thread " + std::to_string(p.tids.at("ender")) + "\""),
            std::string::npos);

  auto text = gpumem::test::sh(std::string(GPUMEM_CLI) + " report " + trace() + " --text");
  EXPECT_NE(text.out.find("peak allocated: 32.00 MiB at"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(" in phase \"attention\" (trainer::forward > attention, thread " +
                          std::to_string(p.tids.at("main")) + ")\n"),
            std::string::npos)
      << text.out;
}

// Null names, unreadable attributes, pops without pushes, null batches, unknown region types and
// pushes past the 128 levels gpumem keeps: the program runs on (it checks NVTX's answers itself),
// and the trace holds exactly the ranges it could name.
TEST_F(Nvtx, MisuseNeverCrashesTheProgram) {
  auto out = run("", "bad");
  ASSERT_EQ(out.status, 0) << out.out;
  const Trace t = load(trace());
  std::map<std::string, int> seen;
  for (const Record& r : t.nvtx) ++seen[op_and_name(t, r)];
  EXPECT_EQ(seen["mark_begin "], 4);  // null ASCII, null wide, null and unreadable attributes
  EXPECT_EQ(seen["mark_end "], 4);
  EXPECT_EQ(seen["mark_begin deep"], 128);
  EXPECT_EQ(seen["mark_end deep"], 128);
  EXPECT_EQ(seen["mark "], 2);
  EXPECT_EQ(seen["mark \xe6\xad\xa5\xf0\x9f\x9a\x80"], 1);
  EXPECT_EQ(seen.size(), 6u);  // no heap or region record from null or unknown batches
}

// NVTX calls from a signal handler that interrupts gpumem's hooks or its NVTX callbacks: never a
// hang or a crash; such a push is dropped together with its pop, so every recorded range closes.
TEST_F(Nvtx, RangesFromSignalHandlersStayBalanced) {
  auto out = run("", "signal");
  ASSERT_EQ(out.status, 0) << out.out;
  const size_t at = out.out.find("ticks ");
  ASSERT_NE(at, std::string::npos) << out.out;
  const int ticks = std::stoi(out.out.substr(at + 6));
  EXPECT_GE(ticks, 50);
  const Trace t = load(trace());
  std::map<std::string, int> seen;
  for (const Record& r : t.nvtx) ++seen[op_and_name(t, r)];
  EXPECT_EQ(seen["mark_begin tick"], seen["mark_end tick"]);
  EXPECT_LE(seen["mark_begin tick"], ticks);
  EXPECT_EQ(seen["mark_begin pair"], seen["mark_end pair"]);
  EXPECT_GE(seen["mark_begin pair"], 2000);
}

TEST_F(Nvtx, AnInjectionTheUserSetIsLeftAloneAndSaidSo) {
  // Another tool owns NVTX's one injection slot: gpumem keeps out of it and says so.
  auto out = run("NVTX_INJECTION64_PATH=/nonexistent/libother-tool.so", "");
  ASSERT_EQ(out.status, 0) << out.out;
  EXPECT_NE(out.out.find("gpumem run: NVTX_INJECTION64_PATH is already set "
                         "(/nonexistent/libother-tool.so): NVTX ranges go to that tool and are not "
                         "recorded as phases; unset it to record them"),
            std::string::npos)
      << out.out;
  const Trace t = load(trace());
  EXPECT_TRUE(t.nvtx.empty()) << t.nvtx.size() << " NVTX records";
}

// The same through Python: NVTX's C API called with ctypes (as a Python binding does), ranges on
// Python threads, a named domain and a start/end range ended by another thread.
TEST_F(Nvtx, PythonThroughCtypesShowsUpTheSameWay) {
  auto which = gpumem::test::sh("command -v python3");
  if (which.status != 0) GTEST_SKIP() << "python3 is not installed";
  auto out =
      run("", NVTX_CTYPES_PY " " NVTX_EXPORT_LIBRARY " " GPUMEM_SIMCUDA_DIR "/libcudart.so.13",
          "python3");
  ASSERT_EQ(out.status, 0) << out.out;
  const Printed p = parse(out.out);
  ASSERT_EQ(p.tids.size(), 4u) << out.out;
  const Trace t = load(trace());
  std::map<uint32_t, std::vector<std::string>> by_thread;
  for (const Record& r : t.nvtx) by_thread[r.tid].push_back(op_and_name(t, r));
  for (int i = 0; i < 2; ++i) {
    const std::string layer = "py.layer" + std::to_string(i);
    EXPECT_EQ(by_thread[p.tids.at("worker" + std::to_string(i))],
              (std::vector<std::string>{"mark_begin py.step", "mark_begin " + layer,
                                        "mark_end " + layer, "mark_end py.step"}));
  }
  EXPECT_EQ(by_thread[p.tids.at("main")],
            (std::vector<std::string>{"mark_begin py.load", "mark_begin py::infer",
                                      "mark_end py::infer", "mark py.done"}));
  EXPECT_EQ(by_thread[p.tids.at("ender")], (std::vector<std::string>{"mark_end py.load"}));
  EXPECT_EQ(by_thread.size(), 4u);

  auto rep = gpumem::test::sh(std::string(GPUMEM_CLI) + " report " + trace() + " --json " +
                              (dir_ / "r.json"));
  ASSERT_EQ(rep.status, 0) << rep.out;
  std::ifstream in(dir_ / "r.json");
  const json r = json::parse(in);
  const json& d = r["devices"][0];
  std::multiset<std::string> phases;
  for (const auto& ph : d["phases"]) phases.insert(ph["name"].get<std::string>());
  EXPECT_EQ(phases, (std::multiset<std::string>{"py.step", "py.step", "py.layer0", "py.layer1",
                                                "py.load", "py::infer"}));
  EXPECT_EQ(d["peak"]["allocated_bytes"].get<uint64_t>(), 8 * kMiB);
  EXPECT_EQ(d["peak"]["phase"], "py::infer");
  EXPECT_EQ(d["peak"]["phase_path"], json::array({"py::infer"}));
  EXPECT_EQ(d["peak"]["phase_tid"].get<uint32_t>(), p.tids.at("main"));
}

}  // namespace
