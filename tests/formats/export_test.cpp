// What `trace_to_snapshot` fills from a trace: frames (Python when recorded, native otherwise),
// phases as user_metadata, OOM entries, the end state's blocks; read back by Python's pickle.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "gpumem/formats/pickle.h"
#include "support.h"
#include "trace_file.h"

namespace gpumem::formats {
namespace {

using formats_test::shell;
using formats_test::temp_file;
using formats_test::write_all;

// Python prints `expression` of the snapshot d.
std::string python_view(const std::string& pickle, const std::string& expression) {
  const std::string path = temp_file("view.pickle");
  write_all(path, pickle);
  int status = 0;
  const std::string out = shell(
      "python3 -c \"import pickle,sys; d = pickle.load(open(sys.argv[1], "
      "'rb')); print(" +
          expression + ")\" " + path + " 2>&1",
      &status);
  ::unlink(path.c_str());
  EXPECT_EQ(status, 0) << out;
  return out;
}

std::string export_image(TraceImage& image, const std::string& name) {
  const std::string path = temp_file(name + ".trace");
  ::unlink(path.c_str());
  std::string error, pickle;
  EXPECT_TRUE(image.write(path, &error)) << error;
  EXPECT_TRUE(trace_to_snapshot(path, &pickle, &error)) << error;
  ::unlink(path.c_str());
  return pickle;
}

TEST(Export, PythonFramesPhasesOomAndEndState) {
  TraceImage image;
  image.set_device(0, 1 << 30, "test device");
  const uint64_t base = image.header().clock_base_ns;
  image.header().start_unix_ns = 1'700'000'000'000'000'000ull;
  const uint32_t site = image.intern_python_stack({"forward (model.py:12)", "main (train.py:3)"});
  image.add(trace::Op::mark_begin, base + 1000, -1).aux = image.intern_string("step 1");
  trace::Record& a = image.add(trace::Op::alloc, base + 2000, 0);
  a.address = 0x7000;
  a.bytes = 4096;
  a.stream = 0x30;
  a.site = site;
  trace::Record& f = image.add(trace::Op::alloc_failed, base + 3000, 0);
  f.bytes = uint64_t{2} << 30;
  f.aux = 4096;
  f.site = site;
  image.add(trace::Op::mark_end, base + 4000, -1).aux = image.intern_string("step 1");
  trace::Record& b = image.add(trace::Op::alloc, base + 5000, 0);
  b.address = 0x9000;
  b.bytes = 100;
  image.add(trace::Op::free, base + 6000, 0).address = 0x9000;
  const std::string pickle = export_image(image, "frames");
  EXPECT_EQ(python_view(pickle,
                        "[(e['action'], e['addr'], e['size'], e['stream'], e['time_us'], "
                        "e.get('user_metadata'), e.get('device_free')) for e in "
                        "d['device_traces'][0]]"),
            "[('segment_alloc', 28672, 4096, 48, 1700000000000002, 'step 1', None), "
            "('alloc', 28672, 4096, 48, 1700000000000002, 'step 1', None), "
            "('oom', 0, 2147483648, 0, 1700000000000003, None, 1073737728), "
            "('segment_alloc', 36864, 100, 0, 1700000000000005, None, None), "
            "('alloc', 36864, 100, 0, 1700000000000005, None, None), "
            "('free_requested', 36864, 100, 0, 1700000000000006, None, None), "
            "('free_completed', 36864, 100, 0, 1700000000000006, None, None), "
            "('segment_free', 36864, 100, 0, 1700000000000006, None, None)]\n");
  EXPECT_EQ(python_view(pickle, "d['device_traces'][0][1]['frames']"),
            "[{'filename': 'model.py', 'line': 12, 'name': 'forward'}, "
            "{'filename': 'train.py', 'line': 3, 'name': 'main'}]\n");
  EXPECT_EQ(python_view(pickle,
                        "[(s['address'], s['total_size'], s['allocated_size'], "
                        "s['segment_type'], [(b['address'], b['size'], b['state']) for b "
                        "in s['blocks']]) for s in d['segments']]"),
            "[(28672, 4096, 4096, 'small', [(28672, 4096, 'active_allocated')])]\n");
}

// Native stacks (GPUMEM_STACKS=1): frames from "function (module+0xoff)" symbols.
TEST(Export, NativeFramesFromSymbols) {
  const uint64_t pcs[2] = {0x401000, 0x402000};
  const std::string path = temp_file("native.trace");
  {
    replay_test::TraceFile u(1 << 30);
    u.string(1, "train_step (libtrain.so+0x1a2b)");
    trace::Record& h = u.add(trace::Op::stack, 1, sizeof pcs, -1, trace::Api::gpumem);
    h.aux = 5;
    trace::Record& payload = u.add(trace::Op::invalid, 0, 0);
    std::memset(&payload, 0, sizeof payload);
    std::memcpy(&payload, pcs, sizeof pcs);
    payload.commit = trace::kContinuation;
    u.add(trace::Op::symbol, 0x401000, 0, -1, trace::Api::gpumem).aux = 1;
    u.add(trace::Op::alloc, 0x5000, 64).site = 5;
    u.write(path);
  }
  std::string pickle, error;
  ASSERT_TRUE(trace_to_snapshot(path, &pickle, &error)) << error;
  ::unlink(path.c_str());
  EXPECT_EQ(python_view(pickle, "d['device_traces'][0][1]['frames']"),
            "[{'filename': 'libtrain.so+0x1a2b', 'line': 0, 'name': 'train_step'}, "
            "{'filename': '?"
            "?', 'line': 0, 'name': '0x402000'}]\n");
}

// Each device's entries as (action, user_metadata or "-"), read back with the pickle reader;
// segments left out (the pool segment the tests below reserve first, for their pooled blocks).
std::vector<std::vector<std::pair<std::string, std::string>>> phases_of(const std::string& pickle) {
  PickleDocument doc;
  std::string error;
  EXPECT_TRUE(read_pickle(pickle, &doc, &error)) << error;
  std::vector<std::vector<std::pair<std::string, std::string>>> out;
  const PickleNode* traces = doc.find(doc.root(), "device_traces");
  if (traces == nullptr) return out;
  for (uint32_t list : traces->items) {
    out.emplace_back();
    for (uint32_t e : doc.at(list).items) {
      if (doc.find(doc.at(e), "action")->string.rfind("segment_", 0) == 0) continue;
      const PickleNode* phase = doc.find(doc.at(e), "user_metadata");
      out.back().emplace_back(doc.find(doc.at(e), "action")->string,
                              phase != nullptr ? phase->string : "-");
    }
  }
  return out;
}

// user_metadata is the innermost open phase, an end closing the most recent open phase of its
// name (or nothing), on every device: random marks over a few names (one an id with no string,
// which reads as ""), checked against that rule applied the simple way.
TEST(Export, PhaseOfEachEntryIsTheInnermostOpenOne) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    TraceImage image;
    image.set_device(0, 1 << 30, "d0");
    image.set_device(1, 1 << 30, "d1");
    const uint64_t base = image.header().clock_base_ns;
    const std::vector<std::string> names = {"fwd", "bwd", "step", "fwd2"};
    std::vector<uint64_t> ids;
    for (const std::string& n : names) ids.push_back(image.intern_string(n));
    ids.push_back(999);  // no string: the name ""
    for (int device = 0; device < 2; ++device) {  // the pool segment of the blocks below
      trace::Record& seg = image.add(trace::Op::segment_reserve, base, device);
      seg.address = 0x10000;
      seg.bytes = 1 << 20;
    }
    std::vector<std::string> open;
    std::vector<std::vector<std::string>> want(2);
    uint64_t address = 0x10000;
    for (int i = 0; i < 400; ++i) {
      const uint64_t t = base + 1000 * static_cast<uint64_t>(i + 1);
      const size_t pick = rng() % ids.size();
      const std::string name = pick < names.size() ? names[pick] : "";
      switch (rng() % 4) {
        case 0:
          image.add(trace::Op::mark_begin, t, -1).aux = ids[pick];
          open.push_back(name);
          break;
        case 1: {
          image.add(trace::Op::mark_end, t, -1).aux = ids[pick];
          auto it = std::find(open.rbegin(), open.rend(), name);
          if (it != open.rend()) open.erase(std::next(it).base());
          break;
        }
        default: {
          const int device = static_cast<int>(rng() % 2);
          trace::Record& a = image.add(trace::Op::alloc, t, device);
          a.address = address;
          a.bytes = 256;
          a.flags = trace::kFlagPooled;
          address += 256;
          const std::string phase = open.empty() || open.back().empty() ? "-" : open.back();
          want[static_cast<size_t>(device)].push_back(phase);
        }
      }
    }
    const auto got = phases_of(export_image(image, "phases"));
    ASSERT_EQ(got.size(), 2u);
    for (size_t d = 0; d < 2; ++d) {
      ASSERT_EQ(got[d].size(), want[d].size()) << "round " << round << " device " << d;
      for (size_t i = 0; i < want[d].size(); ++i) {
        EXPECT_EQ(got[d][i].first, "alloc");
        EXPECT_EQ(got[d][i].second, want[d][i])
            << "round " << round << " device " << d << " entry " << i;
      }
    }
  }
}

// Phases begun and never ended (a trace cut by a crash, a program that marks begin without end)
// pile up; each end then looked through all of them and erased from the middle, so this trace
// (100,000 begins of one 8 KB name, 100,000 ends of another, then ends of the first) took
// 10^10 comparisons of 8 KB, hours; linear in the marks it takes milliseconds.
TEST(Export, ManyUnclosedPhasesExportInLinearTime) {
  constexpr int kMarks = 100'000;
  TraceImage image;
  image.set_device(0, 1 << 30, "d0");
  const uint64_t base = image.header().clock_base_ns;
  const std::string open_name = std::string(8191, 'p') + "1", other = std::string(8191, 'p') + "2";
  const uint64_t open_id = image.intern_string(open_name), other_id = image.intern_string(other);
  uint64_t t = base;
  trace::Record& seg = image.add(trace::Op::segment_reserve, t, 0);  // the blocks' pool segment
  seg.address = 0x10000;
  seg.bytes = 1 << 20;
  for (int i = 0; i < kMarks; ++i) image.add(trace::Op::mark_begin, ++t, -1).aux = open_id;
  image.add(trace::Op::mark_begin, ++t, -1).aux = other_id;
  image.add(trace::Op::mark_begin, ++t, -1).aux = open_id;
  for (int i = 0; i < kMarks; ++i) image.add(trace::Op::mark_end, ++t, -1).aux = other_id;
  image.add(trace::Op::mark_end, ++t, -1).aux = open_id;  // the innermost: "other" ended already
  trace::Record& a = image.add(trace::Op::alloc, ++t, 0);
  a.address = 0x10000;
  a.bytes = 512;
  a.flags = trace::kFlagPooled;
  image.add(trace::Op::mark_end, ++t, -1).aux = 12345;  // no such string, no such phase
  trace::Record& b = image.add(trace::Op::alloc, ++t, 0);
  b.address = 0x20000;
  b.bytes = 512;
  b.flags = trace::kFlagPooled;
  const auto got = phases_of(export_image(image, "unclosed"));
  ASSERT_EQ(got.size(), 1u);
  ASSERT_EQ(got[0].size(), 2u);
  EXPECT_EQ(got[0][0].second, open_name);
  EXPECT_EQ(got[0][1].second, open_name);
}

}  // namespace
}  // namespace gpumem::formats
