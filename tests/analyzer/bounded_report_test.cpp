// A bounded trace (GPUMEM_TRACE_MAX) whose run peaks in the part it drops: `gpumem report`'s peak
// (bytes, time, live set by site), reserved peak, leaks, final numbers and counts equal those of
// the same records written unbounded, and the report says which span went (issue 23).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "gpumem/analyzer/report.h"
#include "gpumem/analyzer/render_json.h"
#include "gpumem/analyzer/render_text.h"
#include "gpumem/trace/format_v2.h"
#include "gpumem/trace/writer.h"

namespace gpumem::analyzer {
namespace {

namespace fs = std::filesystem;
using trace::Op;
using trace::Record;

// One device: 100 allocations first (half kept to the end, half freed at the spike), churn from
// 12 call sites all along, and at record ~100k a burst of 400 MiB from a call site first seen
// there, freed at once: the run's peak, in the middle that a 4 MiB bound drops.
void write_run(TraceWriter& w) {
  uint64_t lcg = 99, next_address = 0x7f0000000000, t = 1'000'000;
  auto rnd = [&] { return (lcg = lcg * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  uint32_t sites[13];
  for (uint64_t i = 0; i < 12; ++i) {
    const uint64_t pcs[2] = {0x401000 + i * 16, 0x402000};
    sites[i] = w.intern_stack(pcs, 2);
  }
  std::vector<Record> live;
  auto append = [&](Record r) {
    r.t_ns = t += 10;
    r.tid = 7;
    r.aux = rnd();  // bigger records: fewer of them fill the bound's window
    r.device = 0;
    r.api = static_cast<uint16_t>(trace::Api::cudaMalloc);
    w.append(r);
  };
  auto alloc = [&](uint64_t bytes, uint32_t site) {
    Record r{};
    r.op = static_cast<uint16_t>(Op::alloc);
    r.address = next_address;
    next_address += 0x100000;
    r.bytes = bytes;
    r.site = site;
    live.push_back(r);
    append(r);
  };
  auto free_at = [&](size_t i) {
    Record r{};
    r.op = static_cast<uint16_t>(Op::free);
    r.address = live[i].address;
    r.bytes = live[i].bytes;
    append(r);
    live.erase(live.begin() + static_cast<long>(i));
  };
  for (int i = 0; i < 100; ++i) alloc(4096 * (1 + i % 5), sites[i % 2]);
  for (uint64_t n = 0; n < 300'000; ++n) {
    if (n == 100'000) {
      const uint64_t pcs[3] = {0x409000, 0x401000, 0x402000};
      sites[12] = w.intern_stack(pcs, 3);  // defined in the dropped part only
      const size_t before = live.size();
      for (int i = 0; i < 400; ++i) alloc(1 << 20, sites[12]);
      while (live.size() > before) free_at(before);
      for (int i = 0; i < 50; ++i) free_at(50);
      continue;
    }
    if (live.size() < 150 || (live.size() < 300 && rnd() % 2 == 0))
      alloc(256 * (1 + rnd() % 200), sites[2 + rnd() % 10]);
    else
      free_at(100 + rnd() % (live.size() - 100));
  }
}

std::string write_trace(const fs::path& dir, const std::string& name, uint64_t max_bytes) {
  TraceWriter w;
  w.set_format(TraceWriter::Format::compact);
  w.set_max_bytes(max_bytes);
  trace::Header h{};
  std::snprintf(h.command, sizeof h.command, "bounded_report_test");
  h.clock_base_ns = 1'000'000;  // both files on one clock: the records' times are the same
  char err[512] = {};
  const std::string path = (dir / name).string();
  EXPECT_TRUE(w.open(path.c_str(), h, err, sizeof err)) << err;
  write_run(w);
  w.close();
  return path;
}

nlohmann::ordered_json report_of(const std::string& path, std::string* text) {
  std::vector<std::string> errors;
  Analysis a;
  analyze_files({path}, a, &errors, false);
  EXPECT_TRUE(errors.empty()) << errors.front();
  const Report r = a.finish();
  if (text != nullptr) *text = render_text(r, {});
  return report_to_json(r);
}

TEST(BoundedReport, PeakInTheDroppedPartLeaksAndSiteTotalsEqualTheUnboundedRun) {
  const fs::path dir = fs::temp_directory_path() / ("gpumem-bounded-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string full = write_trace(dir, "full.trace", 0);
  const std::string bounded = write_trace(dir, "bounded.trace", trace::kMinTraceMax);
  EXPECT_LE(fs::file_size(bounded), trace::kMinTraceMax);
  EXPECT_GT(fs::file_size(full), trace::kMinTraceMax + (uint64_t{1} << 20));

  std::string text;
  const auto want = report_of(full, nullptr);
  const auto have = report_of(bounded, &text);
  ASSERT_EQ(have["devices"].size(), 1u);
  const auto& w = want["devices"][0];
  const auto& h = have["devices"][0];
  EXPECT_GT(w["peak"]["allocated_bytes"].get<uint64_t>(), uint64_t{400} << 20);
  EXPECT_EQ(h["peak"], w["peak"]);  // bytes, time, reserved, live at peak by site and class
  EXPECT_EQ(h["final"], w["final"]);
  EXPECT_EQ(h["leaks"], w["leaks"]);
  EXPECT_EQ(h["counts"], w["counts"]);
  EXPECT_EQ(h["churn"]["allocated_bytes_total"], w["churn"]["allocated_bytes_total"]);
  EXPECT_EQ(h["churn"]["freed"], w["churn"]["freed"]);
  // The site first seen in the dropped part is named at the peak.
  bool spike_site = false;
  for (const auto& row : h["peak"]["live_at_peak"])
    spike_site |= row["bytes"].get<uint64_t>() == uint64_t{400} << 20 && row["frames"].size() == 3;
  EXPECT_TRUE(spike_site) << h["peak"].dump();

  // What went is said: in the JSON, and in one text line.
  EXPECT_TRUE(want["traces"][0]["dropped"].is_null());
  const auto& d = have["traces"][0]["dropped"];
  ASSERT_TRUE(d.is_object());
  EXPECT_GT(d["records"].get<uint64_t>(), 100'000u);
  EXPECT_LT(d["kept"].get<uint64_t>(), 2'000u);
  EXPECT_LT(d["first_ns"].get<int64_t>(), w["peak"]["time_ns"].get<int64_t>());
  EXPECT_GT(d["last_ns"].get<int64_t>(), w["peak"]["time_ns"].get<int64_t>());
  EXPECT_EQ(have["traces"][0]["events"].get<uint64_t>() + d["records"].get<uint64_t>() -
                d["kept"].get<uint64_t>(),
            want["traces"][0]["events"].get<uint64_t>());
  EXPECT_NE(text.find("bounded (GPUMEM_TRACE_MAX): " + std::to_string(d["records"].get<uint64_t>()) +
                      " records from "),
            std::string::npos)
      << text;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace gpumem::analyzer
