// See oom_explain.h. docs/oom.md says what each piece of advice needs to be given.
#include "oom_explain.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "gpumem/analyzer/analysis.h"
#include "gpumem/analyzer/render_text.h"
#include "gpumem/analyzer/report.h"
#include "gpumem/replay/replay.h"
#include "gpumem/resources/growth_pool.h"
#include "gpumem/trace/reader.h"
#include "gpumem/units.h"
#include "gpumem/visible_text.h"

namespace gpumem::cli {
namespace {

using analyzer::Oom;
using analyzer::OomAdvice;
using analyzer::OomFit;

std::string human(uint64_t bytes) {
  char buf[32];
  return format_bytes(bytes, buf, sizeof buf);
}

// A size GPUMEM_LIMIT reads back as exactly `bytes` when it is a whole MiB, else plain bytes.
std::string limit_setting(uint64_t bytes) {
  constexpr uint64_t kMiB = uint64_t{1} << 20;
  return bytes % kMiB == 0 ? fmt::format("{}MiB", bytes / kMiB) : fmt::format("{}", bytes);
}

// The device's program up to and including the failed request: the last recorded failure of
// that size at or before the oom record (which the preload writes right after it).
replay::DeviceProgram up_to(const replay::DeviceProgram& dp, const Oom& o) {
  replay::DeviceProgram cut = dp;
  size_t end = cut.steps.size();
  for (size_t i = 0; i < dp.steps.size(); ++i) {
    const replay::Step& s = dp.steps[i];
    if (s.t_ns > o.t_ns) break;
    if (s.kind == replay::Step::alloc && s.recorded_failed && s.bytes == o.requested_bytes)
      end = i + 1;
  }
  cut.steps.resize(end);
  return cut;
}

// A device as large as the program could need under any policy: every allocation rounded up to
// a whole large segment of the growth pool, all live at once.
uint64_t roomy_capacity(const replay::DeviceProgram& dp) {
  using resources::GrowthPool;
  constexpr uint64_t kSlack = GrowthPool::kLargeSegment + GrowthPool::kGranularity;
  constexpr uint64_t kMax = uint64_t{1} << 60;
  uint64_t total = kSlack;
  for (const replay::Step& s : dp.steps)
    if (s.kind == replay::Step::alloc) total = std::min(kMax, total + s.bytes + kSlack);
  return std::max(total, dp.capacity_bytes);
}

// A device of unknown capacity is taken to hold at most this: no GPU made holds 1 TiB (the
// largest in 2026, NVIDIA B300 and AMD MI355X, hold 288 GB).
constexpr uint64_t kNoDeviceHolds = uint64_t{1} << 40;

// Whether the program up to the failed request holds, at its peak, more than the device (or any
// device, when the trace does not say its capacity). Every policy needs at least that peak
// (replay/src/search.cpp), so then no pool fits at any cap, and the pools are not searched: a
// search replays the program a dozen times, and the expandable pool maps each 2 MiB granule of
// the request at each replay (a 1 TiB request, a wrong tensor shape, took 11 s a pool).
bool needs_more_than_any_device(const replay::Program& program, const replay::DeviceProgram& cut,
                                const Oom& o, uint64_t roomy) {
  replay::ReplayOptions options;
  options.capacity = roomy;
  options.metrics = false;
  const uint64_t peak = replay::replay_device(program, cut, options).peak_allocated_bytes;
  return peak > (o.capacity_bytes != 0 ? o.capacity_bytes : kNoDeviceHolds);
}

enum class Framework { none, pytorch, tensorflow, jax };

bool has(const std::string& text, const char* part) {
  return text.find(part) != std::string::npos;
}

Framework framework_of_module(const std::string& m) {
  if (has(m, "torch") || has(m, "c10")) return Framework::pytorch;
  if (has(m, "tensorflow")) return Framework::tensorflow;
  if (has(m, "jaxlib") || has(m, "xla_extension") || has(m, "libxla")) return Framework::jax;
  return Framework::none;
}

// The framework that held the memory (the largest module share naming one), or the API's.
Framework framework_of(const Oom& o, uint64_t* held) {
  *held = 0;
  Framework f = o.api == "torch" ? Framework::pytorch : Framework::none;
  for (const analyzer::OomModuleShare& m : o.by_module) {
    const Framework mf = framework_of_module(m.module);
    if (mf != Framework::none && m.bytes > *held) {
      f = mf;
      *held = m.bytes;
    }
  }
  return f;
}

// The module of the failing call's first native frame ("" without a stack).
std::string failing_module(const Oom& o) {
  for (const std::string& f : o.frames) {
    const size_t open = f.rfind(" (");
    const size_t plus = open == std::string::npos ? open : f.find("+0x", open);
    if (plus != std::string::npos) return f.substr(open + 2, plus - open - 2);
  }
  return "";
}

}  // namespace

std::vector<OomAdvice> oom_advice(const Oom& o, const std::string& pool) {
  std::vector<OomAdvice> out;
  // A fixed pool under a cap holds the cap: the kinds it does not serve (managed, pitched,
  // stream-ordered, VMM) are refused beside it (docs/policies.md, "Pools do not change what CUDA
  // answers"), whatever replay says of the program's plain allocations.
  if (pool == "fixed" && !o.pooled && o.refused_by == "gpumem" && o.limit_bytes != 0)
    out.push_back({"gpumem", "GPUMEM_POOL=growth GPUMEM_LIMIT=" + limit_setting(o.limit_bytes),
                   fmt::format("{} is not served by the fixed pool, and the process held {} of "
                               "the {} cap, the pool's reservation included: the cap refused "
                               "its {}; a growth pool takes only what is used (or set "
                               "GPUMEM_POOL_SIZE under the cap to leave room)",
                               o.api, human(o.reserved_bytes), human(o.limit_bytes),
                               human(o.requested_bytes))});
  const uint64_t budget = o.limit_bytes != 0 ? o.limit_bytes : o.capacity_bytes;
  const OomFit* best = nullptr;
  const OomFit* recorded = nullptr;
  for (const OomFit& f : o.would_fit) {
    if (!f.smallest_limit_bytes) continue;
    if (f.policy == pool) recorded = &f;
    if (best == nullptr || *f.smallest_limit_bytes < *best->smallest_limit_bytes) best = &f;
  }
  const auto needs = [](const OomFit* f) {
    return f != nullptr ? human(*f->smallest_limit_bytes) + " (" +
                              std::to_string(*f->smallest_limit_bytes) + " B)"
                        : std::string("more than the device has");
  };
  if (best != nullptr && budget != 0) {
    const uint64_t need = *best->smallest_limit_bytes;
    if (need <= budget && best->policy != pool &&
        (recorded == nullptr || *recorded->smallest_limit_bytes > budget)) {
      std::string setting = "GPUMEM_POOL=" + best->policy;
      if (o.limit_bytes != 0) setting += " GPUMEM_LIMIT=" + limit_setting(o.limit_bytes);
      out.push_back({"gpumem", setting,
                     fmt::format("replayed up to this request, pool {} needs a cap of {}, within "
                                 "the {} {}; pool {} needs {}",
                                 best->policy, needs(best), o.limit_bytes ? "cap of" : "capacity",
                                 human(budget), pool, needs(recorded))});
    } else if (need > budget && (o.capacity_bytes == 0 || need <= o.capacity_bytes)) {
      out.push_back({"gpumem",
                     "GPUMEM_POOL=" + best->policy + " GPUMEM_LIMIT=" + limit_setting(need),
                     fmt::format("replayed up to this request, the program needs a cap of {} "
                                 "under pool {} (the least of every policy); the cap is {}{}",
                                 needs(best), best->policy, human(budget),
                                 o.capacity_bytes ? ", the device has " + human(o.capacity_bytes)
                                                  : std::string())});
    } else if (o.capacity_bytes != 0 && need > o.capacity_bytes) {
      out.push_back({"gpumem",
                     "use less memory: a smaller batch (`gpumem fit`), fp16, streamed data",
                     fmt::format("replayed up to this request, even pool {} (the least of every "
                                 "policy) needs {}, more than the device's {}: no cap or pool "
                                 "makes it fit",
                                 best->policy, needs(best), human(o.capacity_bytes))});
    }
  }
  uint64_t held = 0;
  const Framework fw = framework_of(o, &held);
  const bool fragmented = o.reserved_unallocated_bytes >= o.requested_bytes &&
                          o.largest_free_block_bytes < o.requested_bytes;
  if (fw == Framework::pytorch && fragmented)
    out.push_back({"pytorch", "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True",
                   fmt::format("{} were reserved but unallocated, more than the {} asked for, "
                               "but the largest free block was {}: the cache is fragmented, and "
                               "expandable segments grow one segment instead of needing one free "
                               "block that large",
                               human(o.reserved_unallocated_bytes), human(o.requested_bytes),
                               human(o.largest_free_block_bytes))});
  const std::string failing = failing_module(o);
  const bool other_failed = !failing.empty() && framework_of_module(failing) != fw;
  if (fw == Framework::tensorflow && other_failed && held >= o.requested_bytes) {
    const std::string reason = fmt::format(
        "TensorFlow's allocator held {} of the {} allocated when {} asked for {}: its up-front "
        "reservation took the memory another library needed",
        human(held), human(o.allocated_bytes), failing, human(o.requested_bytes));
    out.push_back({"tensorflow", "TF_FORCE_GPU_ALLOW_GROWTH=true", reason});
    out.push_back({"tensorflow", "TF_GPU_ALLOCATOR=cuda_malloc_async", reason});
  }
  if (fw == Framework::jax && other_failed && held >= o.requested_bytes) {
    out.push_back(
        {"jax", "XLA_PYTHON_CLIENT_PREALLOCATE=false",
         fmt::format("JAX's allocator held {} of the {} allocated when {} asked for "
                     "{}: its preallocation took the memory another library needed",
                     human(held), human(o.allocated_bytes), failing, human(o.requested_bytes))});
    const uint64_t others = o.allocated_bytes - held + o.requested_bytes;
    if (o.capacity_bytes > others) {
      const double fraction =
          static_cast<double>(o.capacity_bytes - others) / static_cast<double>(o.capacity_bytes);
      out.push_back(
          {"jax",
           fmt::format("XLA_PYTHON_CLIENT_MEM_FRACTION={:.2f}", std::floor(fraction * 100) / 100),
           fmt::format("the other libraries held {} and asked for {} more; of the device's {}, "
                       "{} are left for JAX",
                       human(o.allocated_bytes - held), human(o.requested_bytes),
                       human(o.capacity_bytes), human(o.capacity_bytes - others))});
    }
  }
  return out;
}

void explain_ooms(analyzer::Report& report, std::vector<std::string>* notes) {
  std::map<size_t, std::unique_ptr<replay::Program>> programs;
  for (Oom& o : report.ooms) {
    if (o.retried || o.trace_index >= report.traces.size()) continue;
    auto& program = programs[o.trace_index];
    if (!program) {
      std::string error;
      program = replay::load_program(report.traces[o.trace_index].path, &error);
      if (!program) {
        notes->push_back("what would fit is unknown: " + error);
        continue;
      }
    }
    const replay::DeviceProgram* dp = nullptr;
    for (const replay::DeviceProgram& d : program->devices)
      if (d.device == o.device) dp = &d;
    if (dp == nullptr) continue;
    const replay::DeviceProgram cut = up_to(*dp, o);
    const uint64_t capacity = roomy_capacity(cut);
    const bool pools_cannot_fit = needs_more_than_any_device(*program, cut, o, capacity);
    for (replay::Policy p : resources::kPoolKinds) {
      OomFit f;
      f.policy = replay::policy_name(p);
      if (pools_cannot_fit && p != replay::Policy::none) {
        o.would_fit.push_back(std::move(f));  // not searched: smallest_limit_bytes null
        continue;
      }
      const replay::LimitSearch s = replay::smallest_limit(*program, cut, p, capacity);
      f.smallest_limit_bytes = s.smallest_bytes;
      f.safe_limit_bytes = s.safe_bytes;
      f.fits_at_capacity = s.smallest_bytes.has_value() &&
                           (o.capacity_bytes == 0 || *s.smallest_bytes <= o.capacity_bytes);
      o.would_fit.push_back(std::move(f));
    }
    o.advice = oom_advice(o, program->recorded_pool.empty() ? "none" : program->recorded_pool);
  }
}

std::string run_explanation(const std::string& trace) {
  // Most runs fail nothing: one pass over the records decides before any analysis.
  std::string error;
  auto reader = trace::Reader::open(trace, &error);
  if (!reader) return "";
  bool failed = false;
  trace::Batch batch;
  while (!failed && reader->next_batch(&batch))
    for (size_t i = 0; i < batch.count && !failed; ++i)
      failed = batch.records[i].op == static_cast<uint16_t>(trace::Op::oom);
  if (!failed) return "";
  analyzer::Analysis analysis{analyzer::AnalysisOptions{}};
  std::vector<std::string> errors;
  if (analyzer::analyze_files({trace}, analysis, &errors, false) == 0) return "";
  analyzer::Report report = analysis.finish();
  if (report.ooms_final == 0) return "";
  explain_ooms(report, &errors);
  analyzer::TextOptions text;
  text.top_rows = 5;
  text.max_frames = 2;
  std::string out = fmt::format(
      "gpumem: {} allocation(s) failed for good ({} retried and "
      "succeeded); full report: gpumem report {}\n",
      report.ooms_final, report.ooms_retried, visible(trace));
  size_t shown = 0;
  for (const Oom& o : report.ooms) {
    if (o.retried) continue;
    if (++shown > 3) break;
    out += analyzer::render_oom_text(o, text);
  }
  for (const std::string& n : errors) out += "gpumem: " + visible(n) + "\n";
  return out;
}

}  // namespace gpumem::cli
