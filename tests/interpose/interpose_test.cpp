// Runs interpose_prog under LD_PRELOAD=libgpumem.so on simcuda and checks the trace it leaves:
// exact records (op, api, bytes, lookup path), not just that a file exists.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sanitized.h"
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gpumem/trace/reader.h"

extern char** environ;

namespace {

using gpumem::trace::Api;
using gpumem::trace::Lookup;
using gpumem::trace::MemKind;
using gpumem::trace::Op;
using gpumem::trace::Record;

struct Trace {
  gpumem::trace::Header header{};
  std::vector<Record> records;              // every non-blob record, in file order
  std::map<uint64_t, std::string> strings;  // string id -> text
  uint64_t stacks = 0;
  gpumem::trace::ReadStats stats;

  std::vector<Record> where(Op op, Api api = Api::unknown) const {
    std::vector<Record> out;
    for (const auto& r : records)
      if (r.op == static_cast<uint16_t>(op) &&
          (api == Api::unknown || r.api == static_cast<uint16_t>(api)))
        out.push_back(r);
    return out;
  }
  size_t count(Op op, Api api = Api::unknown) const { return where(op, api).size(); }
};

Lookup lookup_of(const Record& r) {
  return static_cast<Lookup>((r.flags & gpumem::trace::kFlagLookupMask) >>
                             gpumem::trace::kFlagLookupShift);
}

struct Outcome {
  int status = -1;  // exit status, or 128 + signal
  std::string out, err;
};

class Interpose : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpumem-interpose-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!HasFailure())
      std::system(("rm -rf '" + dir_ + "'").c_str());
    else
      std::fprintf(stderr, "traces kept in %s\n", dir_.c_str());
  }

  // The environment of the child: ours, plus preload, simcuda first, trace template, extras.
  std::vector<std::string> environment(const std::vector<std::string>& extra, bool preload = true) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv = *e;
      if (kv.rfind("GPUMEM_", 0) == 0 || kv.rfind("LD_PRELOAD=", 0) == 0 ||
          kv.rfind("LD_LIBRARY_PATH=", 0) == 0)
        continue;
      env.push_back(kv);
    }
    if (bare_env_) return env;  // what a user's shell would have: gpumem run sets the rest
    if (preload) env.push_back(std::string("LD_PRELOAD=") + GPUMEM_PRELOAD_PATH);
    env.push_back(std::string("LD_LIBRARY_PATH=") + GPUMEM_SIMCUDA_DIR);
    env.push_back("GPUMEM_TRACE=" + dir_ + "/t-%p.trace");
    for (const auto& kv : extra) {
      const std::string key = kv.substr(0, kv.find('=') + 1);
      for (auto it = env.begin(); it != env.end();)
        it = it->rfind(key, 0) == 0 ? env.erase(it) : it + 1;
      env.push_back(kv);
    }
    return env;
  }

  pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
              int out_fd, int err_fd, bool preload = true) {
    std::vector<std::string> env = environment(extra_env, preload);
    std::vector<char*> argv, envp;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    posix_spawn_file_actions_addchdir_np(&fa, dir_.c_str());
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    EXPECT_EQ(rc, 0) << "posix_spawn " << args[0];
    return pid;
  }

  static std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  Outcome run(const std::vector<std::string>& args, const std::vector<std::string>& extra_env = {},
              bool preload = true) {
    const std::string out_path = dir_ + "/stdout.txt", err_path = dir_ + "/stderr.txt";
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = spawn(args, extra_env, out, err, preload);
    ::close(out);
    ::close(err);
    Outcome r;
    int status = 0;
    waitpid(pid, &status, 0);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    ::unlink(out_path.c_str());
    ::unlink(err_path.c_str());
    last_pid_ = pid;
    return r;
  }

  Outcome prog(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    std::vector<std::string> full{INTERPOSE_PROG};
    full.insert(full.end(), args.begin(), args.end());
    return run(full, env);
  }

  std::vector<std::string> trace_files() const {
    std::vector<std::string> files;
    if (DIR* d = opendir(dir_.c_str())) {
      while (dirent* e = readdir(d))
        if (std::strstr(e->d_name, ".trace") != nullptr) files.push_back(dir_ + "/" + e->d_name);
      closedir(d);
    }
    return files;
  }

  Trace read(const std::string& path) {
    Trace t;
    std::string error;
    auto reader = gpumem::trace::Reader::open(path, &error);
    EXPECT_NE(reader, nullptr) << error;
    if (!reader) return t;
    t.header = reader->header();
    gpumem::trace::Event ev;
    while (reader->next(&ev)) {
      if (ev.rec.op == static_cast<uint16_t>(Op::string))
        t.strings[ev.rec.aux] = std::string(ev.payload);
      else if (ev.rec.op == static_cast<uint16_t>(Op::stack))
        ++t.stacks;
      else
        t.records.push_back(ev.rec);
    }
    t.stats = reader->stats();
    return t;
  }

  Trace trace_of(pid_t pid) { return read(dir_ + "/t-" + std::to_string(pid) + ".trace"); }
  Trace last_trace() { return trace_of(last_pid_); }

  std::string dir_;
  pid_t last_pid_ = -1;
  bool bare_env_ = false;
};

uint64_t sum_bytes(const std::vector<Record>& rs) {
  uint64_t s = 0;
  for (const auto& r : rs) s += r.bytes;
  return s;
}

TEST_F(Interpose, RuntimeMallocFreeRecordedOnceEach) {
  Outcome r = prog({"runtime"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  Trace t = last_trace();
  auto allocs = t.where(Op::alloc);
  ASSERT_EQ(allocs.size(), 2u);
  EXPECT_EQ(allocs[0].api, static_cast<uint16_t>(Api::cudaMalloc));
  EXPECT_EQ(allocs[0].bytes, 1u << 20);
  EXPECT_EQ(allocs[1].bytes, 3u << 20);
  EXPECT_EQ(lookup_of(allocs[0]), Lookup::direct);
  EXPECT_EQ(allocs[0].device, 0);
  EXPECT_EQ(allocs[0].result, 0);
  // Counted once: the runtime's own cuMemAlloc_v2/cuMemFree_v2 calls are not records.
  EXPECT_EQ(t.count(Op::alloc, Api::cuMemAlloc), 0u);
  EXPECT_EQ(t.count(Op::free, Api::cuMemFree), 0u);
  auto frees = t.where(Op::free, Api::cudaFree);
  ASSERT_EQ(frees.size(), 2u);  // cudaFree(0) is no event
  EXPECT_EQ(frees[0].address, allocs[0].address);
  EXPECT_EQ(frees[0].bytes, 1u << 20);
  EXPECT_EQ(frees[1].bytes, 3u << 20);
  EXPECT_EQ(t.count(Op::anomaly), 0u);
  // Header: pid, command line, simulated device with its name and capacity.
  EXPECT_EQ(t.header.pid, static_cast<uint32_t>(last_pid_));
  EXPECT_NE(std::string(t.header.command).find("interpose_prog runtime"), std::string::npos);
  // Simulated exactly when simcuda is what LD_LIBRARY_PATH found (the suite also runs on a GPU).
  const bool sim = access(GPUMEM_SIMCUDA_DIR "/libcuda.so.1", F_OK) == 0;
  EXPECT_EQ((t.header.flags & gpumem::trace::kHeaderSimulated) != 0, sim);
  EXPECT_NE(t.header.flags & gpumem::trace::kHeaderClosed, 0u);
  EXPECT_GE(t.header.device_count, 1u);
  EXPECT_GT(t.header.devices[0].capacity_bytes, 0u);
  EXPECT_NE(std::string(t.header.config).find("GPUMEM_TRACE="), std::string::npos);
}

TEST_F(Interpose, RuntimeFamily) {
  Outcome r = prog({"runtime_family"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  auto one = [&](Api api, uint64_t bytes, MemKind kind) {
    auto rs = t.where(Op::alloc, api);
    ASSERT_EQ(rs.size(), 1u) << gpumem::trace::api_name(api);
    EXPECT_EQ(rs[0].bytes, bytes) << gpumem::trace::api_name(api);
    EXPECT_EQ(gpumem::trace::mem_kind(rs[0]), kind) << gpumem::trace::api_name(api);
  };
  one(Api::cudaMallocAsync, 4096, MemKind::device);
  one(Api::cudaMallocFromPoolAsync, 8192, MemKind::device);
  one(Api::cudaMallocManaged, 16384, MemKind::managed);
  one(Api::cudaMallocPitch, 1000, MemKind::device);
  one(Api::cudaMalloc3D, 512, MemKind::device);
  one(Api::cudaMallocHost, 1000, MemKind::pinned_host);
  one(Api::cudaHostAlloc, 2000, MemKind::pinned_host);
  EXPECT_EQ(t.where(Op::alloc, Api::cudaMallocHost)[0].device, -1);
  EXPECT_NE(t.where(Op::alloc, Api::cudaMallocAsync)[0].flags & gpumem::trace::kFlagAsync, 0);
  EXPECT_EQ(t.count(Op::free, Api::cudaFreeAsync), 2u);
  EXPECT_EQ(t.count(Op::free, Api::cudaFree), 3u);
  EXPECT_EQ(t.count(Op::free, Api::cudaFreeHost), 2u);
  EXPECT_EQ(gpumem::trace::mem_kind(t.where(Op::free, Api::cudaFreeHost)[0]), MemKind::pinned_host);
  EXPECT_EQ(t.count(Op::alloc), 7u);
  EXPECT_EQ(t.count(Op::free), 7u);
  EXPECT_EQ(sum_bytes(t.where(Op::free)), sum_bytes(t.where(Op::alloc)));
  auto info = t.where(Op::meminfo, Api::cudaMemGetInfo);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_GT(info[0].bytes, 0u);           // total
  EXPECT_LE(info[0].aux, info[0].bytes);  // free <= total
  EXPECT_EQ(t.count(Op::anomaly), 0u);
  EXPECT_EQ(t.count(Op::alloc, Api::cuMemAlloc) + t.count(Op::alloc, Api::cuMemAllocAsync), 0u);
}

TEST_F(Interpose, DriverBoundDirectly) {
  Outcome r = prog({"driver"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  auto a = t.where(Op::alloc, Api::cuMemAlloc);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].bytes, 2u << 20);
  EXPECT_EQ(lookup_of(a[0]), Lookup::direct);
  ASSERT_EQ(t.count(Op::alloc, Api::cuMemAllocPitch), 1u);
  EXPECT_EQ(t.where(Op::alloc, Api::cuMemAllocPitch)[0].bytes, 1024u);
  ASSERT_EQ(t.count(Op::alloc, Api::cuMemAllocManaged), 1u);
  EXPECT_EQ(t.count(Op::free, Api::cuMemFree), 3u);
  EXPECT_EQ(t.count(Op::meminfo, Api::cuMemGetInfo), 1u);
  auto total = t.where(Op::meminfo, Api::cuDeviceTotalMem);
  ASSERT_EQ(total.size(), 1u);
  EXPECT_EQ(total[0].bytes, t.header.devices[0].capacity_bytes);
}

TEST_F(Interpose, DriverThroughDlopenAndDlsym) {
  Outcome r = prog({"dlsym"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  auto a = t.where(Op::alloc, Api::cuMemAlloc);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].bytes, 5u << 20);
  EXPECT_EQ(lookup_of(a[0]), Lookup::dlsym);
  auto f = t.where(Op::free, Api::cuMemFree);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(lookup_of(f[0]), Lookup::dlsym);
}

TEST_F(Interpose, DriverThroughCuGetProcAddress) {
  Outcome r = prog({"resolver"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  auto a = t.where(Op::alloc, Api::cuMemAlloc);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].bytes, 6u << 20);
  EXPECT_EQ(lookup_of(a[0]), Lookup::resolver);
  auto as = t.where(Op::alloc, Api::cuMemAllocAsync);
  ASSERT_EQ(as.size(), 1u);  // the _ptsz variant, asked for with the per-thread flag
  EXPECT_EQ(as[0].bytes, 7u << 20);
  EXPECT_EQ(lookup_of(as[0]), Lookup::resolver);
  EXPECT_EQ(t.count(Op::free, Api::cuMemFree), 1u);
  EXPECT_EQ(t.count(Op::free, Api::cuMemFreeAsync), 1u);
}

TEST_F(Interpose, DriverThroughCudaGetDriverEntryPointByVersion) {
  Outcome r = prog({"entry_point"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  auto a = t.where(Op::alloc, Api::cuMemAlloc);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].bytes, 9u << 20);
  EXPECT_EQ(lookup_of(a[0]), Lookup::resolver);
  EXPECT_EQ(t.count(Op::free, Api::cuMemFree), 1u);
  EXPECT_EQ(t.count(Op::alloc), 1u);
}

TEST_F(Interpose, AsyncPools) {
  Outcome r = prog({"async"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  auto a = t.where(Op::alloc, Api::cuMemAllocAsync);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].bytes, 1u << 16);
  EXPECT_NE(a[0].stream, 0u);
  auto p = t.where(Op::alloc, Api::cuMemAllocFromPoolAsync);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].bytes, 1u << 17);
  EXPECT_EQ(t.count(Op::free, Api::cuMemFreeAsync), 2u);
  EXPECT_EQ(t.count(Op::trim, Api::cuMemPoolTrimTo), 1u);
}

TEST_F(Interpose, VirtualMemoryManagement) {
  Outcome r = prog({"vmm"});
  ASSERT_EQ(r.status, 0) << r.err;
  const uint64_t gran = std::stoull(r.out.substr(r.out.find(' ') + 1));
  Trace t = last_trace();
  auto c = t.where(Op::alloc, Api::cuMemCreate);
  ASSERT_GE(c.size(), 1u);
  EXPECT_EQ(c[0].bytes, gran);
  EXPECT_EQ(c[0].device, 0);
  EXPECT_EQ(gpumem::trace::mem_kind(c[0]), MemKind::physical);
  auto m = t.where(Op::map, Api::cuMemMap);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].aux, c[0].address);  // the handle
  EXPECT_EQ(m[0].bytes, gran);
  EXPECT_EQ(t.count(Op::unmap, Api::cuMemUnmap), 1u);
  auto rel = t.where(Op::free, Api::cuMemRelease);
  ASSERT_EQ(rel.size(), c.size());
  EXPECT_EQ(rel[0].address, c[0].address);
  EXPECT_EQ(rel[0].bytes, gran);
  EXPECT_EQ(rel[0].device, 0);
  EXPECT_EQ(t.count(Op::anomaly), 0u);
}

// CUDA keeps a cuMemCreate allocation alive until it is released AND unmapped (issue 27, item 1).
// Three 2 MiB handles, each released right after mapping: 6 MiB live until the unmaps, each
// freed (api cuMemUnmap) by its unmap; then 2 MiB created and released unmapped.
constexpr uint64_t kTwoMiB = uint64_t{2} << 20;

uint64_t running_peak(const Trace& t) {
  uint64_t live = 0, peak = 0;
  for (const auto& r : t.records) {
    if (r.op == static_cast<uint16_t>(Op::alloc)) peak = std::max(peak, live += r.bytes);
    if (r.op == static_cast<uint16_t>(Op::free)) live -= r.bytes;
  }
  return peak;
}

TEST_F(Interpose, VmmReleasedWhileMappedStaysLiveUntilUnmapped) {
  Outcome r = prog({"vmm_release_mapped"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "create 0 0 create 1 0 create 2 0\n"
            "stats allocs 3 frees 0 failed 0 allocated 6291456 peak_allocated 6291456 reserved "
            "6291456 peak_reserved 6291456 largest_free 0 limit 0\n"
            "stats allocs 4 frees 4 failed 0 allocated 0 peak_allocated 6291456 reserved 0 "
            "peak_reserved 6291456 largest_free 0 limit 0\n");
  Trace t = last_trace();
  auto allocs = t.where(Op::alloc, Api::cuMemCreate);
  ASSERT_EQ(allocs.size(), 4u);
  for (const auto& a : allocs) EXPECT_EQ(a.bytes, kTwoMiB);
  auto by_unmap = t.where(Op::free, Api::cuMemUnmap);
  ASSERT_EQ(by_unmap.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(by_unmap[i].address, allocs[i].address);  // the handle
    EXPECT_EQ(by_unmap[i].bytes, kTwoMiB);
    EXPECT_EQ(by_unmap[i].device, 0);
  }
  auto by_release = t.where(Op::free, Api::cuMemRelease);
  ASSERT_EQ(by_release.size(), 1u);  // the fourth handle, never mapped
  EXPECT_EQ(by_release[0].address, allocs[3].address);
  EXPECT_EQ(running_peak(t), 3 * kTwoMiB);
  EXPECT_EQ(t.count(Op::anomaly), 0u);
}

// One cuMemUnmap ends 80 released handles, more than the hook takes in one batch (64): every one
// is freed, recorded and given back to the cap.
TEST_F(Interpose, VmmOneUnmapFreesEveryReleasedHandleInItsRange) {
  Outcome r = prog({"vmm_one_unmap_many"}, {"GPUMEM_LIMIT=160MiB"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "stats allocs 80 frees 0 failed 0 allocated 167772160 peak_allocated 167772160 "
            "reserved 167772160 peak_reserved 167772160 largest_free 0 limit 167772160\n"
            "stats allocs 80 frees 80 failed 0 allocated 0 peak_allocated 167772160 reserved 0 "
            "peak_reserved 167772160 largest_free 0 limit 167772160\n");
  Trace t = last_trace();
  auto allocs = t.where(Op::alloc, Api::cuMemCreate);
  auto by_unmap = t.where(Op::free, Api::cuMemUnmap);
  ASSERT_EQ(allocs.size(), 80u);
  ASSERT_EQ(by_unmap.size(), 80u);
  std::set<uint64_t> created, freed;
  for (size_t i = 0; i < 80; ++i) {
    created.insert(allocs[i].address);
    freed.insert(by_unmap[i].address);
    EXPECT_EQ(by_unmap[i].bytes, kTwoMiB);
  }
  EXPECT_EQ(freed, created);
  EXPECT_EQ(t.count(Op::free, Api::cuMemRelease), 0u);
  EXPECT_EQ(t.count(Op::anomaly), 0u);
}

// Under a 4 MiB cap the third 2 MiB handle is refused while the first two are still mapped,
// exactly as on a device of 4 MiB; the unmaps give the cap its bytes back.
TEST_F(Interpose, VmmCapChargesMappedMemoryAsADeviceOfThatSize) {
  const std::string expected =
      "create 0 0 create 1 0 create 2 2\n"
      "stats allocs 2 frees 0 failed 1 allocated 4194304 peak_allocated 4194304 reserved 4194304 "
      "peak_reserved 4194304 largest_free 0 limit %\n"
      "stats allocs 3 frees 3 failed 1 allocated 0 peak_allocated 4194304 reserved 0 "
      "peak_reserved 4194304 largest_free 0 limit %\n";
  auto with_limit = [&](const char* limit) {
    std::string s = expected;
    for (size_t at; (at = s.find('%')) != std::string::npos;) s.replace(at, 1, limit);
    return s;
  };
  Outcome capped = prog({"vmm_release_mapped"}, {"GPUMEM_LIMIT=4MiB"});
  ASSERT_EQ(capped.status, 0) << capped.err;
  EXPECT_EQ(capped.out, with_limit("4194304"));
  Trace t = last_trace();
  auto failed = t.where(Op::alloc_failed, Api::cuMemCreate);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].bytes, kTwoMiB);
  EXPECT_EQ(failed[0].aux, 2 * kTwoMiB);  // in use as the cap counts it: both mapped handles
  EXPECT_EQ(failed[0].result, 2);         // CUDA_ERROR_OUT_OF_MEMORY
  EXPECT_EQ(running_peak(t), 2 * kTwoMiB);
  EXPECT_EQ(t.count(Op::free, Api::cuMemUnmap), 2u);
  EXPECT_EQ(t.count(Op::anomaly), 0u);

  Outcome device = prog({"vmm_release_mapped"}, {"SIMCUDA_MEMORY=4MiB"});
  ASSERT_EQ(device.status, 0) << device.err;
  EXPECT_EQ(device.out, with_limit("0"));
}

// NCCL's free: retain the handle from the address, release it, unmap, release the creator's
// reference (issue 27, item 2). One allocation, freed at the last release, no anomaly.
TEST_F(Interpose, VmmRetainedHandleIsFreedAtTheLastRelease) {
  Outcome r = prog({"vmm_nccl"});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string live =
      "stats allocs 1 frees 0 failed 0 allocated 4194304 peak_allocated 4194304 reserved 4194304 "
      "peak_reserved 4194304 largest_free 0 limit 0\n";
  EXPECT_EQ(r.out, live + live +
                       "stats allocs 1 frees 1 failed 0 allocated 0 peak_allocated 4194304 "
                       "reserved 0 peak_reserved 4194304 largest_free 0 limit 0\n");
  Trace t = last_trace();
  auto allocs = t.where(Op::alloc, Api::cuMemCreate);
  ASSERT_EQ(allocs.size(), 1u);
  EXPECT_EQ(allocs[0].bytes, 2 * kTwoMiB);
  auto frees = t.where(Op::free);
  ASSERT_EQ(frees.size(), 1u);
  EXPECT_EQ(frees[0].api, static_cast<uint16_t>(Api::cuMemRelease));
  EXPECT_EQ(frees[0].address, allocs[0].address);
  EXPECT_EQ(frees[0].bytes, 2 * kTwoMiB);
  EXPECT_EQ(frees[0].device, 0);
  // After the unmap: the last release is the last event.
  ASSERT_EQ(t.count(Op::unmap, Api::cuMemUnmap), 1u);
  EXPECT_GT(frees[0].t_ns, t.where(Op::unmap)[0].t_ns);
  EXPECT_EQ(t.count(Op::anomaly), 0u);
}

// cuMemAllocHost_v2, cuMemHostAlloc and cuMemFreeHost on every lookup path (issue 27, item 3):
// pinned host memory, device -1, as cudaMallocHost.
TEST_F(Interpose, DriverPinnedHostMemoryOnEveryLookupPath) {
  Outcome r = prog({"driver_pinned"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  const Lookup paths[3] = {Lookup::direct, Lookup::dlsym, Lookup::resolver};
  auto alloc_host = t.where(Op::alloc, Api::cuMemAllocHost);
  auto host_alloc = t.where(Op::alloc, Api::cuMemHostAlloc);
  auto frees = t.where(Op::free, Api::cuMemFreeHost);
  ASSERT_EQ(alloc_host.size(), 3u);
  ASSERT_EQ(host_alloc.size(), 3u);
  ASSERT_EQ(frees.size(), 6u);
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(alloc_host[i].bytes, (2 * i + 1) << 10);
    EXPECT_EQ(host_alloc[i].bytes, (2 * i + 2) << 10);
    for (const Record* a : {&alloc_host[i], &host_alloc[i]}) {
      EXPECT_EQ(a->device, -1);
      EXPECT_EQ(gpumem::trace::mem_kind(*a), MemKind::pinned_host);
      EXPECT_EQ(lookup_of(*a), paths[i]);
    }
    EXPECT_EQ(frees[2 * i].address, alloc_host[i].address);
    EXPECT_EQ(frees[2 * i].bytes, alloc_host[i].bytes);
    EXPECT_EQ(frees[2 * i + 1].address, host_alloc[i].address);
    EXPECT_EQ(frees[2 * i + 1].bytes, host_alloc[i].bytes);
    EXPECT_EQ(lookup_of(frees[2 * i]), paths[i]);
    EXPECT_EQ(gpumem::trace::mem_kind(frees[2 * i]), MemKind::pinned_host);
  }
  EXPECT_EQ(t.count(Op::alloc), 6u);
  EXPECT_EQ(t.count(Op::anomaly), 0u);
}

TEST_F(Interpose, MisuseNeverCrashesAndIsRecorded) {
  Outcome r = prog({"misuse"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  size_t null_out = 0, unknown = 0;
  for (const auto& a : t.where(Op::anomaly)) {
    if (a.aux == static_cast<uint64_t>(gpumem::trace::AnomalyKind::null_out_param)) ++null_out;
    if (a.aux == static_cast<uint64_t>(gpumem::trace::AnomalyKind::free_unknown)) ++unknown;
  }
  EXPECT_EQ(null_out, 4u);
  EXPECT_EQ(unknown, 2u);
  EXPECT_EQ(t.count(Op::alloc), 0u);
  EXPECT_EQ(t.count(Op::free), 0u);
}

TEST_F(Interpose, MarksThroughThePublicApi) {
  Outcome r = prog({"marks"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  auto b = t.where(Op::mark_begin);
  auto e = t.where(Op::mark_end);
  auto m = t.where(Op::mark);
  ASSERT_EQ(b.size(), 1u);
  ASSERT_EQ(e.size(), 1u);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(t.strings[b[0].aux], "epoch");
  EXPECT_EQ(e[0].aux, b[0].aux);
  EXPECT_EQ(t.strings[m[0].aux], "checkpoint");
  // Without the preload the same program runs and the markers do nothing.
  Outcome plain = run({INTERPOSE_PROG, "marks"}, {}, false);
  EXPECT_EQ(plain.status, 0) << plain.err;
}

TEST_F(Interpose, ManyThreadsExactCountsAndBytes) {
  const bool long_run = std::getenv("GPUMEM_TEST_LONG") != nullptr &&
                        std::string(std::getenv("GPUMEM_TEST_LONG")) == "1";
  // Under a sanitizer a quarter of the calls: ThreadSanitizer judges the order of the accesses,
  // which 16 threads of 5000 iterations exercise as well (20000 took 53 s in the TSan stage).
  const int threads = 16, iterations = long_run ? 100000 : gpumem::test::kSanitized ? 5000 : 20000;
  Outcome r = prog({"threads", std::to_string(threads), std::to_string(iterations)});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  uint64_t per_thread_bytes = 0;
  for (int i = 0; i < iterations; ++i) per_thread_bytes += 256u * static_cast<uint64_t>(i % 13 + 1);
  const uint64_t n = static_cast<uint64_t>(threads) * iterations;
  EXPECT_EQ(t.count(Op::alloc, Api::cudaMalloc), n / 2);
  EXPECT_EQ(t.count(Op::alloc, Api::cuMemAlloc), n / 2);
  EXPECT_EQ(t.count(Op::free, Api::cudaFree), n / 2);
  EXPECT_EQ(t.count(Op::free, Api::cuMemFree), n / 2);
  EXPECT_EQ(sum_bytes(t.where(Op::alloc)), per_thread_bytes * threads);
  EXPECT_EQ(sum_bytes(t.where(Op::free)), per_thread_bytes * threads);
  EXPECT_EQ(t.count(Op::anomaly), 0u);
  EXPECT_EQ(t.count(Op::alloc_failed), 0u);
  EXPECT_EQ(t.stats.torn, 0u);
}

TEST_F(Interpose, SigkillLosesNoReturnedCall) {
  const std::string counter_path = dir_ + "/progress.bin";
  {
    int fd = ::open(counter_path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT_EQ(ftruncate(fd, 8), 0);
    ::close(fd);
  }
  int fd = ::open(counter_path.c_str(), O_RDWR);
  auto* counter = static_cast<std::atomic<uint64_t>*>(
      mmap(nullptr, 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(counter, MAP_FAILED);
  std::mt19937_64 rng(std::random_device{}());
  const uint64_t target = 1000 + rng() % 20000;
  int devnull = ::open("/dev/null", O_WRONLY);
  pid_t pid = spawn({INTERPOSE_PROG, "progress", counter_path}, {}, devnull, devnull);
  ::close(devnull);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (counter->load() < target && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  const uint64_t returned = counter->load();
  ASSERT_GE(returned, target) << "the program did not make progress";
  Trace t = trace_of(pid);
  const uint64_t allocs = t.count(Op::alloc, Api::cudaMalloc);
  EXPECT_GE(allocs, returned);      // every call that returned is in the trace
  EXPECT_LE(allocs, returned + 1);  // at most the one in flight beyond it
  EXPECT_TRUE(t.stats.truncated);   // never closed
  munmap(counter, 8);
  ::close(fd);
}

TEST_F(Interpose, ForkedChildWritesItsOwnTrace) {
  Outcome r = prog({"fork"});
  ASSERT_EQ(r.status, 0) << r.err;
  const pid_t child = std::atoi(r.out.substr(r.out.find(' ') + 1).c_str());
  ASSERT_GT(child, 0);
  Trace parent = last_trace();
  auto pa = parent.where(Op::alloc, Api::cudaMalloc);
  ASSERT_EQ(pa.size(), 2u);
  EXPECT_EQ(pa[0].bytes, 1u << 20);
  EXPECT_EQ(pa[1].bytes, 3u << 20);
  const bool child_ok = r.out.find(" OK") != std::string::npos;
  Trace kid = trace_of(child);
  auto ka = kid.where(child_ok ? Op::alloc : Op::alloc_failed, Api::cudaMalloc);
  ASSERT_EQ(ka.size(), 1u);
  EXPECT_EQ(ka[0].bytes, 2u << 20);
  EXPECT_EQ(kid.count(Op::alloc) + kid.count(Op::alloc_failed), 1u);  // nothing of the parent's
  EXPECT_EQ(kid.header.pid, static_cast<uint32_t>(child));
  EXPECT_EQ(kid.header.parent_pid, static_cast<uint32_t>(last_pid_));
  EXPECT_EQ(trace_files().size(), 2u);
}

TEST_F(Interpose, StacksDeduplicatedPerCallSite) {
  Outcome r = prog({"stacks"}, {"GPUMEM_STACKS=1"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  EXPECT_NE(t.header.flags & gpumem::trace::kHeaderStacks, 0u);
  auto a = t.where(Op::alloc, Api::cudaMalloc);
  ASSERT_EQ(a.size(), 4u);
  for (const auto& x : a) EXPECT_NE(x.site, 0u);
  EXPECT_EQ(a[0].site, a[1].site);  // same call site, same stack id
  EXPECT_EQ(a[2].site, a[3].site);
  EXPECT_NE(a[0].site, a[2].site);
  EXPECT_GE(t.stacks, 2u);
  bool named = false;
  for (const auto& s : t.where(Op::symbol))
    if (t.strings[s.aux].find("interpose_site_a") != std::string::npos) named = true;
  EXPECT_TRUE(named) << "no symbol record names interpose_site_a";
}

TEST_F(Interpose, ProgramWithoutCudaLeavesNoTrace) {
  Outcome r = run({INTERPOSE_NOCUDA});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "ok\n");
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(trace_files().empty());
}

// The runtime's functions are cached for the process's life, so the library they came from must
// not be unloaded under them: a private libcudart closed and loaded again still works, and both
// allocations are recorded. Before: SIGSEGV at the second (the cached pointer into the unloaded
// library).
TEST_F(Interpose, PrivateRuntimeClosedAndLoadedAgainKeepsWorking) {
  Outcome r = run({INTERPOSE_CUDART_RELOAD});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "first 0\nstill_loaded 1\nsecond 0\n");
  Trace t = last_trace();
  EXPECT_EQ(t.where(Op::alloc, Api::cudaMalloc).size(), 2u);
  EXPECT_EQ(t.where(Op::free, Api::cudaFree).size(), 2u);
}

// The thread whose first CUDA call opens the trace may have the smallest stack POSIX allows
// (PTHREAD_STACK_MIN, 16 KiB): the open keeps its buffers (about 40 KiB: the header, paths) off
// that stack. Before, a 40 KiB stack that runs cudaMalloc without gpumem died of SIGSEGV with it.
TEST_F(Interpose, FirstCallFromAThreadWithTheSmallestStackOpensTheTrace) {
  // A sanitizer's frames are larger: the same program without the preload says whether the size
  // holds the program itself.
  const std::string kib = gpumem::test::kSanitized ? "64" : "16";
  const Outcome plain = run({INTERPOSE_PROG, "small_stack", kib}, {}, false);
  if (plain.status != 0) GTEST_SKIP() << "the program alone needs more than " << kib << " KiB here";
  for (const std::vector<std::string>& env : {std::vector<std::string>{},
                                              {"GPUMEM_STACKS=1"},
                                              {"GPUMEM_TRACE_FORMAT=compact"},
                                              {"GPUMEM_POOL=growth", "GPUMEM_LOG=info"}}) {
    SCOPED_TRACE(env.empty() ? "defaults" : env[0]);
    Outcome r = prog({"small_stack", kib}, env);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "0 0\n");
    Trace t = last_trace();
    EXPECT_EQ(t.where(Op::alloc, Api::cudaMalloc).size(), 1u);
    EXPECT_EQ(t.where(Op::free, Api::cudaFree).size(), 1u);
  }
}

TEST_F(Interpose, UnwritableTracePathWarnsOnceAndRunsOn) {
  Outcome r = prog({"runtime"}, {"GPUMEM_TRACE=/nonexistent-dir/x/t-%p.trace"});
  EXPECT_EQ(r.status, 0) << r.err;
  size_t lines = 0;
  for (char c : r.err) lines += c == '\n';
  EXPECT_EQ(lines, 1u) << r.err;
  EXPECT_NE(r.err.find("gpumem: "), std::string::npos);
  EXPECT_NE(r.err.find("/nonexistent-dir/x/"), std::string::npos);
  EXPECT_NE(r.err.find("GPUMEM_TRACE"), std::string::npos);
}

TEST_F(Interpose, TraceTemplateExpandsRankHostAndPid) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  Outcome r =
      prog({"runtime"}, {"GPUMEM_TRACE=" + dir_ + "/r%r-%h-%p-%%.trace", "RANK=", "LOCAL_RANK=3"});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string expected = dir_ + "/r3-" + host + "-" + std::to_string(last_pid_) + "-%.trace";
  Trace t = read(expected);
  EXPECT_EQ(t.count(Op::alloc), 2u);
  EXPECT_EQ(t.header.rank, 3);
}

TEST_F(Interpose, TraceOffWritesNothing) {
  Outcome r = prog({"runtime"}, {"GPUMEM_TRACE=off"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(trace_files().empty());
}

TEST_F(Interpose, ExistingTraceIsNeverClobbered) {
  Outcome r = prog({"runtime"}, {"GPUMEM_TRACE=" + dir_ + "/fixed.trace"});
  ASSERT_EQ(r.status, 0) << r.err;
  r = prog({"runtime"}, {"GPUMEM_TRACE=" + dir_ + "/fixed.trace"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace first = read(dir_ + "/fixed.trace");
  Trace second = read(dir_ + "/fixed.trace.1");
  EXPECT_EQ(first.count(Op::alloc), 2u);
  EXPECT_EQ(second.count(Op::alloc), 2u);
  EXPECT_NE(first.header.pid, second.header.pid);
}

struct BadValue {
  const char* assignment;
  const char* variable;
};

TEST_F(Interpose, BadSettingsExitWithStatus2AndSayWhy) {
  const BadValue cases[] = {
      {"GPUMEM_STACKS=yes", "GPUMEM_STACKS"},     {"GPUMEM_LOG=loud", "GPUMEM_LOG"},
      {"GPUMEM_POOL=magic", "GPUMEM_POOL"},       {"GPUMEM_LIMIT=0", "GPUMEM_LIMIT"},
      {"GPUMEM_LIMIT=8 parsecs", "GPUMEM_LIMIT"}, {"GPUMEM_LIMIT_1=lots", "GPUMEM_LIMIT_1"},
      {"GPUMEM_LIMIT=150%", "GPUMEM_LIMIT"},      {"GPUMEM_POOL_SIZE=0", "GPUMEM_POOL_SIZE"},
  };
  for (const auto& c : cases) {
    Outcome r = prog({"runtime"}, {c.assignment});
    EXPECT_EQ(r.status, 2) << c.assignment;
    EXPECT_EQ(r.err.rfind("gpumem: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.variable), std::string::npos) << r.err;
    const std::string value = std::string(c.assignment).substr(std::strlen(c.variable) + 1);
    EXPECT_NE(r.err.find("'" + value + "'"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("accepted"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_TRUE(trace_files().empty());
  Outcome ok = prog({"runtime"}, {"GPUMEM_LIMIT=60%", "GPUMEM_LIMIT_0=1.5GiB", "GPUMEM_POOL=growth",
                                  "GPUMEM_POOL_SIZE=512MiB", "GPUMEM_LOG=error"});
  EXPECT_EQ(ok.status, 0) << ok.err;
}

TEST_F(Interpose, GpumemRunSetsThePreloadAndReturnsTheExitStatus) {
  if (access(GPUMEM_SIMCUDA_DIR "/libcuda.so.1", F_OK) != 0)
    GTEST_SKIP() << "needs simcuda (--device sim)";
  bare_env_ = true;
  const std::string tmpl = dir_ + "/c-%p.trace";
  Outcome r =
      run({GPUMEM_CLI, "run", "--device", "sim", "--trace", tmpl, "--", INTERPOSE_PROG, "runtime"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto files = trace_files();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_NE(r.err.find("gpumem run: trace: " + files[0]), std::string::npos) << r.err;
  Trace t = read(files[0]);
  EXPECT_EQ(t.count(Op::alloc, Api::cudaMalloc), 2u);
  EXPECT_NE(std::string(t.header.config).find("GPUMEM_TRACE=" + tmpl), std::string::npos);
  // The program's own exit status comes back, and a bad setting stops it with status 2.
  Outcome bad =
      run({GPUMEM_CLI, "run", "--device", "sim", "--", INTERPOSE_PROG, "no-such-subcommand"});
  EXPECT_EQ(bad.status, 2) << bad.err;
  Outcome limit =
      run({GPUMEM_CLI, "run", "--device", "sim", "--limit", "0", "--", INTERPOSE_PROG, "runtime"});
  EXPECT_EQ(limit.status, 2) << limit.err;
  EXPECT_NE(limit.err.find("GPUMEM_LIMIT='0'"), std::string::npos) << limit.err;
  Outcome stacks = run({GPUMEM_CLI, "run", "--device", "sim", "--stacks", "--trace",
                        dir_ + "/s-%p.trace", "--", INTERPOSE_PROG, "stacks"});
  ASSERT_EQ(stacks.status, 0) << stacks.err;
}

// A program run in the current folder (the default trace path, "gpumem-PID.trace"): its trace is
// named once, not again as "./gpumem-PID.trace" of another process of its tree.
TEST_F(Interpose, GpumemRunNamesTheProgramsOwnTraceOnce) {
  if (access(GPUMEM_SIMCUDA_DIR "/libcuda.so.1", F_OK) != 0)
    GTEST_SKIP() << "needs simcuda (--device sim)";
  bare_env_ = true;
  const std::string cwd = dir_ + "/cwd";
  ASSERT_EQ(::mkdir(cwd.c_str(), 0700), 0);
  Outcome r = run(
      {"/bin/sh", "-c",
       "cd '" + cwd + "' && exec " GPUMEM_CLI " run --device sim -- " INTERPOSE_PROG " runtime"});
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> files;
  for (const auto& f : std::filesystem::directory_iterator(cwd))
    if (f.path().extension() == ".trace") files.push_back(f.path().filename().string());
  ASSERT_EQ(files.size(), 1u) << r.err;
  EXPECT_NE(r.err.find("gpumem run: trace: " + files[0] + "\n"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("trace of process"), std::string::npos) << r.err;
}

// A launcher (sh, no CUDA, no trace) starts a program that forks two workers ending with _exit
// and an exec'd child (issue 27, items 6 and 7): `gpumem run` names all four traces, linked by
// their headers' parent pids, reports them together, and none reads as crashed.
TEST_F(Interpose, GpumemRunNamesAndReportsEveryTraceOfTheProcessTree) {
  if (access(GPUMEM_SIMCUDA_DIR "/libcuda.so.1", F_OK) != 0)
    GTEST_SKIP() << "needs simcuda (--device sim)";
  bare_env_ = true;
  const std::string report = dir_ + "/report";
  Outcome r = run({GPUMEM_CLI, "run", "--device", "sim", "--report", report, "--", "/bin/sh", "-c",
                   std::string(INTERPOSE_PROG) + " tree; true"});
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> files;
  for (const auto& f : std::filesystem::directory_iterator(report))
    if (f.path().extension() == ".trace") files.push_back(f.path().string());
  ASSERT_EQ(files.size(), 4u) << r.err;
  std::map<uint64_t, uint32_t> by_size;  // MiB allocated -> pid
  std::map<uint32_t, uint32_t> parent_of;
  for (const std::string& f : files) {
    Trace t = read(f);
    EXPECT_FALSE(t.stats.truncated) << f;
    auto a = t.where(Op::alloc, Api::cudaMalloc);
    ASSERT_EQ(a.size(), 1u) << f;
    by_size[a[0].bytes >> 20] = t.header.pid;
    parent_of[t.header.pid] = t.header.parent_pid;
    EXPECT_NE(r.err.find(f), std::string::npos) << "not named: " << f << "\n" << r.err;
  }
  ASSERT_EQ(by_size.size(), 4u);
  const uint32_t program = by_size[1];
  EXPECT_EQ(parent_of[by_size[2]], program);  // forked workers
  EXPECT_EQ(parent_of[by_size[3]], program);
  EXPECT_EQ(parent_of[by_size[4]], program);  // forked, then exec'd
  // The program is sh's child: no trace of its own under the expected name, so every one of the
  // four is listed as a process of the tree, with its parent.
  for (uint64_t mib : {1, 2, 3, 4}) {
    const uint32_t pid = by_size[mib];
    EXPECT_NE(r.err.find("gpumem run: trace of process " + std::to_string(pid) + " (started by " +
                         std::to_string(parent_of[pid]) + "): "),
              std::string::npos)
        << r.err;
  }
  std::ifstream in(report + "/report.json");
  const std::string json((std::istreambuf_iterator<char>(in)), {});
  size_t traces = 0;
  for (size_t at = 0; (at = json.find("\"truncated\": false", at)) != std::string::npos; ++at)
    ++traces;
  EXPECT_EQ(traces, 4u) << json.substr(0, 3000);
  EXPECT_EQ(json.find("\"truncated\": true"), std::string::npos);
  EXPECT_EQ(r.err.find("crashed"), std::string::npos) << r.err;
}

// Two launchers deep (sh starts sh, which starts the worker): the worker's parent wrote no
// trace, so the parent-pid chain breaks; the GPUMEM_RUN line `gpumem run` leaves in every
// header of its tree still names it. A trace of another run in the same folder is not taken.
TEST_F(Interpose, GpumemRunFindsTracesBehindLaunchersWithoutTraces) {
  if (access(GPUMEM_SIMCUDA_DIR "/libcuda.so.1", F_OK) != 0)
    GTEST_SKIP() << "needs simcuda (--device sim)";
  bare_env_ = true;
  const std::string report = dir_ + "/report";
  const std::string inner = std::string(INTERPOSE_PROG) + " worker 5; true";
  Outcome first = run({GPUMEM_CLI, "run", "--device", "sim", "--report", report, "--", "/bin/sh",
                       "-c", "/bin/sh -c '" + inner + "'; true"});
  ASSERT_EQ(first.status, 0) << first.err;
  std::vector<std::string> files;
  for (const auto& f : std::filesystem::directory_iterator(report))
    if (f.path().extension() == ".trace") files.push_back(f.path().string());
  ASSERT_EQ(files.size(), 1u) << first.err;
  Trace t = read(files[0]);
  EXPECT_NE(std::string(t.header.config).find("GPUMEM_RUN="), std::string::npos);
  EXPECT_NE(first.err.find("gpumem run: trace of process " + std::to_string(t.header.pid) +
                           " (started by " + std::to_string(t.header.parent_pid) +
                           "): " + files[0] + "\n"),
            std::string::npos)
      << first.err;
  std::ifstream in(report + "/report.json");
  const std::string json((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(json.find("\"allocated_bytes\": 5242880"), std::string::npos);
  // A second run into the same folder reports its own trace only.
  Outcome second = run({GPUMEM_CLI, "run", "--device", "sim", "--report", report, "--", "/bin/sh",
                        "-c", std::string(INTERPOSE_PROG) + " worker 6; true"});
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_EQ(second.err.find(files[0]), std::string::npos) << second.err;
  std::ifstream in2(report + "/report.json");
  const std::string json2((std::istreambuf_iterator<char>(in2)), {});
  EXPECT_NE(json2.find("\"allocated_bytes\": 6291456"), std::string::npos);
  EXPECT_EQ(json2.find("\"allocated_bytes\": 5242880"), std::string::npos);
}

// ---- Policies (GPUMEM_POOL, GPUMEM_LIMIT) through the preload: exact codes and records. ----

constexpr uint64_t kMiB = uint64_t{1} << 20;

bool pooled(const Record& r) {
  return (r.flags & gpumem::trace::kFlagPooled) != 0;
}

class Policy : public Interpose {};

struct CapCase {
  const char* family;  // interpose_prog cap FAMILY
  Api api;             // the allocation API its records carry
  Lookup lookup;
  bool async;
};

// Under GPUMEM_LIMIT=8MiB each family allocates 6 MiB, is refused 4 MiB with its own
// out-of-memory code (checked by the program), then fits 4 MiB after freeing.
TEST_F(Policy, CapHoldsOnEveryAllocationFamilyWithItsOwnCode) {
  const CapCase cases[] = {
      {"runtime", Api::cudaMalloc, Lookup::direct, false},
      {"managed", Api::cudaMallocManaged, Lookup::direct, false},
      {"async_runtime", Api::cudaMallocAsync, Lookup::direct, true},
      {"driver", Api::cuMemAlloc, Lookup::direct, false},
      {"async_driver", Api::cuMemAllocAsync, Lookup::direct, true},
      {"pool_driver", Api::cuMemAllocFromPoolAsync, Lookup::direct, true},
      {"dlsym", Api::cuMemAlloc, Lookup::dlsym, false},
      {"resolver", Api::cuMemAlloc, Lookup::resolver, false},
      {"vmm", Api::cuMemCreate, Lookup::direct, false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.family);
    Outcome r = prog({"cap", c.family}, {"GPUMEM_LIMIT=8MiB"});
    ASSERT_EQ(r.status, 0) << r.err;
    Trace t = last_trace();
    auto failed = t.where(Op::alloc_failed);
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0].api, static_cast<uint16_t>(c.api));
    EXPECT_EQ(failed[0].bytes, 4 * kMiB);
    EXPECT_EQ(failed[0].aux, 6 * kMiB);  // bytes in use as the limit counts them
    EXPECT_EQ(failed[0].result, 2);      // cudaErrorMemoryAllocation == CUDA_ERROR_OUT_OF_MEMORY
    EXPECT_EQ(lookup_of(failed[0]), c.lookup);
    EXPECT_EQ((failed[0].flags & gpumem::trace::kFlagAsync) != 0, c.async);
    auto allocs = t.where(Op::alloc, c.api);
    ASSERT_EQ(allocs.size(), 2u);
    EXPECT_EQ(sum_bytes(allocs), 10 * kMiB);
    EXPECT_EQ(sum_bytes(t.where(Op::free)), 10 * kMiB);
    for (const auto& a : allocs) EXPECT_FALSE(pooled(a));  // no pool: straight to CUDA
    EXPECT_EQ(t.count(Op::anomaly), 0u);
  }
}

TEST_F(Policy, CapacityQueriesReportTheCap) {
  Outcome r = prog({"meminfo", "3"}, {"GPUMEM_LIMIT=64MiB"});
  ASSERT_EQ(r.status, 0) << r.err;
  // total = min(64 MiB, 16 GiB); free = 64 MiB - 3 MiB in use.
  EXPECT_EQ(r.out, "runtime 63963136 67108864\ndriver 63963136 67108864\ntotal 67108864\n");
  Trace t = last_trace();
  auto rt = t.where(Op::meminfo, Api::cudaMemGetInfo);
  ASSERT_EQ(rt.size(), 1u);
  EXPECT_EQ(rt[0].bytes, 64 * kMiB);
  EXPECT_EQ(rt[0].aux, 61 * kMiB);
  ASSERT_EQ(t.count(Op::meminfo, Api::cuDeviceTotalMem), 1u);
  EXPECT_EQ(t.where(Op::meminfo, Api::cuDeviceTotalMem)[0].bytes, 64 * kMiB);
  // A percentage is of the physical capacity (simcuda: 16 GiB), and without a limit the device's
  // own numbers come through.
  Outcome pct = prog({"meminfo", "3"}, {"GPUMEM_LIMIT=25%"});
  ASSERT_EQ(pct.status, 0) << pct.err;
  EXPECT_NE(pct.out.find("total 4294967296\n"), std::string::npos) << pct.out;
  Outcome none = prog({"meminfo", "3"});
  ASSERT_EQ(none.status, 0) << none.err;
  EXPECT_NE(none.out.find("total 17179869184\n"), std::string::npos) << none.out;
}

// cuMemGetInfo_v2, then 2, 4, 8 ... MiB through dlsym'ed cuMemAlloc_v2 until one fails.
TEST_F(Policy, TensorFlowStyleClientStaysInsideTheCap) {
  Outcome r = prog({"tf"}, {"GPUMEM_LIMIT=64MiB"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "total 67108864 free 67108864 sum 65011712 failed_at 67108864 code 2\n");
  Trace t = last_trace();
  EXPECT_EQ(sum_bytes(t.where(Op::alloc, Api::cuMemAlloc)), 62 * kMiB);  // 2+4+8+16+32 <= 64
  auto failed = t.where(Op::alloc_failed);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].bytes, 64 * kMiB);
  EXPECT_EQ(failed[0].aux, 62 * kMiB);
  EXPECT_EQ(failed[0].result, 2);
  EXPECT_EQ(lookup_of(failed[0]), Lookup::dlsym);
}

// With a growth pool the cap bounds the segments (the cache included): 2, 4 and 8 MiB share a
// 20 MiB segment, 16 MiB takes its own (36 MiB), and a 32 MiB segment would pass 64 MiB.
TEST_F(Policy, GrowthPoolUnderTheCapCountsItsSegments) {
  Outcome r = prog({"tf"}, {"GPUMEM_LIMIT=64MiB", "GPUMEM_POOL=growth"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "total 67108864 free 67108864 sum 31457280 failed_at 33554432 code 2\n");
  Trace t = last_trace();
  auto segments = t.where(Op::segment_reserve, Api::pool);
  ASSERT_EQ(segments.size(), 2u);
  EXPECT_EQ(segments[0].bytes, 20 * kMiB);
  EXPECT_EQ(segments[1].bytes, 16 * kMiB);
  auto failed = t.where(Op::alloc_failed);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].bytes, 32 * kMiB);
  EXPECT_EQ(failed[0].aux, 36 * kMiB);
  EXPECT_TRUE(pooled(failed[0]));
  for (const auto& a : t.where(Op::alloc)) EXPECT_TRUE(pooled(a));
}

// The preload's live-pointer table is 64 MiB of lazily committed memory. Its home slots keep
// neighbouring addresses together, so a pool handing out thousands of fresh block addresses
// touches a few pages of it, not one page per address (that cost ~1 us a fault: 5638 faults for
// these 4000 pairs with a scattering hash, 90 with the locality-keeping one).
TEST_F(Policy, FreshPoolAddressesTouchFewPagesOfTheLiveTable) {
  Outcome r = prog({"pool_faults", "4000"}, {"GPUMEM_POOL=growth", "GPUMEM_TRACE=off"});
  ASSERT_EQ(r.status, 0) << r.err;
  long faults = -1;
  ASSERT_EQ(std::sscanf(r.out.c_str(), "faults %ld", &faults), 1) << r.out;
  EXPECT_LT(faults, 1000) << "page faults while the pool walked 4000 fresh block addresses";
}

TEST_F(Policy, GrowthPoolReusesBlocksAnswersPointerQueriesAndEmptiesItsCache) {
  Outcome r = prog({"pool"}, {"GPUMEM_POOL=growth", "GPUMEM_LOG=info"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "reused 1\nrange 1 1000000\nattributes type 2 device 0\nreleased 2097152\n"
            "stats allocs 3 frees 3 failed 0 allocated 0 peak_allocated 2000000 reserved 0 "
            "peak_reserved 2097152 largest_free 0 limit 0\n");
  Trace t = last_trace();
  auto reserve = t.where(Op::segment_reserve, Api::pool);
  auto release = t.where(Op::segment_release, Api::pool);
  ASSERT_EQ(reserve.size(), 1u);
  ASSERT_EQ(release.size(), 1u);
  EXPECT_EQ(reserve[0].bytes, 2 * kMiB);  // one small segment held all three blocks
  EXPECT_EQ(release[0].bytes, 2 * kMiB);
  EXPECT_EQ(release[0].address, reserve[0].address);
  EXPECT_EQ(reserve[0].aux, 0u);  // pool id = device
  auto allocs = t.where(Op::alloc, Api::cudaMalloc);
  ASSERT_EQ(allocs.size(), 3u);
  EXPECT_EQ(allocs[2].address, allocs[0].address);  // the freed block, after a synchronization
  for (const auto& a : allocs) EXPECT_TRUE(pooled(a));
  for (const auto& f : t.where(Op::free)) EXPECT_TRUE(pooled(f));
  EXPECT_EQ(t.count(Op::free), 3u);
  // The double free is an anomaly and never reached CUDA's free (which would drop the segment).
  auto anomalies = t.where(Op::anomaly);
  ASSERT_EQ(anomalies.size(), 1u);
  EXPECT_EQ(anomalies[0].aux, static_cast<uint64_t>(gpumem::trace::AnomalyKind::free_unknown));
  auto trims = t.where(Op::trim, Api::gpumem);
  ASSERT_EQ(trims.size(), 1u);
  EXPECT_EQ(trims[0].bytes, 2 * kMiB);
  // IPC export refused with a line that says what to do; the summary line at exit.
  EXPECT_NE(r.err.find("cudaIpcGetMemHandle("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cuIpcGetMemHandle("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("GPUMEM_POOL=none"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("gpumem: device 0: allocated 0 B (peak 1.91 MiB), reserved 0 B (peak "
                       "2.00 MiB), 3 allocs, 3 frees, 0 failed"),
            std::string::npos)
      << r.err;
}

TEST_F(Policy, ReleaseAndRetryWhenTheDeviceRefusesASegment) {
  // 12 MiB cached + 24 MiB does not fit a 32 MiB device: release the cache, ask again.
  for (const char* squeeze : {"SIMCUDA_MEMORY=32MiB", "GPUMEM_LIMIT=32MiB"}) {
    SCOPED_TRACE(squeeze);
    Outcome r = prog({"retry"}, {"GPUMEM_POOL=growth", squeeze});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.rfind("second 0\n", 0), 0u) << r.out;
    Trace t = last_trace();
    std::vector<std::pair<Op, uint64_t>> seq;
    for (const auto& rec : t.records)
      if (rec.op == static_cast<uint16_t>(Op::segment_reserve) ||
          rec.op == static_cast<uint16_t>(Op::segment_release))
        seq.emplace_back(static_cast<Op>(rec.op), rec.bytes);
    const std::vector<std::pair<Op, uint64_t>> expected = {{Op::segment_reserve, 12 * kMiB},
                                                           {Op::segment_release, 12 * kMiB},
                                                           {Op::segment_reserve, 24 * kMiB}};
    EXPECT_EQ(seq, expected);
    EXPECT_EQ(t.count(Op::alloc_failed), 0u);
  }
  // A device that refuses every allocation after the first: the retry fails too.
  Outcome r = prog({"retry"}, {"GPUMEM_POOL=growth", "SIMCUDA_FAIL_ALLOC_AFTER=1"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("second 2\n", 0), 0u) << r.out;
  Trace t = last_trace();
  EXPECT_EQ(t.count(Op::segment_release), 1u);
  auto failed = t.where(Op::alloc_failed);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].bytes, 24 * kMiB);
  EXPECT_EQ(failed[0].aux, 0u);  // the device held nothing of ours once the cache was released
  EXPECT_EQ(failed[0].result, 2);
}

TEST_F(Policy, FixedPoolReservesItsWholeSizeAtTheFirstAllocation) {
  struct Case {
    std::vector<std::string> env;
    const char* ask_mib;
    uint64_t pool_bytes;
  };
  const Case cases[] = {
      {{"GPUMEM_POOL=fixed", "GPUMEM_LIMIT=64MiB"}, "70", 64 * kMiB},
      {{"GPUMEM_POOL=fixed", "GPUMEM_LIMIT=64MiB", "GPUMEM_POOL_SIZE=32MiB"}, "40", 32 * kMiB},
  };
  for (const auto& c : cases) {
    Outcome r = prog({"fixed", c.ask_mib}, c.env);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.rfind("second 2\n", 0), 0u) << r.out;
    Trace t = last_trace();
    auto segments = t.where(Op::segment_reserve);
    ASSERT_EQ(segments.size(), 1u);
    EXPECT_EQ(segments[0].bytes, c.pool_bytes);
    EXPECT_EQ(t.count(Op::segment_release), 0u);  // the reservation stays
    auto failed = t.where(Op::alloc_failed);
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0].bytes, std::stoull(c.ask_mib) * kMiB);
    EXPECT_EQ(failed[0].aux, kMiB);  // what the program holds from the pool
  }
}

TEST_F(Policy, SixteenThreadsExactStatsThroughTheCApi) {
  const int threads = 16, iterations = 5000;
  Outcome r = prog({"threads", std::to_string(threads), std::to_string(iterations)},
                   {"GPUMEM_POOL=growth", "GPUMEM_LIMIT=1GiB"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  const uint64_t n = static_cast<uint64_t>(threads) * iterations;
  uint64_t reserved = 0;
  for (const auto& s : t.where(Op::segment_reserve)) reserved += s.bytes;
  for (const auto& s : t.where(Op::segment_release)) reserved -= s.bytes;
  std::ostringstream expected;
  expected << "stats allocs " << n << " frees " << n << " failed 0 allocated 0";
  EXPECT_EQ(r.out.rfind(expected.str(), 0), 0u) << r.out;
  EXPECT_NE(r.out.find(" reserved " + std::to_string(reserved) + " "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" limit 1073741824\n"), std::string::npos) << r.out;
  EXPECT_EQ(t.count(Op::alloc), n);
  EXPECT_EQ(t.count(Op::free), n);
  EXPECT_EQ(sum_bytes(t.where(Op::alloc)), sum_bytes(t.where(Op::free)));
  EXPECT_EQ(t.count(Op::anomaly), 0u);
}

TEST_F(Policy, BadConfigurationExitsWithStatus2AndSaysWhy) {
  const std::vector<std::pair<std::vector<std::string>, const char*>> cases = {
      {{"GPUMEM_POOL=fixed"}, "GPUMEM_POOL"},
      {{"GPUMEM_LIMIT=32GiB"}, "GPUMEM_LIMIT"},  // simcuda's device has 16 GiB
      {{"GPUMEM_LIMIT_0=20GiB"}, "GPUMEM_LIMIT_0"},
      {{"GPUMEM_POOL=fixed", "GPUMEM_LIMIT=64MiB", "GPUMEM_POOL_SIZE=128MiB"}, "GPUMEM_POOL_SIZE"},
  };
  for (const auto& [env, variable] : cases) {
    Outcome r = prog({"runtime"}, env);
    EXPECT_EQ(r.status, 2) << env[0];
    EXPECT_EQ(r.err.rfind("gpumem: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(variable), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("accepted"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(Policy, GpumemRunPassesPoolAndLimit) {
  if (access(GPUMEM_SIMCUDA_DIR "/libcuda.so.1", F_OK) != 0)
    GTEST_SKIP() << "needs simcuda (--device sim)";
  bare_env_ = true;
  Outcome r = run({GPUMEM_CLI, "run", "--device", "sim", "--pool", "growth", "--limit", "64MiB",
                   "--trace", dir_ + "/c-%p.trace", "--", INTERPOSE_PROG, "tf"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "total 67108864 free 67108864 sum 31457280 failed_at 33554432 code 2\n");
  auto files = trace_files();
  ASSERT_EQ(files.size(), 1u);
  Trace t = read(files[0]);
  EXPECT_EQ(std::string(t.header.pool), "growth");
  EXPECT_NE(std::string(t.header.config).find("GPUMEM_LIMIT=64MiB"), std::string::npos);
  EXPECT_EQ(t.count(Op::segment_reserve), 2u);
}

// GPUMEM_POOL=expandable (docs/policies.md "Expandable pool") on simcuda's VMM: under the same
// 64 MiB cap as the growth pool above, the doubling client reaches 62 MiB (2+4+...+32, mapped
// granule by granule) where the growth pool stopped at 30 MiB; every mapped granule is a 2 MiB
// segment in the trace, the refused 64 MiB mapped one granule and gave it back.
TEST_F(Policy, ExpandablePoolMapsOnlyWhatItsBlocksNeedUnderTheCap) {
  Outcome r = prog({"tf"}, {"GPUMEM_LIMIT=64MiB", "GPUMEM_POOL=expandable"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "total 67108864 free 67108864 sum 65011712 failed_at 67108864 code 2\n");
  Trace t = last_trace();
  auto reserve = t.where(Op::segment_reserve, Api::pool);
  auto release = t.where(Op::segment_release, Api::pool);
  for (const auto& s : reserve) EXPECT_EQ(s.bytes, 2 * kMiB);
  EXPECT_EQ(reserve.size(), 32u);  // 31 granules held, one mapped for the refused request
  ASSERT_EQ(release.size(), 1u);
  EXPECT_EQ(release[0].address, reserve.back().address);
  auto failed = t.where(Op::alloc_failed);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].bytes, 64 * kMiB);
  EXPECT_EQ(failed[0].aux, 62 * kMiB);  // in use before the request, as the cap counts
  EXPECT_EQ(failed[0].result, 2);
  for (const auto& a : t.where(Op::alloc)) EXPECT_TRUE(pooled(a));
  EXPECT_EQ(t.count(Op::anomaly), 0u);
}

// Reuse, pointer queries, empty-cache (every page back) and the IPC refusal, as for the growth
// pool; with every page given back the largest free block is 0 (unmapped address space in the
// 64 GiB range is not free memory).
TEST_F(Policy, ExpandablePoolReusesAnswersPointerQueriesAndGivesEveryPageBack) {
  Outcome r = prog({"pool"}, {"GPUMEM_POOL=expandable"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "reused 1\nrange 1 1000000\nattributes type 2 device 0\nreleased 2097152\n"
            "stats allocs 3 frees 3 failed 0 allocated 0 peak_allocated 2000000 reserved 0 "
            "peak_reserved 2097152 largest_free 0 limit 0\n");
  Trace t = last_trace();
  ASSERT_EQ(t.count(Op::segment_reserve, Api::pool), 1u);
  ASSERT_EQ(t.count(Op::segment_release, Api::pool), 1u);
  EXPECT_NE(r.err.find("cudaIpcGetMemHandle("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cuIpcGetMemHandle("), std::string::npos) << r.err;
}

// Replay equivalence: `gpumem replay --pool expandable` of the preload's own trace reserves what
// the preload reserved (its mapped granules as the trace's segments say): the same peak (64 MiB,
// the refused request's transient granule included) and the same 62 MiB at the refusal.
TEST_F(Policy, ExpandablePoolReplayReservesWhatThePreloadReserved) {
  Outcome r = prog({"tf"}, {"GPUMEM_LIMIT=64MiB", "GPUMEM_POOL=expandable"});
  ASSERT_EQ(r.status, 0) << r.err;
  Trace t = last_trace();
  uint64_t reserved = 0, peak = 0, at_failure = 0;
  for (const auto& rec : t.records) {
    if (rec.op == static_cast<uint16_t>(Op::segment_reserve)) reserved += rec.bytes;
    if (rec.op == static_cast<uint16_t>(Op::segment_release)) reserved -= rec.bytes;
    if (rec.op == static_cast<uint16_t>(Op::alloc_failed)) at_failure = reserved;
    peak = std::max(peak, reserved);
  }
  EXPECT_EQ(peak, 64 * kMiB);
  EXPECT_EQ(at_failure, 62 * kMiB);
  const std::string json = dir_ + "/replay.json";
  Outcome rep = run({GPUMEM_CLI, "replay", dir_ + "/t-" + std::to_string(last_pid_) + ".trace",
                     "--pool", "expandable", "--limit", "64MiB", "--no-search", "--json", json});
  ASSERT_EQ(rep.status, 0) << rep.err;
  std::ifstream in(json);
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(doc.find("\"peak_reserved_bytes\": " + std::to_string(peak)), std::string::npos)
      << doc;
  EXPECT_NE(doc.find("\"reserved_bytes\": " + std::to_string(at_failure)), std::string::npos)
      << doc;
}

}  // namespace
