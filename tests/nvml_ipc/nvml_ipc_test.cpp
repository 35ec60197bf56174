// NVML memory queries and IPC imports on simcuda, with and without LD_PRELOAD=libgpumem.so:
// the exact figures each API answers (runtime, driver and NVML agree, under a cap too) and the
// trace's records (Op::meminfo with Api::nvml on the lookup path the program used).
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
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

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

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

std::vector<Record> records(const std::string& path, Op op, Api api) {
  std::vector<Record> out;
  std::string error;
  auto reader = gpumem::trace::Reader::open(path, &error);
  EXPECT_NE(reader, nullptr) << error;
  if (!reader) return out;
  gpumem::trace::Event ev;
  while (reader->next(&ev))
    if (ev.rec.op == static_cast<uint16_t>(op) && ev.rec.api == static_cast<uint16_t>(api))
      out.push_back(ev.rec);
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

// Runs `prog args` in `dir` on a 1 GiB simulated device; with the preload unless `env` says
// otherwise. The trace is dir/t.trace.
Outcome run(const ScratchDir& dir, const std::string& prog, const std::string& args,
            const std::string& env, bool preload = true) {
  std::string cmd = "cd '" + dir.path() +
                    "' && env -u LD_PRELOAD LD_LIBRARY_PATH=" + GPUMEM_SIMCUDA_DIR +
                    " SIMCUDA_MEMORY=1GiB GPUMEM_TRACE=t.trace " + env;
  if (preload) cmd += std::string(" LD_PRELOAD=") + GPUMEM_PRELOAD_PATH;
  cmd += " " + prog + " " + args;
  return {sh(cmd), dir / "t.trace"};
}

// `gpumem report --json` over the exporter's and the importer's traces (null when it failed).
nlohmann::json report_of_both(const ScratchDir& dir, const std::vector<std::string>& ordered) {
  const std::string json = dir / "report.json";
  auto rep = sh(std::string(GPUMEM_CLI) + " report --json '" + json + "' '" + ordered[0] + "' '" +
                ordered[1] + "'");
  EXPECT_EQ(rep.status, 0) << rep.out;
  if (rep.status != 0) return nullptr;
  std::ifstream in(json);
  return nlohmann::json::parse(in);
}

// The three APIs agree with no cap, and NVML's v2 reports nothing reserved.
void expect_agree(const std::map<std::string, std::vector<uint64_t>>& a, uint64_t total,
                  uint64_t free_bytes) {
  ASSERT_EQ(a.at("runtime"), (std::vector<uint64_t>{free_bytes, total}));
  EXPECT_EQ(a.at("driver"), (std::vector<uint64_t>{free_bytes, total}));
  EXPECT_EQ(a.at("device_total"), (std::vector<uint64_t>{total}));
  EXPECT_EQ(a.at("nvml"), (std::vector<uint64_t>{free_bytes, total, total - free_bytes}));
  EXPECT_EQ(a.at("nvml_v2"), (std::vector<uint64_t>{free_bytes, total, total - free_bytes, 0}));
}

TEST(Nvml, SimulatedNvmlAgreesWithTheRuntimeAndTheDriver) {
  ScratchDir dir("gpumem-nvml");
  for (const char* prog : {NVML_IPC_PROG, NVML_LINKED_PROG}) {
    Outcome r = run(dir, prog, "capacity", "GPUMEM_TRACE=off", false);
    ASSERT_EQ(r.output.status, 0) << prog << ": " << r.output.out;
    // 6 MiB allocated: three whole 2 MiB pages of the 1 GiB device.
    expect_agree(answers(r.output.out), kGiB, kGiB - 6 * kMiB);
  }
}

TEST(Nvml, UncappedQueriesPassThroughAndAreRecordedOnTheirLookupPath) {
  ScratchDir dir("gpumem-nvml");
  const std::pair<const char*, Lookup> progs[] = {{NVML_IPC_PROG, Lookup::dlsym},
                                                  {NVML_LINKED_PROG, Lookup::direct}};
  for (const auto& [prog, lookup] : progs) {
    Outcome r = run(dir, prog, "capacity", "");
    ASSERT_EQ(r.output.status, 0) << prog << ": " << r.output.out;
    expect_agree(answers(r.output.out), kGiB, kGiB - 6 * kMiB);
    // Two successful queries, the version mismatch and the query after nvmlShutdown, each with
    // NVML's own code; the NULL struct goes straight to NVML (nothing to record).
    auto q = records(r.trace, Op::meminfo, Api::nvml);
    ASSERT_EQ(q.size(), 4u) << prog;
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(q[i].bytes, kGiB);           // total
      EXPECT_EQ(q[i].aux, kGiB - 6 * kMiB);  // free
      EXPECT_EQ(q[i].result, 0);
      EXPECT_EQ(q[i].device, 0);
      EXPECT_EQ(lookup_of(q[i]), lookup) << prog;
    }
    EXPECT_EQ(q[2].result, 25);  // NVML_ERROR_ARGUMENT_VERSION_MISMATCH
    EXPECT_EQ(q[3].result, 1);   // NVML_ERROR_UNINITIALIZED, after nvmlShutdown
    std::remove(r.trace.c_str());
  }
}

TEST(Nvml, UnderACapNvmlRuntimeAndDriverReportTheCap) {
  ScratchDir dir("gpumem-nvml");
  const std::pair<const char*, Lookup> progs[] = {{NVML_IPC_PROG, Lookup::dlsym},
                                                  {NVML_LINKED_PROG, Lookup::direct}};
  for (const auto& [prog, lookup] : progs) {
    Outcome r = run(dir, prog, "capacity", "GPUMEM_LIMIT=64MiB");
    ASSERT_EQ(r.output.status, 0) << prog << ": " << r.output.out;
    auto a = answers(r.output.out);
    // total = the cap, free = the cap less the 6 MiB this process holds, through every API.
    expect_agree(a, 64 * kMiB, 58 * kMiB);
    auto q = records(r.trace, Op::meminfo, Api::nvml);
    ASSERT_GE(q.size(), 2u);
    EXPECT_EQ(q[0].bytes, 64 * kMiB);
    EXPECT_EQ(q[0].aux, 58 * kMiB);
    EXPECT_EQ(q[1].bytes, 64 * kMiB);
    EXPECT_EQ(q[1].aux, 58 * kMiB);
    EXPECT_EQ(lookup_of(q[0]), lookup);
    std::remove(r.trace.c_str());
  }
}

TEST(Nvml, APercentCapIsAShareOfTheDeviceNvmlReports) {
  ScratchDir dir("gpumem-nvml");
  Outcome r = run(dir, NVML_IPC_PROG, "capacity", "GPUMEM_LIMIT=25%");
  ASSERT_EQ(r.output.status, 0) << r.output.out;
  expect_agree(answers(r.output.out), 256 * kMiB, 250 * kMiB);
}

// Under a cap, an NVML query before CUDA is answered from the setting without initialising CUDA
// (cuDeviceGetCount still answers CUDA_ERROR_NOT_INITIALIZED), so a forked child can use CUDA;
// once the parent allocated, the stack's answer counts its 6 MiB. By symbol and through dlsym,
// a size and a percentage.
TEST(Nvml, AQueryBeforeCudaLeavesItUninitialisedForForkedChildren) {
  ScratchDir dir("gpumem-nvml");
  const std::pair<const char*, uint64_t> limits[] = {{"GPUMEM_LIMIT=64MiB", 64 * kMiB},
                                                     {"GPUMEM_LIMIT=25%", 256 * kMiB}};
  for (const char* prog : {NVML_IPC_PROG, NVML_LINKED_PROG}) {
    for (const auto& [limit, cap] : limits) {
      SCOPED_TRACE(std::string(prog) + " " + limit);
      Outcome r = run(dir, prog, "nvml_then_fork", limit);
      ASSERT_EQ(r.output.status, 0) << r.output.out;
      auto a = answers(r.output.out);
      EXPECT_EQ(a.at("nvml_before"), (std::vector<uint64_t>{cap, cap, 0}));
      EXPECT_EQ(a.at("nvml_v2_before"), (std::vector<uint64_t>{cap, cap, 0, 0}));
      EXPECT_EQ(a.at("nvml_after"), (std::vector<uint64_t>{cap - 6 * kMiB, cap, 6 * kMiB}));
      auto q = records(r.trace, Op::meminfo, Api::nvml);
      ASSERT_EQ(q.size(), 3u);
      EXPECT_EQ(q[0].bytes, cap);
      EXPECT_EQ(q[0].aux, cap);
      EXPECT_EQ(q[2].aux, cap - 6 * kMiB);
      std::remove(r.trace.c_str());
    }
  }
}

// A shared budget before CUDA: NVML's free is the budget less what every process holds (another
// process holds 48 MiB of 64), read from the ledger the stack then takes for its own 6 MiB.
TEST(Nvml, AQueryBeforeCudaUnderASharedBudgetCountsEveryProcess) {
  ScratchDir dir("gpumem-nvml");
  const std::string name = "gpumem-nvml-fork-" + std::to_string(getpid());
  Outcome r = run(
      dir, NVML_IPC_PROG, "hold_and_run 48 nvml_then_fork",
      "GPUMEM_TRACE=off GPUMEM_LIMIT=64MiB GPUMEM_LIMIT_SCOPE=shared GPUMEM_LIMIT_NAME=" + name);
  std::system(("rm -f /dev/shm/gpumem-budget-" + name + "-dev0").c_str());
  ASSERT_EQ(r.output.status, 0) << r.output.out;
  auto a = answers(r.output.out);
  EXPECT_EQ(a.at("nvml_before"), (std::vector<uint64_t>{16 * kMiB, 64 * kMiB, 48 * kMiB}));
  EXPECT_EQ(a.at("nvml_after"), (std::vector<uint64_t>{10 * kMiB, 64 * kMiB, 54 * kMiB}));
}

TEST(Nvml, APreloadedProcessThatNeverUsesNvmlDoesNotLoadIt) {
  ScratchDir dir("gpumem-nvml");
  Outcome r = run(dir, NVML_IPC_PROG, "cuda_only", "GPUMEM_LIMIT=64MiB");
  ASSERT_EQ(r.output.status, 0) << r.output.out;
  EXPECT_EQ(answers(r.output.out).at("nvml_loaded"), std::vector<uint64_t>{0});
}

TEST(Nvml, OnASharedDeviceEveryProcessSeesTheDeviceWideFigures) {
  ScratchDir dir("gpumem-nvml");
  const std::string shared = "SIMCUDA_SHARED=gpumem-nvml-test-" + std::to_string(getpid());
  // One process holds 48 MiB while another allocates 6 MiB and asks the runtime, the driver and
  // NVML; a third process asks NVML only, with no CUDA loaded, while the first holds its memory.
  Outcome r =
      run(dir, NVML_IPC_PROG, "hold_and_run 48 capacity", shared + " GPUMEM_TRACE=off", false);
  ASSERT_EQ(r.output.status, 0) << r.output.out;
  expect_agree(answers(r.output.out), kGiB, kGiB - 54 * kMiB);
  r = run(dir, NVML_IPC_PROG, "hold_and_run 48 nvml_only", shared + " GPUMEM_TRACE=off", false);
  ASSERT_EQ(r.output.status, 0) << r.output.out;
  EXPECT_EQ(answers(r.output.out).at("nvml"),
            (std::vector<uint64_t>{kGiB - 48 * kMiB, kGiB, 48 * kMiB}));
  std::system(
      ("rm -f /dev/shm/simcuda-gpumem-nvml-test-" + std::to_string(getpid()) + "-dev0").c_str());
}

std::vector<std::string> traces_in(const ScratchDir& dir) {
  std::vector<std::string> files;
  if (DIR* d = opendir(dir.path().c_str())) {
    while (dirent* e = readdir(d))
      if (std::string(e->d_name).find(".trace") != std::string::npos)
        files.push_back(dir / e->d_name);
    closedir(d);
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<Record> all_records(const std::string& path) {
  std::vector<Record> out;
  std::string error;
  auto reader = gpumem::trace::Reader::open(path, &error);
  EXPECT_NE(reader, nullptr) << error;
  gpumem::trace::Event ev;
  while (reader && reader->next(&ev)) out.push_back(ev.rec);
  return out;
}

size_t count(const std::vector<Record>& rs, Op op, MemKind kind) {
  size_t n = 0;
  for (const Record& r : rs)
    if (r.op == static_cast<uint16_t>(op) && gpumem::trace::mem_kind(r) == kind) ++n;
  return n;
}

// An exporter (48 MiB from cudaMalloc, no cap) and an importer under a 16 MiB cap that opens the
// exporter's handle on each lookup path: the import succeeds although it is larger than the cap,
// is recorded once as imported memory with its exact bytes, is not charged (the importer's own
// 8 MiB leave 8 MiB free under its cap), and the two processes' report counts the 48 MiB once.
TEST(Ipc, ImportsAreRecordedOnEveryLookupPathNotChargedAndCountedOnce) {
  struct Path {
    const char* name;
    Api open, close;
    Lookup lookup;
  };
  const Path paths[] = {
      {"runtime", Api::cudaIpcOpenMemHandle, Api::cudaIpcCloseMemHandle, Lookup::direct},
      {"driver", Api::cuIpcOpenMemHandle, Api::cuIpcCloseMemHandle, Lookup::direct},
      {"driver_dlsym", Api::cuIpcOpenMemHandle, Api::cuIpcCloseMemHandle, Lookup::dlsym},
      {"driver_resolver", Api::cuIpcOpenMemHandle, Api::cuIpcCloseMemHandle, Lookup::resolver},
  };
  for (const Path& p : paths) {
    SCOPED_TRACE(p.name);
    ScratchDir dir("gpumem-ipc");
    Outcome r = run(dir, NVML_IPC_PROG, std::string("ipc_export ") + p.name + " 16MiB",
                    "GPUMEM_TRACE=t-%p.trace");
    ASSERT_EQ(r.output.status, 0) << r.output.out;
    auto a = answers(r.output.out);
    EXPECT_EQ(a.at("imported"), std::vector<uint64_t>{48 * kMiB});
    EXPECT_EQ(a.at("importer_runtime"), (std::vector<uint64_t>{8 * kMiB, 16 * kMiB}));
    const auto files = traces_in(dir);
    ASSERT_EQ(files.size(), 2u);
    // The importer is the trace with imported memory (pids may wrap: not their order).
    std::vector<std::string> ordered = files;
    if (count(all_records(ordered[0]), Op::alloc, MemKind::imported) != 0)
      std::swap(ordered[0], ordered[1]);
    const auto exporter = all_records(ordered[0]), importer = all_records(ordered[1]);
    EXPECT_EQ(count(exporter, Op::alloc, MemKind::device), 1u);
    EXPECT_EQ(count(exporter, Op::alloc, MemKind::imported), 0u);
    std::vector<Record> opens, closes;
    for (const Record& rec : importer) {
      if (gpumem::trace::mem_kind(rec) != MemKind::imported) continue;
      if (rec.op == static_cast<uint16_t>(Op::alloc)) opens.push_back(rec);
      if (rec.op == static_cast<uint16_t>(Op::free)) closes.push_back(rec);
    }
    ASSERT_EQ(opens.size(), 1u);
    ASSERT_EQ(closes.size(), 1u);
    EXPECT_EQ(opens[0].api, static_cast<uint16_t>(p.open));
    EXPECT_EQ(opens[0].bytes, 48 * kMiB);
    EXPECT_EQ(lookup_of(opens[0]), p.lookup);
    EXPECT_EQ(closes[0].api, static_cast<uint16_t>(p.close));
    EXPECT_EQ(closes[0].bytes, 48 * kMiB);
    EXPECT_EQ(closes[0].address, opens[0].address);
    EXPECT_EQ(count(importer, Op::alloc_failed, MemKind::imported), 0u);
    EXPECT_EQ(count(importer, Op::alloc_failed, MemKind::device), 0u);

    const nlohmann::json j = report_of_both(dir, ordered);
    ASSERT_FALSE(j.is_null());
    ASSERT_EQ(j["traces"].size(), 2u);
    EXPECT_EQ(j["traces"][0]["imported"]["alloc"], 0);
    EXPECT_EQ(j["traces"][1]["imported"]["peak_bytes"], 48 * kMiB);
    EXPECT_EQ(j["traces"][1]["imported"]["alloc"], 1);
    EXPECT_EQ(j["traces"][1]["imported"]["free"], 1);
    EXPECT_EQ(j["traces"][1]["imported"]["final_bytes"], 0);
    ASSERT_EQ(j["devices"].size(), 2u);
    EXPECT_EQ(j["devices"][0]["peak"]["allocated_bytes"], 48 * kMiB);  // the exporter's, once
    EXPECT_EQ(j["devices"][1]["peak"]["allocated_bytes"], 8 * kMiB);   // the importer's own
    EXPECT_EQ(j["ranks"]["peak_allocated"]["max_bytes"], 48 * kMiB);
    auto text = sh(std::string(GPUMEM_CLI) + " report '" + ordered[1] + "'");
    EXPECT_NE(text.out.find("imported memory (IPC or shareable handle), another process's: "
                            "peak 48.00 MiB, 0 B at exit"),
              std::string::npos)
        << text.out;
  }
}

// VMM memory shared through a POSIX file descriptor: the exporter creates 48 MiB (and imports its
// own fd back, which is the same allocation), an importer under a 16 MiB cap imports it on each
// lookup path, maps it (reading the exporter's bytes), meets three bad handles, imports it again
// and maps it, and imports it a third time without mapping it. Each mapped import is recorded
// once, at its mapping, with the mapping's address and exact bytes and the import's api and
// lookup path; it ends at the call that drops the last of it (the first released before its
// cuMemUnmap, the second unmapped before its cuMemRelease); the unmapped one leaves no record; it
// is not charged (8 MiB of the importer's own leave 8 MiB free under its cap); the bad handles
// are alloc_failed records with CUDA's codes; and the two processes' report counts the 48 MiB
// once.
TEST(Shareable, ImportsAreRecordedAtTheirMappingOnEveryLookupPathNotChargedAndCountedOnce) {
  const std::pair<const char*, Lookup> paths[] = {
      {"driver", Lookup::direct},
      {"driver_dlsym", Lookup::dlsym},
      {"driver_resolver", Lookup::resolver},
  };
  for (const auto& [path, lookup] : paths) {
    SCOPED_TRACE(path);
    ScratchDir dir("gpumem-shareable");
    Outcome r = run(dir, SHAREABLE_PROG, std::string("export ") + path + " 16MiB",
                    "GPUMEM_TRACE=t-%p.trace");
    ASSERT_EQ(r.output.status, 0) << r.output.out;
    auto a = answers(r.output.out);
    EXPECT_EQ(a.at("imported_byte"), std::vector<uint64_t>{0x5a});  // the exporter's bytes
    EXPECT_EQ(a.at("importer_driver"), (std::vector<uint64_t>{8 * kMiB, 16 * kMiB}));
    // The codes of the misuses pass through unchanged (simcuda's, docs/simcuda.md).
    EXPECT_EQ(a.at("export_not_exportable"), std::vector<uint64_t>{1});
    EXPECT_EQ(a.at("import_fd_minus_1"), std::vector<uint64_t>{1});
    EXPECT_EQ(a.at("import_dev_null"), std::vector<uint64_t>{1});
    EXPECT_EQ(a.at("import_win32"), std::vector<uint64_t>{801});
    EXPECT_EQ(a.at("import_null_out"), std::vector<uint64_t>{1});
    const auto files = traces_in(dir);
    ASSERT_EQ(files.size(), 2u);
    std::vector<std::string> ordered = files;  // exporter first: the one with physical memory
    if (count(all_records(ordered[0]), Op::alloc, MemKind::physical) == 0)
      std::swap(ordered[0], ordered[1]);
    const auto exporter = all_records(ordered[0]), importer = all_records(ordered[1]);
    // 48 MiB and 2 MiB that cannot be exported; its own import back adds nothing.
    EXPECT_EQ(count(exporter, Op::alloc, MemKind::physical), 2u);
    EXPECT_EQ(count(exporter, Op::free, MemKind::physical), 2u);
    EXPECT_EQ(count(exporter, Op::alloc, MemKind::imported), 0u);
    EXPECT_EQ(count(exporter, Op::alloc_failed, MemKind::imported), 0u);

    std::vector<Record> imports, ends, failed, maps;
    for (const Record& rec : importer) {
      if (rec.op == static_cast<uint16_t>(Op::map)) maps.push_back(rec);
      if (gpumem::trace::mem_kind(rec) != MemKind::imported) continue;
      if (rec.op == static_cast<uint16_t>(Op::alloc)) imports.push_back(rec);
      if (rec.op == static_cast<uint16_t>(Op::free)) ends.push_back(rec);
      if (rec.op == static_cast<uint16_t>(Op::alloc_failed)) failed.push_back(rec);
    }
    ASSERT_EQ(imports.size(), 2u);  // the third import was never mapped: no record
    ASSERT_EQ(ends.size(), 2u);
    ASSERT_EQ(maps.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(imports[i].api, static_cast<uint16_t>(Api::cuMemImportFromShareableHandle));
      EXPECT_EQ(lookup_of(imports[i]), lookup);
      EXPECT_EQ(imports[i].bytes, 48 * kMiB);
      EXPECT_EQ(imports[i].address, maps[i].address);
      EXPECT_EQ(ends[i].address, imports[i].address);
      EXPECT_EQ(ends[i].bytes, 48 * kMiB);
    }
    EXPECT_EQ(ends[0].api, static_cast<uint16_t>(Api::cuMemUnmap));    // released, then unmapped
    EXPECT_EQ(ends[1].api, static_cast<uint16_t>(Api::cuMemRelease));  // unmapped, then released
    ASSERT_EQ(failed.size(), 3u);
    EXPECT_EQ(failed[0].result, 1);    // fd -1: CUDA_ERROR_INVALID_VALUE
    EXPECT_EQ(failed[1].result, 1);    // /dev/null
    EXPECT_EQ(failed[2].result, 801);  // a Win32 handle: CUDA_ERROR_NOT_SUPPORTED
    for (const Record& f : failed) EXPECT_EQ(lookup_of(f), lookup);
    EXPECT_EQ(count(importer, Op::alloc_failed, MemKind::device), 0u);
    EXPECT_EQ(count(importer, Op::anomaly, MemKind::device) +
                  count(importer, Op::anomaly, MemKind::physical),
              0u);

    const nlohmann::json j = report_of_both(dir, ordered);
    ASSERT_FALSE(j.is_null());
    ASSERT_EQ(j["traces"].size(), 2u);
    EXPECT_EQ(j["traces"][0]["imported"]["alloc"], 0);
    EXPECT_EQ(j["traces"][1]["imported"]["peak_bytes"], 48 * kMiB);
    EXPECT_EQ(j["traces"][1]["imported"]["alloc"], 2);
    EXPECT_EQ(j["traces"][1]["imported"]["free"], 2);
    EXPECT_EQ(j["traces"][1]["imported"]["final_bytes"], 0);
    ASSERT_EQ(j["devices"].size(), 2u);
    EXPECT_EQ(j["devices"][0]["peak"]["allocated_bytes"], 50 * kMiB);  // the exporter's, once
    EXPECT_EQ(j["devices"][1]["peak"]["allocated_bytes"], 8 * kMiB);   // the importer's own
  }
}

// simcuda alone on a device two processes share: the exporter's 48 MiB are charged once, to the
// exporter; the importer's free memory is the device's less both processes' own allocations.
TEST(Shareable, OnASharedSimulatedDeviceTheExporterAloneIsCharged) {
  ScratchDir dir("gpumem-shareable");
  const std::string shared = "SIMCUDA_SHARED=gpumem-shareable-test-" + std::to_string(getpid());
  Outcome r = run(dir, SHAREABLE_PROG, "export driver", shared + " GPUMEM_TRACE=off", false);
  std::system(("rm -f /dev/shm/simcuda-gpumem-shareable-test-" + std::to_string(getpid()) + "-dev0")
                  .c_str());
  ASSERT_EQ(r.output.status, 0) << r.output.out;
  auto a = answers(r.output.out);
  EXPECT_EQ(a.at("imported_byte"), std::vector<uint64_t>{0x5a});
  EXPECT_EQ(a.at("importer_driver"), (std::vector<uint64_t>{kGiB - 56 * kMiB, kGiB}));
}

}  // namespace
