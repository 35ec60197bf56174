// Snapshots in the shape PyTorch writes them (the dict torch.cuda.memory._snapshot() documents),
// built with Python's own pickle, read into traces and analysed to exact numbers.
#include <gtest/gtest.h>

#include "gpumem/formats/pickle.h"
#include "support.h"
#include "units.h"

namespace gpumem::formats {
namespace {

using formats_test::analyze;
using formats_test::python_pickle;

// A caching-allocator history: one 2 MiB segment, a 1 MiB block from train.py:42 kept, a 512 KiB
// block freed (free_requested then free_completed), an OOM, a snapshot marker.
const char* kPooled =
    "import pickle,sys\n"
    "B = 0x7f0000000000\n"
    "fwd = [{'filename': 'train.py', 'line': 42, 'name': 'forward'},\n"
    "       {'filename': 'train.py', 'line': 90, 'name': 'main'}]\n"
    "tmp = [{'filename': 'model.py', 'line': 7, 'name': 'attn'}]\n"
    "T = 1700000000000000\n"
    "traces = [\n"
    " {'action': 'segment_alloc', 'addr': B, 'size': 2<<20, 'stream': 0, 'time_us': T, 'frames': "
    "fwd},\n"
    " {'action': 'alloc', 'addr': B, 'size': 1<<20, 'stream': 0, 'time_us': T+1, 'frames': fwd},\n"
    " {'action': 'alloc', 'addr': B+(1<<20), 'size': 512<<10, 'stream': 7, 'time_us': T+2, "
    "'frames': tmp},\n"
    " {'action': 'free_requested', 'addr': B+(1<<20), 'size': 512<<10, 'stream': 7, 'time_us': "
    "T+3, 'frames': tmp},\n"
    " {'action': 'free_completed', 'addr': B+(1<<20), 'size': 512<<10, 'stream': 7, 'time_us': "
    "T+4, 'frames': tmp},\n"
    " {'action': 'oom', 'addr': 0, 'size': 8<<20, 'stream': 0, 'time_us': T+5, 'device_free': 0, "
    "'frames': tmp},\n"
    " {'action': 'snapshot', 'addr': 0, 'size': 0, 'stream': 0, 'time_us': T+6, 'frames': []},\n"
    "]\n"
    "seg = {'device': 0, 'address': B, 'total_size': 2<<20, 'allocated_size': 1<<20,\n"
    "       'active_size': 1<<20, 'requested_size': 1000000, 'stream': 0, 'segment_type': "
    "'large',\n"
    "       'segment_pool_id': (0, 0), 'is_expandable': False, 'frames': fwd,\n"
    "       'blocks': [{'address': B, 'size': 1<<20, 'requested_size': 1000000,\n"
    "                   'state': 'active_allocated', 'frames': fwd},\n"
    "                  {'address': B+(1<<20), 'size': 1<<20, 'requested_size': 0,\n"
    "                   'state': 'inactive', 'frames': []}]}\n"
    "d = {'segments': [seg], 'device_traces': [traces],\n"
    "     'allocator_settings': {'PYTORCH_CUDA_ALLOC_CONF': None}}\n"
    "pickle.dump(d, open(sys.argv[1], 'wb'), protocol=PROTO)\n";

std::string fixture(const char* program, int protocol) {
  std::string p = program;
  p.replace(p.find("PROTO"), 5, std::to_string(protocol));
  return python_pickle("fixture" + std::to_string(protocol), p);
}

TEST(Snapshot, PythonWrittenSnapshotReadsToExactNumbers) {
  for (int protocol : {2, 4, 5}) {
    SCOPED_TRACE(protocol);
    TraceImage image;
    std::string error;
    ASSERT_TRUE(snapshot_to_trace(fixture(kPooled, protocol), "fixture.pickle", &image, &error))
        << error;
    EXPECT_STREQ(image.header().pool, "growth");
    const analyzer::Report r = analyze(image, "fixture");
    ASSERT_EQ(r.devices.size(), 1u);
    const analyzer::DeviceReport& d = r.devices[0];
    EXPECT_EQ(d.peak.allocated_bytes, kMiB + kMiB / 2);
    EXPECT_EQ(d.peak.reserved_bytes, 2 * kMiB);
    EXPECT_EQ(d.peak.time_ns, 2000);  // time_us T+2, from the first entry at T
    EXPECT_EQ(d.final.allocated_bytes, kMiB);
    EXPECT_EQ(d.final.reserved_bytes, 2 * kMiB);
    EXPECT_EQ(d.final.leaked_allocations, 1u);
    EXPECT_EQ(d.final.leaked_bytes, kMiB);
    EXPECT_EQ(d.counts.alloc, 2u);
    EXPECT_EQ(d.counts.free, 1u);
    EXPECT_EQ(d.counts.alloc_failed, 1u);
    EXPECT_EQ(d.counts.segment_reserve, 1u);
    // Frames became Python frames: rows by the innermost frame's source line.
    ASSERT_EQ(d.peak.grouped_by, "python_line");
    ASSERT_EQ(d.peak.live_at_peak.size(), 2u);
    EXPECT_EQ(d.peak.live_at_peak[0].python_line, "forward (train.py:42)");
    EXPECT_EQ(d.peak.live_at_peak[0].bytes, kMiB);
    EXPECT_EQ(d.peak.live_at_peak[0].frames,
              (std::vector<std::string>{"forward (train.py:42)", "main (train.py:90)"}));
    EXPECT_EQ(d.peak.live_at_peak[1].python_line, "attn (model.py:7)");
    EXPECT_EQ(d.peak.live_at_peak[1].bytes, kMiB / 2);
    ASSERT_EQ(d.leaks.size(), 1u);
    EXPECT_EQ(d.leaks[0].python_line, "forward (train.py:42)");
  }
}

// A history that starts late (a ring buffer): the end state's segment and block, and a block
// freed without its alloc in the history, existed before the first entry.
// Every segment one allocation at its start, as gpumem writes a trace without a pool, is read as
// plain allocations only when each segment's frames are its allocation's: a pool's segment
// written with no frames before its one block (a growth pool's trace exports so) stays a pool.
// Read as unpooled, the block's frames became the segment's, and every export and import of
// the snapshot changed it (found by fuzz_roundtrip).
TEST(Snapshot, OneBlockSegmentsAreUnpooledOnlyWhenTheirFramesAreTheBlocks) {
  const char* program =
      "import pickle,sys\n"
      "B = 0x7f0000000000\n"
      "fwd = [{'filename': 'train.py', 'line': 42, 'name': 'forward'}]\n"
      "SEG_FRAMES = SEGMENT\n"
      "traces = [\n"
      " {'action': 'segment_alloc', 'addr': B, 'size': 1<<20, 'stream': 0, 'time_us': 1, 'frames': "
      "SEG_FRAMES},\n"
      " {'action': 'alloc', 'addr': B, 'size': 1<<20, 'stream': 0, 'time_us': 1, 'frames': fwd}]\n"
      "seg = {'device': 0, 'address': B, 'total_size': 1<<20, 'allocated_size': 1<<20,\n"
      "       'active_size': 1<<20, 'requested_size': 1<<20, 'stream': 0, 'segment_type': "
      "'small',\n"
      "       'segment_pool_id': (0, 0), 'is_expandable': False, 'frames': SEG_FRAMES,\n"
      "       'blocks': [{'address': B, 'size': 1<<20, 'requested_size': 1<<20,\n"
      "                   'state': 'active_allocated', 'frames': fwd}]}\n"
      "pickle.dump({'segments': [seg], 'device_traces': [traces]}, open(sys.argv[1], 'wb'))\n";
  for (const char* frames : {"fwd", "[]"}) {
    SCOPED_TRACE(frames);
    std::string p = program;
    p.replace(p.find("SEGMENT"), 7, frames);
    TraceImage image;
    std::string error;
    ASSERT_TRUE(snapshot_to_trace(
        python_pickle(std::string("one-block-") + (frames[0] == 'f' ? "a" : "b"), p),
        "one-block.pickle", &image, &error))
        << error;
    EXPECT_STREQ(image.header().pool, frames[0] == 'f' ? "none" : "growth");
    const analyzer::Report r = analyze(image, "one-block");
    ASSERT_EQ(r.devices.size(), 1u);
    EXPECT_EQ(r.devices[0].final.allocated_bytes, kMiB);
    EXPECT_EQ(r.devices[0].final.reserved_bytes, kMiB);
  }
}

TEST(Snapshot, StateBeforeTheFirstEntryComesFromTheEndStateAndUnmatchedFrees) {
  const std::string bytes = python_pickle(
      "ring",
      "import pickle,sys\n"
      "B = 0x7f0000000000\n"
      "T = 1700000000000000\n"
      "traces = [\n"
      " {'action': 'free_completed', 'addr': B+(4<<20), 'size': 1<<20, 'stream': 0, 'time_us': T, "
      "'frames': []},\n"
      " {'action': 'alloc', 'addr': B+(5<<20), 'size': 3<<20, 'stream': 0, 'time_us': T+1, "
      "'frames': []},\n"
      " {'action': 'free_completed', 'addr': B+(5<<20), 'size': 3<<20, 'stream': 0, 'time_us': "
      "T+2, 'frames': []},\n"
      "]\n"
      "seg = {'device': 0, 'address': B, 'total_size': 20<<20, 'stream': 0,\n"
      "       'blocks': [{'address': B, 'size': 2<<20, 'state': 'active_allocated', 'frames': "
      "[]},\n"
      "                  {'address': B+(2<<20), 'size': 18<<20, 'state': 'inactive', 'frames': "
      "[]}]}\n"
      "pickle.dump({'segments': [seg], 'device_traces': [traces]}, open(sys.argv[1], 'wb'))\n");
  TraceImage image;
  std::string error;
  ASSERT_TRUE(snapshot_to_trace(bytes, "ring.pickle", &image, &error)) << error;
  const analyzer::Report r = analyze(image, "ring");
  ASSERT_EQ(r.devices.size(), 1u);
  const analyzer::DeviceReport& d = r.devices[0];
  // 2 MiB (end state) + 1 MiB (freed first) before; then 2 MiB + 3 MiB at T+1.
  EXPECT_EQ(d.peak.allocated_bytes, 5 * kMiB);
  EXPECT_EQ(d.peak.reserved_bytes, 20 * kMiB);
  EXPECT_EQ(d.final.allocated_bytes, 2 * kMiB);
  EXPECT_EQ(d.counts.alloc, 3u);
  EXPECT_EQ(d.counts.free, 2u);
}

TEST(Snapshot, WrongShapesSayWhereAndWhat) {
  auto error_of = [](const std::string& program) {
    TraceImage image;
    std::string error;
    EXPECT_FALSE(
        snapshot_to_trace(python_pickle("shape", "import pickle,sys\nd = " + program +
                                                     "\npickle.dump(d, open(sys.argv[1], 'wb'))\n"),
                          "x.pickle", &image, &error));
    return error;
  };
  EXPECT_EQ(error_of("[1, 2]"),
            "the top level: is not a dict; a memory snapshot is the dict "
            "torch.cuda.memory._snapshot() returns");
  EXPECT_EQ(error_of("{'weights': 1}"),
            "the top level: has no 'segments' list, so it is not a PyTorch memory snapshot "
            "(torch.cuda.memory._dump_snapshot writes one)");
  EXPECT_EQ(error_of("{'segments': [], 'device_traces': [[{'action': 'alloc', 'addr': -1, "
                     "'size': 1}]]}"),
            "device_traces[0][0]: 'addr' is missing or not a non-negative integer");
  EXPECT_EQ(error_of("{'segments': [dict((str(i), i) for i in range(100))]}"),
            "segments[0]: has 100 keys; a snapshot's entries have a few");
  EXPECT_EQ(error_of("{'segments': [], 'device_traces': [[7]]}"),
            "device_traces[0][0]: is not a dict");
  EXPECT_EQ(error_of("{'segments': [{'address': 1}]}"),
            "segments[0]: 'total_size' is missing or not a non-negative integer");
}

// A size above a GPU's address space (2^49) is damage, and two of them overflowed the report's
// sums (peak 8192 PiB, leaked 100 B in 3 allocations); a failed request may ask for anything.
TEST(Snapshot, SizesNoGpuCanAddressAreRefusedButAnOomMayAskAnything) {
  auto error_of = [](const std::string& program) {
    TraceImage image;
    std::string error;
    EXPECT_FALSE(
        snapshot_to_trace(python_pickle("size", "import pickle,sys\nd = " + program +
                                                    "\npickle.dump(d, open(sys.argv[1], 'wb'))\n"),
                          "x.pickle", &image, &error));
    return error;
  };
  EXPECT_EQ(error_of("{'segments': [], 'device_traces': [[{'action': 'alloc', 'addr': 16, "
                     "'size': 2**63}]]}"),
            "device_traces[0][0]: size 9223372036854775808 is more than a GPU can address "
            "(562949953421312); the file is damaged");
  EXPECT_EQ(error_of("{'segments': [], 'device_traces': [[{'action': 'segment_alloc', 'addr': 16, "
                     "'size': 2**49 + 1}]]}"),
            "device_traces[0][0]: size 562949953421313 is more than a GPU can address "
            "(562949953421312); the file is damaged");
  EXPECT_EQ(error_of("{'segments': [{'address': 0, 'total_size': 2**64 - 1, 'blocks': []}]}"),
            "segments[0]: size 18446744073709551615 is more than a GPU can address "
            "(562949953421312); the file is damaged");
  EXPECT_EQ(error_of("{'segments': [{'address': 0, 'total_size': 2**20, 'blocks': [{'address': 0, "
                     "'size': 2**60, 'state': 'active_allocated'}]}]}"),
            "segments[0].blocks[0]: size 1152921504606846976 is more than a GPU can address "
            "(562949953421312); the file is damaged");

  TraceImage image;
  std::string error;
  ASSERT_TRUE(snapshot_to_trace(
      python_pickle("oom",
                    "import pickle,sys\nd = {'segments': [], 'device_traces': [[{'action': "
                    "'oom', 'size': 2**63, 'time_us': 5}, {'action': 'alloc', 'addr': 16, "
                    "'size': 2**49, 'time_us': 6}]]}\npickle.dump(d, "
                    "open(sys.argv[1], 'wb'))\n"),
      "x.pickle", &image, &error))
      << error;
  std::vector<std::pair<trace::Op, uint64_t>> got;
  for (const trace::Record& r : image.records())
    if (r.op == static_cast<uint16_t>(trace::Op::alloc_failed) ||
        r.op == static_cast<uint16_t>(trace::Op::alloc))
      got.emplace_back(static_cast<trace::Op>(r.op), r.bytes);
  EXPECT_EQ(got, (std::vector<std::pair<trace::Op, uint64_t>>{
                     {trace::Op::alloc_failed, uint64_t{1} << 63},
                     {trace::Op::alloc, uint64_t{1} << 49}}));
}

// n expandable segments of 2 MiB, 4 MiB apart, each mapped by a segment_map entry of the history
// and listed in the end state. Built by hand with the memo for keys and constants (as Python's
// pickler shares strings), so 100,000 of each take 6 MB and little memory to read.
std::string mapped_ranges_snapshot(uint64_t n) {
  const auto str = [](const std::string& t) {  // SHORT_BINUNICODE
    return std::string("\x8c") + static_cast<char>(t.size()) + t;
  };
  const auto get = [](int memo) { return std::string("h") + static_cast<char>(memo); };
  const auto address = [](uint64_t a) {  // LONG1 of 8 bytes
    std::string b("\x8a\x08", 2);
    for (int i = 0; i < 8; ++i) b += static_cast<char>(a >> (8 * i));
    return b;
  };
  std::string p("\x80\x02", 2);
  int memo = 0;
  for (const char* constant :
       {"action", "segment_map", "addr", "size", "address", "total_size", "is_expandable"})
    p += str(constant) + "q" + static_cast<char>(memo++) + "0";                      // PUT, POP
  p += std::string("J\x00\x00\x20\x00", 5) + "q" + static_cast<char>(memo++) + "0";  // 2 MiB
  const uint64_t base = 0x7f0000000000, step = 4 * kMiB;
  p += "}(" + str("device_traces") + "](](";
  for (uint64_t i = 0; i < n; ++i)
    p += "}(" + get(0) + get(1) + get(2) + address(base + i * step) + get(3) + get(7) + "u";
  p += "ee" + str("segments") + "](";
  for (uint64_t i = 0; i < n; ++i)
    p += "}(" + get(4) + address(base + i * step) + get(5) + get(7) + get(6) + "\x88u";
  p += "eu.";
  return p;
}

// Each end-state expandable segment is matched against the history's mapped ranges in place: a
// copy of all of them for each segment made 100,000 of each 10^10 map nodes (about 15 minutes);
// now it is a fraction of a second. Exactly one mapped range per entry, nothing mapped "before".
TEST(Snapshot, ManyExpandableSegmentsReadInLinearTime) {
  constexpr uint64_t kRanges = 100'000;
  TraceImage image;
  std::string error;
  ASSERT_TRUE(snapshot_to_trace(mapped_ranges_snapshot(kRanges), "x.pickle", &image, &error))
      << error;
  EXPECT_STREQ(image.header().pool, "expandable");
  uint64_t mapped = 0, next = 0x7f0000000000;
  for (const trace::Record& r : image.records()) {
    if (r.op != static_cast<uint16_t>(trace::Op::segment_reserve)) continue;
    EXPECT_EQ(trace::mem_kind(r), trace::MemKind::physical);
    EXPECT_EQ(r.address, next);
    EXPECT_EQ(r.bytes, 2 * kMiB);
    next += 4 * kMiB;
    ++mapped;
  }
  EXPECT_EQ(mapped, kRanges);
}

// PyTorch reports each mapped range of an expandable segment once; overlapping ones are refused
// (each would be matched against all of the history's ranges again).
TEST(Snapshot, OverlappingExpandableSegmentsAreRefused) {
  TraceImage image;
  std::string error;
  EXPECT_FALSE(snapshot_to_trace(
      python_pickle("overlap",
                    "import pickle,sys\n"
                    "s = lambda a, n, e: {'address': a, 'total_size': n, 'is_expandable': e}\n"
                    "d = {'segments': [s(0, 100, True), s(1000, 100, True), s(100, 900, False), "
                    "s(1050, 10, True)]}\npickle.dump(d, open(sys.argv[1], 'wb'))\n"),
      "x.pickle", &image, &error));
  EXPECT_EQ(error,
            "segments[3]: overlaps segments[1], and both are expandable: PyTorch reports each "
            "mapped range once");
}

// The memo (or DUP) lets a list name one dict many times at a byte each; PyTorch never shares a
// segment, block or trace-entry dict, so a repeated one is refused at once rather than read
// segments x blocks times (the 6 KB file below was 9 million allocations, 20 s and 2 GB).
TEST(Snapshot, RepeatedSegmentBlockOrEntryDictIsRefused) {
  const std::string bomb = formats_test::repeated_dict_snapshot(3000, 3000);
  EXPECT_LT(bomb.size(), 7000u);
  TraceImage image;
  std::string error;
  EXPECT_FALSE(snapshot_to_trace(bomb, "bomb.pickle", &image, &error));
  EXPECT_EQ(error,
            "segments[0].blocks[1]: is the dict of an earlier segment, block or trace entry "
            "again (a pickle memo reference or DUP); torch.cuda.memory._dump_snapshot gives each "
            "its own dict");
  // One block each: the second segment is the first one again.
  error.clear();
  EXPECT_FALSE(snapshot_to_trace(formats_test::repeated_dict_snapshot(3000, 1), "bomb.pickle",
                                 &image, &error));
  EXPECT_EQ(error.substr(0, 45), "segments[1]: is the dict of an earlier segmen");
  // Python's pickler memoizes a dict listed twice: trace entries, and one segment's blocks list
  // shared by two segment dicts.
  const std::string entries = python_pickle(
      "repeated",
      "import pickle,sys\n"
      "e = {'action': 'alloc', 'addr': 0, 'size': 1, 'frames': []}\n"
      "pickle.dump({'segments': [], 'device_traces': [[e, e]]}, open(sys.argv[1], 'wb'))\n");
  error.clear();
  EXPECT_FALSE(snapshot_to_trace(entries, "x.pickle", &image, &error));
  EXPECT_EQ(error.substr(0, 50), "device_traces[0][1]: is the dict of an earlier seg");
  const std::string blocks =
      python_pickle("shared_blocks",
                    "import pickle,sys\n"
                    "b = [{'address': 0, 'size': 1, 'state': 'inactive'}]\n"
                    "pickle.dump({'segments': [{'address': 0, 'total_size': 1, 'blocks': b},\n"
                    "                          {'address': 1, 'total_size': 1, 'blocks': b}]},\n"
                    "            open(sys.argv[1], 'wb'))\n");
  error.clear();
  EXPECT_FALSE(snapshot_to_trace(blocks, "x.pickle", &image, &error));
  EXPECT_EQ(error.substr(0, 49), "segments[1].blocks[0]: is the dict of an earlier ");
}

// What a real snapshot does share is kept: frame lists, one list named by many entries, segments
// and blocks (kPooled's fwd and tmp, read by PythonWrittenSnapshotReadsToExactNumbers), and equal
// strings and tuples. Here by hand: two segments of two blocks each, every block and entry naming
// one frames list through the memo (BINPUT 0, then BINGET 0).
TEST(Snapshot, SharedFrameListsStillConvert) {
  const auto str = [](const std::string& t) {  // SHORT_BINUNICODE
    return std::string("\x8c") + static_cast<char>(t.size()) + t;
  };
  const auto num = [](int v) { return std::string("K") + static_cast<char>(v); };  // BININT1
  const std::string frames_get("h\x00", 2);                                        // BINGET 0
  std::string p("\x80\x02}(", 4);
  p += str("device_traces") + "](](}(" + str("action") + str("alloc") + str("addr") + num(0) +
       str("size") + num(16) + str("frames") + "]" + std::string("q\x00", 2) +  // BINPUT 0
       "(}(" + str("filename") + str("train.py") + str("line") + num(42) + str("name") +
       str("forward") + "ueuee";
  p += str("segments") + "](";
  for (int s = 0; s < 2; ++s) {
    p += "}(" + str("address") + num(64 * s) + str("total_size") + num(64) + str("blocks") + "](";
    for (int b = 0; b < 2; ++b)
      p += "}(" + str("state") + str("active_allocated") + str("address") + num(64 * s + 16 * b) +
           str("size") + num(16) + str("frames") + frames_get + "u";
    p += "eu";
  }
  p += "eu.";
  TraceImage image;
  std::string error;
  ASSERT_TRUE(snapshot_to_trace(p, "shared.pickle", &image, &error)) << error;
  const analyzer::Report r = analyze(image, "shared");
  ASSERT_EQ(r.devices.size(), 1u);
  const analyzer::DeviceReport& d = r.devices[0];
  EXPECT_EQ(d.final.allocated_bytes, 64u);  // the entry's block at 0 and three more from the end
  EXPECT_EQ(d.counts.alloc, 4u);
  ASSERT_EQ(d.peak.live_at_peak.size(), 1u);
  EXPECT_EQ(d.peak.live_at_peak[0].python_line, "forward (train.py:42)");
  EXPECT_EQ(d.peak.live_at_peak[0].bytes, 64u);
}

}  // namespace
}  // namespace gpumem::formats
