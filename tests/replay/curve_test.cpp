// Replay equivalence, change by change (issue 19): a program recorded under `gpumem run --pool P`
// on simcuda and `gpumem replay`'s pool P over the same trace change reserved bytes the same way:
// the same segments reserved and released, in the same order, during the same allocation, free or
// gpumem_empty_cache, so the whole reserved curve agrees, not only its peak. For the expandable
// pool the segments are its granules, compared by their offset into its address range too (both
// map the same granules); the growth pool's segments are compared by size (the two devices place
// them at unrelated addresses).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gpumem/replay/replay.h"
#include "gpumem/trace/format.h"
#include "gpumem/trace/reader.h"
#include "scratch.h"
#include "shell.h"

namespace gpumem::replay {
namespace {

using trace::Op;

// One change of reserved bytes: the record of the step (allocation, free, empty-cache) it
// happened in, and the segment.
struct Change {
  uint64_t step_record = 0;
  bool reserve = false;
  uint64_t address = 0;
  uint64_t bytes = 0;
};

struct Curve {
  std::vector<Change> changes;
  // Addresses as offsets from the lowest segment's (the range's start for the expandable pool).
  // Without addresses, the changes of one step in order of size: a pool that gives back several
  // segments in one call walks them in address order, which differs between the two devices.
  void relative(bool keep_addresses) {
    uint64_t base = UINT64_MAX;
    for (const Change& c : changes) base = std::min(base, c.address);
    for (Change& c : changes) c.address = keep_addresses ? c.address - base : 0;
    if (keep_addresses) return;
    for (auto from = changes.begin(); from != changes.end();) {
      auto to = std::find_if(from, changes.end(),
                             [&](const Change& c) { return c.step_record != from->step_record; });
      std::sort(from, to, [](const Change& x, const Change& y) {
        return std::pair(x.reserve, x.bytes) < std::pair(y.reserve, y.bytes);
      });
      from = to;
    }
  }
  uint64_t peak() const {
    uint64_t now = 0, top = 0;
    for (const Change& c : changes) {
      now = c.reserve ? now + c.bytes : now - c.bytes;
      top = std::max(top, now);
    }
    return top;
  }
};

std::string describe(const Change& c) {
  return "record " + std::to_string(c.step_record) + (c.reserve ? " reserve " : " release ") +
         std::to_string(c.bytes) + " B at +" + std::to_string(c.address);
}

// The recorded curve: device 0's segment records, each assigned to the step whose record follows
// it (the preload writes a call's record when the call returns, after the segments it changed).
Curve recorded_curve(const std::string& path, const std::set<uint64_t>& step_records) {
  Curve curve;
  std::string error;
  auto reader = trace::Reader::open(path, &error);
  EXPECT_NE(reader, nullptr) << error;
  if (!reader) return curve;
  std::vector<size_t> waiting;  // changes not yet assigned to a step
  trace::Event ev;
  for (uint64_t index = 0; reader->next(&ev); ++index) {
    const auto op = static_cast<Op>(ev.rec.op);
    if (ev.rec.device == 0 && (op == Op::segment_reserve || op == Op::segment_release)) {
      waiting.push_back(curve.changes.size());
      curve.changes.push_back({0, op == Op::segment_reserve, ev.rec.address, ev.rec.bytes});
    } else if (step_records.count(index) != 0) {
      for (size_t i : waiting) curve.changes[i].step_record = index;
      waiting.clear();
    }
  }
  for (size_t i : waiting) curve.changes[i].step_record = UINT64_MAX;  // after the last step
  return curve;
}

// The replayed curve: the segments the replayed pool reserves and releases, each in its step.
class CurveObserver : public StepObserver {
 public:
  void on_step(const Step& step) override { step_ = step.record; }
  void on_segment_reserve(int, void* base, uint64_t bytes) override {
    curve.changes.push_back({step_, true, reinterpret_cast<uint64_t>(base), bytes});
  }
  void on_segment_release(int, void* base, uint64_t bytes) override {
    curve.changes.push_back({step_, false, reinterpret_cast<uint64_t>(base), bytes});
  }
  Curve curve;

 private:
  uint64_t step_ = 0;
};

// Records `program` under `gpumem run --pool <pool>`, replays its trace under the same pool, and
// compares the two curves change by change. Returns the recorded curve's peak.
uint64_t compare_curves(const std::string& pool, const std::string& program, bool addresses,
                        const std::string& limit = "") {
  gpumem::test::ScratchDir dir("gpumem-curve");
  const std::string trace_path = dir.path() + "/c.trace";
  const gpumem::test::Output run =
      gpumem::test::sh("SIMCUDA_ALLOC_LATENCY_US=0 SIMCUDA_FREE_LATENCY_US=0 " GPUMEM_CLI
                       " run --device sim --pool " +
                       pool + (limit.empty() ? "" : " --limit " + limit) + " --trace " +
                       trace_path + " -- " + program);
  EXPECT_EQ(run.status, 0) << run.out;
  std::string error;
  const auto loaded = load_program(trace_path, &error);
  EXPECT_NE(loaded, nullptr) << error;
  if (!loaded || loaded->devices.empty()) return 0;
  const DeviceProgram& device = loaded->devices[0];
  std::set<uint64_t> steps;
  for (const Step& s : device.steps) steps.insert(s.record);

  Curve recorded = recorded_curve(trace_path, steps);
  CurveObserver observer;
  ReplayOptions options;
  options.policy = pool == "expandable" ? Policy::expandable : Policy::growth;
  options.observer = &observer;
  options.limit = device.recorded_limit_bytes;  // the cap it ran under (0: none)
  const DeviceRun replayed = replay_device(*loaded, device, options);
  // A request refused in the run is refused in the replay, which stops there, as the run did.
  EXPECT_EQ(replayed.fits, device.recorded_failures == 0);
  recorded.relative(addresses);
  observer.curve.relative(addresses);

  const std::vector<Change>& a = recorded.changes;
  const std::vector<Change>& b = observer.curve.changes;
  EXPECT_GT(a.size(), 0u);
  size_t same = 0;
  while (same < a.size() && same < b.size() && a[same].step_record == b[same].step_record &&
         a[same].reserve == b[same].reserve && a[same].address == b[same].address &&
         a[same].bytes == b[same].bytes)
    ++same;
  EXPECT_EQ(same, a.size()) << "first difference at change " << same << " of " << a.size()
                            << ": recorded "
                            << (same < a.size() ? describe(a[same]) : std::string("nothing"))
                            << ", replayed "
                            << (same < b.size() ? describe(b[same]) : std::string("nothing"));
  EXPECT_EQ(a.size(), b.size());
  // Replay's peak reserved counts what no pool serves too; with nothing of that, it is the curve's.
  if (device.unpooled_allocs == 0) {
    EXPECT_EQ(replayed.peak_reserved_bytes, recorded.peak());
  }
  return recorded.peak();
}

const std::string kFragmenter = GPUMEM_FRAGMENTER;
const std::string kTrainer = std::string(GPUMEM_TRAIN) +
                             " --epochs 1 --samples 512 --inputs 128 --layers 2 --hidden 512"
                             " --classes 10";

// Eight 3 MiB blocks, every other one freed, then 12 MiB: 4 granules unmapped inside the holes
// before 6 are mapped for the request (28 MiB at the peak, docs/policies.md).
TEST(ReplayCurve, ExpandableFragmenterHolesOfThreeMiB) {
  EXPECT_EQ(compare_curves("expandable", kFragmenter + " 8 3MiB", true), 28u << 20);
}

// Under a 24 MiB cap the 12 MiB request is refused: after the 4 free granules are unmapped, 4 of
// the 6 it needs are mapped (24 MiB) before the cap refuses the fifth, and those 4 are unmapped
// again (all or none). The refusal's curve, transient granules included, replays the same.
TEST(ReplayCurve, ExpandableFragmenterRefusedUnderACap) {
  EXPECT_EQ(compare_curves("expandable", kFragmenter + " 8 3MiB", true, "24MiB"), 24u << 20);
}

// Holes of 1 MiB hold no whole granule: nothing is unmapped, 16 granules are mapped beside them.
TEST(ReplayCurve, ExpandableFragmenterHolesOfOneMiB) {
  EXPECT_EQ(compare_curves("expandable", kFragmenter + " 64 1MiB", true), 96u << 20);
}

TEST(ReplayCurve, ExpandableDemoTrainer) {
  EXPECT_EQ(compare_curves("expandable", kTrainer, true), 6u << 20);
}

// Mixed sizes of 512 B to 40 MiB, stream-ordered frees, gpumem_empty_cache, and stream-ordered and
// pitched allocations, which neither the preload's pool nor replay's serves.
TEST(ReplayCurve, ExpandableMixedSizesStreamsAndEmptyCache) {
  EXPECT_GT(compare_curves("expandable", GPUMEM_CURVE_PROG, true), 0u);
}

TEST(ReplayCurve, GrowthMixedSizesStreamsAndEmptyCache) {
  EXPECT_GT(compare_curves("growth", GPUMEM_CURVE_PROG, false), 0u);
}

TEST(ReplayCurve, GrowthDemoTrainer) {
  EXPECT_EQ(compare_curves("growth", kTrainer, false), 6u << 20);
}

}  // namespace
}  // namespace gpumem::replay
