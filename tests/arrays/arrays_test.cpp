// CUDA arrays and host registration on simcuda, with and without LD_PRELOAD=libgpumem.so: the
// size formula, each API's codes, the trace's records on every lookup path (exact counts and
// bytes), the report's figures, and a cap refusing arrays with each API's own out-of-memory code
// exactly where a device of the cap's size does, while registered host memory is never charged.
#include <cuda.h>
#include <driver_types.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "gpumem/array_bytes.h"
#include "gpumem/trace/reader.h"
#include "scratch.h"
#include "shell.h"

namespace {

using gpumem::test::ScratchDir;
using gpumem::test::sh;
using gpumem::trace::Api;
using gpumem::trace::Lookup;
using gpumem::trace::MemKind;
using gpumem::trace::Op;
using gpumem::trace::Record;
namespace arrays = gpumem::arrays;

constexpr uint64_t kMiB = 1ull << 20;
// array_prog's five arrays, in creation order, and their sum.
const std::vector<uint64_t> kArrayBytes = {4000, 524288, 524288, 262144, 349524};
constexpr uint64_t kArraysTotal = 1664244;

// "name v1 v2 ..." lines of the program's output, by name.
std::map<std::string, std::vector<uint64_t>> answers(const std::string& out) {
  std::map<std::string, std::vector<uint64_t>> a;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string name;
    words >> name;
    uint64_t v = 0;
    while (words >> v) a[name].push_back(v);
  }
  return a;
}

std::vector<Record> read_trace(const std::string& path) {
  std::vector<Record> out;
  std::string error;
  auto reader = gpumem::trace::Reader::open(path, &error);
  EXPECT_NE(reader, nullptr) << error;
  if (!reader) return out;
  gpumem::trace::Event ev;
  while (reader->next(&ev)) out.push_back(ev.rec);
  return out;
}

std::vector<Record> where(const std::vector<Record>& rs, Op op, MemKind kind) {
  std::vector<Record> out;
  for (const auto& r : rs)
    if (r.op == static_cast<uint16_t>(op) && gpumem::trace::mem_kind(r) == kind) out.push_back(r);
  return out;
}

Lookup lookup_of(const Record& r) {
  return static_cast<Lookup>((r.flags & gpumem::trace::kFlagLookupMask) >>
                             gpumem::trace::kFlagLookupShift);
}

struct Outcome {
  gpumem::test::Output output;
  std::string trace;
};

// Runs array_prog `args` in `dir` on a simulated device of `memory`; with the preload unless
// told otherwise. The trace is dir/t.trace.
Outcome run(const ScratchDir& dir, const std::string& args, const std::string& env = "",
            bool preload = true, const std::string& memory = "1GiB") {
  std::remove((dir / "t.trace").c_str());
  std::string cmd = "cd '" + dir.path() +
                    "' && env -u LD_PRELOAD LD_LIBRARY_PATH=" + GPUMEM_SIMCUDA_DIR +
                    " SIMCUDA_MEMORY=" + memory + " GPUMEM_TRACE=t.trace " + env;
  if (preload) cmd += std::string(" LD_PRELOAD=") + GPUMEM_PRELOAD_PATH;
  cmd += std::string(" ") + ARRAY_PROG + " " + args;
  return {sh(cmd), dir / "t.trace"};
}

// Runs `what` under GPUMEM_LIMIT=`cap` on a 1 GiB device, and bare on a device of `cap`: the
// cap answers every call as such a device does. The capped run (its trace in dir) and its answers.
Outcome capped_as_a_device_of(const ScratchDir& dir, const std::string& what,
                              const std::string& cap,
                              std::map<std::string, std::vector<uint64_t>>* a) {
  Outcome raw = run(dir, what, "", false, cap);
  EXPECT_EQ(raw.output.status, 0) << raw.output.out;
  Outcome capped = run(dir, what, "GPUMEM_LIMIT=" + cap);
  EXPECT_EQ(capped.output.status, 0) << capped.output.out;
  *a = answers(capped.output.out);
  EXPECT_EQ(*a, answers(raw.output.out));
  return capped;
}

TEST(Arrays, SizeFormula) {
  using arrays::array_bytes;
  using arrays::driver_texel;
  using arrays::runtime_texel;
  // width x height x depth texels; absent dimensions count 1.
  EXPECT_EQ(array_bytes(driver_texel(CU_AD_FORMAT_FLOAT, 1), 1000, 0, 0), 4000u);
  EXPECT_EQ(array_bytes(driver_texel(CU_AD_FORMAT_UNSIGNED_INT8, 4), 512, 256, 0), 524288u);
  EXPECT_EQ(array_bytes(driver_texel(CU_AD_FORMAT_HALF, 2), 10, 10, 10), 4000u);
  // Mip levels halve each dimension down to 1; layers are not halved.
  EXPECT_EQ(array_bytes(driver_texel(CU_AD_FORMAT_FLOAT, 1), 256, 256, 0, 9), 349524u);
  EXPECT_EQ(array_bytes(driver_texel(CU_AD_FORMAT_FLOAT, 1), 8, 8, 4, 2, true), 4u * (256 + 64));
  EXPECT_EQ(array_bytes(driver_texel(CU_AD_FORMAT_FLOAT, 1), 8, 8, 4, 2, false),
            4u * (256 + 32));  // 4x4x2 at level 1
  // Block-compressed: 4x4 blocks of 8 (BC1) or 16 (BC7) bytes, partial blocks whole.
  EXPECT_EQ(array_bytes(driver_texel(CU_AD_FORMAT_BC1_UNORM, 4), 10, 10, 0), 9u * 8);
  EXPECT_EQ(array_bytes(runtime_texel(8, 8, 8, 8, cudaChannelFormatKindUnsignedBlockCompressed7),
                        16, 16, 0),
            16u * 16);
  EXPECT_EQ(array_bytes(driver_texel(CU_AD_FORMAT_NV12, 3), 64, 64, 0), 64u * 64 * 3 / 2);
  // The runtime's channel description gives the driver's figure for the same texels.
  EXPECT_EQ(runtime_texel(32, 32, 0, 0, cudaChannelFormatKindFloat).bits,
            driver_texel(CU_AD_FORMAT_FLOAT, 2).bits);
  // Formats and channel counts CUDA does not define are unknown; overflow saturates.
  EXPECT_FALSE(driver_texel(0x7f, 1).known());
  EXPECT_FALSE(driver_texel(CU_AD_FORMAT_FLOAT, 3).known());
  EXPECT_FALSE(runtime_texel(0, 0, 0, 0, cudaChannelFormatKindFloat).known());
  EXPECT_EQ(array_bytes(driver_texel(CU_AD_FORMAT_FLOAT, 4), 1ull << 40, 1ull << 40, 1ull << 40),
            UINT64_MAX);
  EXPECT_EQ(arrays::max_levels(256, 256, 0), 9u);
}

// CUDA clamps a mipmapped array's level count to [1, 1 + floor(log2(max extent))]
// (cudaMallocMipmappedArray, cuMipmappedArrayCreate): 0 levels is one level, not 0 bytes (which
// would pass any cap), and too many is the maximum, not phantom 1x1 levels.
TEST(Arrays, SizeFormulaClampsLevelsAsCudaDoes) {
  using arrays::array_bytes;
  using arrays::clamp_levels;
  const auto f1 = arrays::driver_texel(CU_AD_FORMAT_FLOAT, 1);
  const auto rt = arrays::runtime_texel(32, 0, 0, 0, cudaChannelFormatKindFloat);
  for (const auto& t : {f1, rt}) {
    EXPECT_EQ(array_bytes(t, 1024, 1024, 0, 0), 4u * kMiB);
    EXPECT_EQ(array_bytes(t, 1024, 1024, 0, 0), array_bytes(t, 1024, 1024, 0, 1));
    EXPECT_EQ(array_bytes(t, 256, 256, 0, 10), 349524u);  // 9 levels at most
    EXPECT_EQ(array_bytes(t, 256, 256, 0, 1000), array_bytes(t, 256, 256, 0, 9));
    EXPECT_EQ(array_bytes(t, 256, 256, 0, UINT32_MAX), array_bytes(t, 256, 256, 0, 9));
    EXPECT_EQ(array_bytes(t, 1000, 0, 0, 0), 4000u);                        // 1D
    EXPECT_EQ(array_bytes(t, 8, 8, 64, 100), array_bytes(t, 8, 8, 64, 7));  // 3D: depth counts
  }
  // Layers and cubemap faces are not mipmapped: width and height alone give the maximum.
  EXPECT_EQ(array_bytes(f1, 16, 16, 1000, 64, true), array_bytes(f1, 16, 16, 1000, 5, true));
  EXPECT_EQ(array_bytes(f1, 16, 16, 1000, 64, true), 1000u * 4 * (256 + 64 + 16 + 4 + 1));
  EXPECT_EQ(array_bytes(f1, 32, 32, 6, 0, true), 6u * 4 * 32 * 32);
  EXPECT_EQ(array_bytes(f1, 64, 64, 4, 100, true), 87376u);  // array_prog's layered case
  EXPECT_EQ(clamp_levels(0, 256, 256, 0), 1u);
  EXPECT_EQ(clamp_levels(5, 256, 256, 0), 5u);
  EXPECT_EQ(clamp_levels(10, 256, 256, 0), 9u);
  EXPECT_EQ(clamp_levels(100, 1, 0, 0), 1u);
  EXPECT_EQ(clamp_levels(100, 16, 16, 1000, true), 5u);
  EXPECT_EQ(clamp_levels(100, 16, 16, 1000, false), 10u);
  EXPECT_EQ(clamp_levels(100, UINT64_MAX, 0, 0), 64u);
  EXPECT_EQ(clamp_levels(0, 0, 0, 0), 1u);
}

// Sizes past 64 bits saturate at UINT64_MAX and are never recorded wrapped to a few bytes.
TEST(Arrays, SizeFormulaSaturatesInsteadOfWrapping) {
  using arrays::array_bytes;
  const auto bc7 = arrays::driver_texel(CU_AD_FORMAT_BC7_UNORM, 4);
  // Blocks of a width or height near 2^64: (w + 3) / 4 wrapped to 0.
  EXPECT_EQ(array_bytes(bc7, UINT64_MAX, 0, 0), UINT64_MAX);
  EXPECT_EQ(array_bytes(bc7, UINT64_MAX - 2, 4, 0), UINT64_MAX);
  EXPECT_EQ(array_bytes(bc7, 4, UINT64_MAX - 1, 0), UINT64_MAX);
  EXPECT_EQ(array_bytes(bc7, UINT64_MAX, UINT64_MAX, 0, 0), UINT64_MAX);
  // Levels of such an extent: every level saturates, and so does the sum.
  EXPECT_EQ(array_bytes(arrays::driver_texel(CU_AD_FORMAT_FLOAT, 4), UINT64_MAX, 0, 0, 64),
            UINT64_MAX);
  // Bits rounded up to bytes: 12-bit NV12 texels of 2^64 - 4 bits, where bits + 7 wrapped to 3
  // (0 bytes); the exact size, 2^61 bytes, fits.
  const auto nv12 = arrays::driver_texel(CU_AD_FORMAT_NV12, 3);
  EXPECT_EQ(array_bytes(nv12, ((1ull << 62) - 1) / 3, 0, 0), 1ull << 61);
  // Texels times extent past 2^64 bits.
  EXPECT_EQ(array_bytes(nv12, 1ull << 62, 2, 0), UINT64_MAX);
  // A channel description's bit counts near INT_MAX sum in 64 bits (the int sum overflowed).
  const int big = INT32_MAX - 7;
  const auto huge = arrays::runtime_texel(big, big, big, big, cudaChannelFormatKindSigned);
  ASSERT_TRUE(huge.known());
  EXPECT_EQ(huge.bits, 4ull * static_cast<uint64_t>(big));
  EXPECT_EQ(array_bytes(huge, 1, 0, 0), huge.bits / 8);
  EXPECT_EQ(array_bytes(huge, 1ull << 31, 1ull << 31, 0), UINT64_MAX);
  EXPECT_FALSE(arrays::runtime_texel(INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX,
                                     cudaChannelFormatKindFloat)
                   .known());  // 2^33 - 4 bits: not whole bytes
}

// What every lookup path answers, with or without the preload.
void expect_codes(const std::map<std::string, std::vector<uint64_t>>& a, bool runtime) {
  for (const char* name : {"array_1d", "array_2d", "array_3d", "array_layered", "mipmapped",
                           "destroy_1d", "destroy_2d", "destroy_3d", "destroy_layered",
                           "destroy_mipmapped", "register", "unregister"})
    EXPECT_EQ(a.at(name), std::vector<uint64_t>{0}) << name;
  // An array destroyed twice: cudaErrorInvalidValue (cudaFreeArray's documented code) or
  // CUDA_ERROR_INVALID_HANDLE.
  EXPECT_EQ(a.at("destroy_again"), std::vector<uint64_t>{runtime ? 1u : 400u});
  EXPECT_EQ(a.at("register_again"), std::vector<uint64_t>{712});    // already registered
  EXPECT_EQ(a.at("unregister_again"), std::vector<uint64_t>{713});  // not registered
  EXPECT_EQ(a.at("register_bad_flags"), std::vector<uint64_t>{1});  // invalid value
}

TEST(Arrays, SimulatedDeviceAnswersAsCudaDocuments) {
  ScratchDir dir("gpumem-arrays");
  for (const char* what : {"runtime", "driver"}) {
    Outcome r = run(dir, what, "", false);
    ASSERT_EQ(r.output.status, 0) << what << ": " << r.output.out;
    expect_codes(answers(r.output.out), std::string(what) == "runtime");
  }
}

struct Path {
  const char* command;
  Lookup lookup;
  bool runtime;
};

TEST(Arrays, EveryLookupPathRecordsArraysAndRegistrationsExactly) {
  ScratchDir dir("gpumem-arrays");
  const Path paths[] = {
      {"runtime", Lookup::direct, true},     {"runtime-dlsym", Lookup::dlsym, true},
      {"driver", Lookup::direct, false},     {"driver-dlsym", Lookup::dlsym, false},
      {"resolver", Lookup::resolver, false}, {"entry-point", Lookup::resolver, false}};
  for (const Path& p : paths) {
    SCOPED_TRACE(p.command);
    Outcome r = run(dir, p.command);
    ASSERT_EQ(r.output.status, 0) << r.output.out;
    expect_codes(answers(r.output.out), p.runtime);
    const std::vector<Record> rs = read_trace(r.trace);

    const std::vector<Api> created =
        p.runtime
            ? std::vector<Api>{Api::cudaMallocArray, Api::cudaMallocArray, Api::cudaMalloc3DArray,
                               Api::cudaMalloc3DArray, Api::cudaMallocMipmappedArray}
            : std::vector<Api>{Api::cuArrayCreate, Api::cuArrayCreate, Api::cuArray3DCreate,
                               Api::cuArray3DCreate, Api::cuMipmappedArrayCreate};
    const auto allocs = where(rs, Op::alloc, MemKind::array);
    ASSERT_EQ(allocs.size(), 5u);
    for (size_t i = 0; i < allocs.size(); ++i) {
      EXPECT_EQ(allocs[i].api, static_cast<uint16_t>(created[i])) << i;
      EXPECT_EQ(allocs[i].bytes, kArrayBytes[i]) << i;
      EXPECT_EQ(allocs[i].device, 0);
      EXPECT_EQ(lookup_of(allocs[i]), p.lookup) << i;
      EXPECT_EQ(allocs[i].flags & gpumem::trace::kFlagPooled, 0);
    }
    const auto frees = where(rs, Op::free, MemKind::array);
    ASSERT_EQ(frees.size(), 5u);
    uint64_t freed = 0;
    for (size_t i = 0; i < frees.size(); ++i) {
      EXPECT_EQ(frees[i].address, allocs[i].address) << i;
      freed += frees[i].bytes;
    }
    EXPECT_EQ(freed, kArraysTotal);
    EXPECT_EQ(frees[4].api, static_cast<uint16_t>(p.runtime ? Api::cudaFreeMipmappedArray
                                                            : Api::cuMipmappedArrayDestroy));
    // The second destroy of an array: an unknown handle, passed on and answered by CUDA.
    const auto unknown_arrays = where(rs, Op::anomaly, MemKind::array);
    ASSERT_EQ(unknown_arrays.size(), 1u);
    EXPECT_EQ(unknown_arrays[0].address, allocs[0].address);
    // Counted once: no record of the driver calls the runtime made.
    if (p.runtime) {
      for (const auto& rec : rs)
        EXPECT_FALSE(rec.api == static_cast<uint16_t>(Api::cuArray3DCreate) ||
                     rec.api == static_cast<uint16_t>(Api::cuMemHostRegister));
    }

    // Registration: pinned host memory of device -1, with CUDA's codes on the refusals.
    const Api reg = p.runtime ? Api::cudaHostRegister : Api::cuMemHostRegister;
    const Api unreg = p.runtime ? Api::cudaHostUnregister : Api::cuMemHostUnregister;
    const auto pinned = where(rs, Op::alloc, MemKind::pinned_host);
    ASSERT_EQ(pinned.size(), 1u);
    EXPECT_EQ(pinned[0].api, static_cast<uint16_t>(reg));
    EXPECT_EQ(pinned[0].bytes, kMiB);
    EXPECT_EQ(pinned[0].device, -1);
    EXPECT_EQ(lookup_of(pinned[0]), p.lookup);
    const auto refused = where(rs, Op::alloc_failed, MemKind::pinned_host);
    ASSERT_EQ(refused.size(), 2u);
    EXPECT_EQ(refused[0].result, 712);
    EXPECT_EQ(refused[0].bytes, 4096u);
    EXPECT_EQ(refused[1].result, 1);
    const auto unpinned = where(rs, Op::free, MemKind::pinned_host);
    ASSERT_EQ(unpinned.size(), 1u);
    EXPECT_EQ(unpinned[0].api, static_cast<uint16_t>(unreg));
    EXPECT_EQ(unpinned[0].address, pinned[0].address);
    EXPECT_EQ(unpinned[0].bytes, kMiB);
    EXPECT_EQ(where(rs, Op::anomaly, MemKind::pinned_host).size(), 1u);
  }
}

TEST(Arrays, ReportCountsArraysAsDeviceMemoryAndRegistrationAsPinnedHost) {
  ScratchDir dir("gpumem-arrays");
  Outcome r = run(dir, "driver");
  ASSERT_EQ(r.output.status, 0) << r.output.out;
  const auto rep =
      sh(std::string(GPUMEM_CLI) + " report --json '" + dir.path() + "/r.json' '" + r.trace + "'");
  ASSERT_EQ(rep.status, 0) << rep.out;
  std::ifstream in(dir / "r.json");
  const auto j = nlohmann::json::parse(in);
  const auto& d = j["devices"][0];
  EXPECT_EQ(d["peak"]["allocated_bytes"], kArraysTotal);  // the five arrays live together
  EXPECT_EQ(d["counts"]["alloc"], 5);
  EXPECT_EQ(d["counts"]["free"], 5);
  const auto& pinned = j["traces"][0]["pinned_host"];
  EXPECT_EQ(pinned["peak_bytes"], kMiB);
  EXPECT_EQ(pinned["final_bytes"], 0);
  EXPECT_EQ(pinned["alloc"], 1);
  EXPECT_EQ(pinned["free"], 1);
}

// Under an 8 MiB cap on a 1 GiB device, 4 MiB arrays: two fit, the third and a 5 MiB mipmapped
// array are refused with the API's own out-of-memory code; 64 MiB registered changes nothing.
// A raw 8 MiB simulated device gives the same codes and the same capacity answers.
TEST(Arrays, CapRefusesArraysWhereADeviceOfThatSizeDoesAndNeverChargesRegistration) {
  ScratchDir dir("gpumem-arrays");
  for (const char* what : {"cap-runtime", "cap-driver"}) {
    SCOPED_TRACE(what);
    std::map<std::string, std::vector<uint64_t>> a;
    const Outcome capped = capped_as_a_device_of(dir, what, "8MiB", &a);
    ASSERT_EQ(capped.output.status, 0);
    EXPECT_EQ(a.at("array_0"), std::vector<uint64_t>{0});
    EXPECT_EQ(a.at("array_1"), std::vector<uint64_t>{0});
    EXPECT_EQ(a.at("array_2"), std::vector<uint64_t>{2});  // MemoryAllocation / OUT_OF_MEMORY
    EXPECT_EQ(a.at("array_3"), std::vector<uint64_t>{2});
    EXPECT_EQ(a.at("mipmapped_over_cap"), std::vector<uint64_t>{2});
    EXPECT_EQ(a.at("register_64mib"), std::vector<uint64_t>{0});
    EXPECT_EQ(a.at("unregister_64mib"), std::vector<uint64_t>{0});
    // Runtime and driver agree: free, total as each reports it.
    const uint64_t cap = 8 * kMiB;
    EXPECT_EQ(a.at("capacity_before"), (std::vector<uint64_t>{cap, cap, cap, cap}));
    EXPECT_EQ(a.at("capacity_0"), (std::vector<uint64_t>{4 * kMiB, cap, 4 * kMiB, cap}));
    EXPECT_EQ(a.at("capacity_1"), (std::vector<uint64_t>{0, cap, 0, cap}));
    EXPECT_EQ(a.at("capacity_3"), (std::vector<uint64_t>{0, cap, 0, cap}));
    EXPECT_EQ(a.at("capacity_registered"), (std::vector<uint64_t>{0, cap, 0, cap}));

    const auto rs = read_trace(capped.trace);
    EXPECT_EQ(where(rs, Op::alloc, MemKind::array).size(), 2u);
    const auto refused = where(rs, Op::alloc_failed, MemKind::array);
    ASSERT_EQ(refused.size(), 3u);
    EXPECT_EQ(refused[2].bytes, 5 * kMiB);
    for (const auto& f : refused) EXPECT_EQ(f.result, 2);
    const auto ooms = where(rs, Op::oom, MemKind::array);
    ASSERT_EQ(ooms.size(), 3u);
    for (const auto& o : ooms) EXPECT_NE(o.flags & gpumem::trace::kFlagOomByGpumem, 0);
    const auto pinned = where(rs, Op::alloc, MemKind::pinned_host);
    ASSERT_EQ(pinned.size(), 1u);
    EXPECT_EQ(pinned[0].bytes, 64 * kMiB);
  }
}

// A mipmapped array's level count as CUDA clamps it, on simcuda and through the preload: a
// layered array with too many levels takes its 7 (87376 bytes); 1024 x 1024 floats with 0 levels
// take one 4 MiB level, and with 100 levels their 11 (5592404 bytes). Under a 2 MiB cap, less
// than one level, both of these are refused with the API's out-of-memory code exactly where a
// 2 MiB simulated device refuses them, and recorded with their real sizes, not 0 bytes.
constexpr uint64_t kLayeredClampedBytes = 87376;
constexpr uint64_t kOneLevelBytes = 4 * kMiB;
constexpr uint64_t kElevenLevelsBytes = 5592404;

TEST(Arrays, MipmappedLevelCountIsClampedAsCudaDoes) {
  ScratchDir dir("gpumem-arrays");
  for (const char* what : {"levels-runtime", "levels-driver"}) {
    SCOPED_TRACE(what);
    const bool runtime = std::string(what) == "levels-runtime";
    const Api api = runtime ? Api::cudaMallocMipmappedArray : Api::cuMipmappedArrayCreate;
    const std::map<std::string, std::vector<uint64_t>> all_made = {
        {"levels_layered_over", {0}}, {"levels_0", {0}}, {"levels_over", {0}}};

    // simcuda clamps as CUDA does: every count is accepted.
    Outcome raw = run(dir, what, "", false);
    ASSERT_EQ(raw.output.status, 0) << raw.output.out;
    EXPECT_EQ(answers(raw.output.out), all_made);

    // Through the preload, recorded with the clamped level count's bytes.
    Outcome r = run(dir, what);
    ASSERT_EQ(r.output.status, 0) << r.output.out;
    EXPECT_EQ(answers(r.output.out), all_made);
    const auto rs = read_trace(r.trace);
    const auto allocs = where(rs, Op::alloc, MemKind::array);
    ASSERT_EQ(allocs.size(), 3u);
    const uint64_t bytes[] = {kLayeredClampedBytes, kOneLevelBytes, kElevenLevelsBytes};
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(allocs[i].api, static_cast<uint16_t>(api)) << i;
      EXPECT_EQ(allocs[i].bytes, bytes[i]) << i;
    }
    const auto frees = where(rs, Op::free, MemKind::array);
    ASSERT_EQ(frees.size(), 3u);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(frees[i].bytes, bytes[i]) << i;

    // A cap smaller than one level refuses 0 levels, as a device of that size does.
    std::map<std::string, std::vector<uint64_t>> a;
    const Outcome capped = capped_as_a_device_of(dir, what, "2MiB", &a);
    ASSERT_EQ(capped.output.status, 0);
    EXPECT_EQ(a.at("levels_layered_over"), std::vector<uint64_t>{0});
    EXPECT_EQ(a.at("levels_0"), std::vector<uint64_t>{2});  // MemoryAllocation / OUT_OF_MEMORY
    EXPECT_EQ(a.at("levels_over"), std::vector<uint64_t>{2});
    const auto crs = read_trace(capped.trace);
    const auto made = where(crs, Op::alloc, MemKind::array);
    ASSERT_EQ(made.size(), 1u);
    EXPECT_EQ(made[0].bytes, kLayeredClampedBytes);
    const auto refused = where(crs, Op::alloc_failed, MemKind::array);
    ASSERT_EQ(refused.size(), 2u);
    EXPECT_EQ(refused[0].bytes, kOneLevelBytes);
    EXPECT_EQ(refused[1].bytes, kElevenLevelsBytes);
    for (const auto& f : refused) {
      EXPECT_EQ(f.api, static_cast<uint16_t>(api));
      EXPECT_EQ(f.result, 2);
    }
    const auto ooms = where(crs, Op::oom, MemKind::array);
    ASSERT_EQ(ooms.size(), 2u);
    for (const auto& o : ooms) EXPECT_NE(o.flags & gpumem::trace::kFlagOomByGpumem, 0);
  }
}

}  // namespace
