// `gpumem replay`: options, the per-device runs and searches, JSON and the text table.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>

#include "gpumem/replay/replay_command.h"
#include "gpumem/same_file.h"
#include "gpumem/units.h"
#include "gpumem/visible_text.h"

namespace gpumem::replay {
namespace {

using nlohmann::json;

std::string bytes_text(uint64_t b) {
  char buf[32];
  return format_bytes(b, buf, sizeof buf);
}

// "512MiB", "8GiB", "60%" (of `capacity`). 0 and anything else are errors.
bool parse_limit(const std::string& text, uint64_t capacity, const char* what, uint64_t* out,
                 std::string* error) {
  double percent = 0;
  const SizeParse p = parse_size(text.c_str(), out, &percent);
  if (p == SizeParse::percent) {
    *out = percent_of(capacity, percent);
  } else if (p != SizeParse::ok) {
    *error = fmt::format("{} '{}' is not a size; use bytes or a unit: 512MiB, 8GiB, 1.5GiB, or 60%",
                         what, text);
    return false;
  }
  if (*out == 0) {
    *error =
        fmt::format("{} '{}' is 0 bytes{}; give a positive size such as 512MiB", what, text,
                    p == SizeParse::percent ? fmt::format(" of {}", bytes_text(capacity)) : "");
    return false;
  }
  return true;
}

json failure_json(const Failure& f) {
  return json{{"record", f.record},
              {"t_ns", f.t_ns},
              {"phase", f.phase.empty() ? json(nullptr) : json(f.phase)},
              {"api", f.api},
              {"bytes", f.bytes},
              {"in_use_bytes", f.in_use_bytes},
              {"allocated_bytes", f.allocated_bytes},
              {"reserved_bytes", f.reserved_bytes},
              {"refused_by", f.refused_by},
              {"recorded_failed", f.recorded_failed}};
}

json search_json(const LimitSearch& s) {
  json j{{"granularity_bytes", s.granularity},
         {"fits_at_capacity", s.fits_at_capacity},
         {"bytes", s.smallest_bytes ? json(*s.smallest_bytes) : json(nullptr)},
         {"safe_bytes", s.safe_bytes ? json(*s.safe_bytes) : json(nullptr)},
         {"non_monotonic", s.non_monotonic},
         {"below_exhaustive", s.below_exhaustive},
         {"replays", s.replays}};
  return j;
}

}  // namespace

bool replay_to_json(const Program& program, Policy policy, const std::string& limit_text,
                    const std::string& capacity_text, const std::string& pool_size_text,
                    bool search, json* out, std::string* error) {
  // The fixed pool's size, as the preload sizes it: --pool-size, else the recorded
  // GPUMEM_POOL_SIZE, else (0) the limit. Other policies have no size.
  uint64_t pool_size = 0;
  if (policy == Policy::fixed) {
    pool_size = program.recorded_pool_size;
    if (!pool_size_text.empty()) {
      if (const char* why = pool_size_problem(pool_size_text.c_str(), &pool_size)) {
        *error = fmt::format(
            "--pool-size '{}' is not valid: {}; give a size of at least {} B such as 512MiB",
            visible(pool_size_text), why, kPoolGranuleBytes);
        return false;
      }
    }
  }
  json devices = json::array();
  bool all_fit = true;
  for (const DeviceProgram& dp : program.devices) {
    uint64_t capacity = 0;
    if (!capacity_text.empty() &&
        !parse_limit(capacity_text, dp.capacity_bytes, "--capacity", &capacity, error))
      return false;
    const uint64_t cap = effective_capacity(dp, capacity);
    uint64_t limit = 0;
    if (!limit_text.empty()) {
      if (!parse_limit(limit_text, cap, "--limit", &limit, error)) return false;
      if (limit > cap) {
        *error = fmt::format(
            "--limit {} ({}) is above device {}'s capacity {}; give a limit up to the capacity, "
            "or a larger --capacity to ask what a bigger device would need",
            limit_text, bytes_text(limit), dp.device, bytes_text(cap));
        return false;
      }
      if (policy == Policy::fixed && limit < kPoolGranuleBytes) {
        // As GPUMEM_LIMIT under GPUMEM_POOL=fixed: the limit is the pool's size, which must
        // hold one pool block.
        *error = fmt::format(
            "--limit {} ({}) sizes the fixed pool, which needs at least {} B (one pool block); "
            "give a larger limit or another --pool",
            visible(limit_text), bytes_text(limit), kPoolGranuleBytes);
        return false;
      }
    } else {
      limit = std::min(dp.recorded_limit_bytes, cap);
    }
    if (pool_size > (limit != 0 ? limit : cap)) {
      // As the preload refuses GPUMEM_POOL_SIZE above the limit or the device.
      *error = fmt::format(
          "the fixed pool's size {} is above device {}'s {} {}; give a smaller --pool-size or a "
          "larger {}",
          bytes_text(pool_size), dp.device, limit != 0 ? "limit" : "capacity",
          bytes_text(limit != 0 ? limit : cap), limit != 0 ? "--limit" : "--capacity");
      return false;
    }
    ReplayOptions o;
    o.policy = policy;
    o.limit = limit;
    o.capacity = capacity;
    o.pool_size = pool_size;
    const DeviceRun run = replay_device(program, dp, o);
    all_fit = all_fit && run.fits;
    json d{{"device", dp.device},
           {"name", dp.name},
           {"capacity_bytes", run.capacity_bytes},
           {"limit_bytes", run.limit_bytes},
           {"recorded_limit_bytes", dp.recorded_limit_bytes},
           {"pool_size_bytes", policy == Policy::fixed
                                   ? json(pool_size != 0 ? pool_size : run.limit_bytes)
                                   : json(nullptr)},
           {"fits", run.fits},
           {"failure", run.failure ? failure_json(*run.failure) : json(nullptr)},
           {"steps", dp.steps.size()},
           {"steps_replayed", run.steps_replayed},
           {"recorded_failures", dp.recorded_failures},
           {"unknown_frees", dp.unknown_frees},
           {"skipped_pinned_host", dp.skipped_pinned},
           {"skipped_imported", dp.skipped_imported},
           {"unpooled_allocations", dp.unpooled_allocs},
           {"peak_allocated_bytes", run.peak_allocated_bytes},
           {"peak_reserved_bytes", run.peak_reserved_bytes},
           {"device_peak_bytes", run.device_peak_bytes},
           {"fragmentation",
            {{"at_peak", run.fragmentation_at_peak},
             {"max", run.fragmentation_max},
             {"reserved_unallocated_at_peak_bytes", run.reserved_unallocated_at_peak_bytes},
             {"utilization", run.utilization ? json(*run.utilization) : json(nullptr)}}}};
    json smallest = json::object();
    if (search)
      for (Policy p : resources::kPoolKinds)
        smallest[policy_name(p)] = search_json(smallest_limit(program, dp, p, capacity));
    d["smallest_limit"] = search ? smallest : json(nullptr);
    devices.push_back(std::move(d));
  }
  *out = json{{"schema", "gpumem.replay/1"},
              {"trace", program.path},
              {"command", program.command},
              {"recorded_pool", program.recorded_pool},
              {"truncated", program.truncated},
              {"dropped_records", program.dropped_records},
              {"policy", policy_name(policy)},
              {"fits", all_fit},
              {"devices", std::move(devices)}};
  return true;
}

std::string render_replay_text(const json& doc) {
  // Strings from the trace (its path, pool, device names, phases) are escaped (visible_text.h).
  std::string s =
      fmt::format("gpumem replay {}: policy {}", visible(doc["trace"].get<std::string>()),
                  doc["policy"].get<std::string>());
  const std::string recorded = doc["recorded_pool"].get<std::string>();
  if (!recorded.empty()) s += fmt::format(" (recorded with pool={})", visible(recorded));
  s += "\n";
  if (doc["truncated"].get<bool>())
    s += "note: the trace did not end cleanly; replay covers what was recorded\n";
  if (doc["dropped_records"].get<uint64_t>() > 0)
    s += fmt::format(
        "note: the trace is bounded (GPUMEM_TRACE_MAX): {} records of its middle were dropped; "
        "replay runs its beginning, the allocations live across the cut and at each peak, and "
        "its newest records, so peaks and the end are exact, but a pool's fragmentation and any "
        "failure inside the dropped span are not reproduced\n",
        doc["dropped_records"].get<uint64_t>());
  for (const json& d : doc["devices"]) {
    const auto u = [&](const char* k) { return d[k].get<uint64_t>(); };
    s += fmt::format(
        "device {} ({}capacity {}), limit {}{}: {}\n", d["device"].get<int>(),
        d["name"].get<std::string>().empty() ? "" : visible(d["name"].get<std::string>()) + ", ",
        bytes_text(u("capacity_bytes")), bytes_text(u("limit_bytes")),
        d["pool_size_bytes"].is_null() ? "" : ", fixed pool " + bytes_text(u("pool_size_bytes")),
        d["fits"].get<bool>() ? "FITS" : "DOES NOT FIT");
    if (!d["failure"].is_null()) {
      const json& f = d["failure"];
      s += fmt::format(
          "  first failing allocation: record {} at {:.3f} s{}, {} of {} refused by the {}\n"
          "    in use {} (as the {} counts), program held {}, policy reserved {}{}\n",
          f["record"].get<uint64_t>(), static_cast<double>(f["t_ns"].get<int64_t>()) / 1e9,
          f["phase"].is_null()
              ? ""
              : fmt::format(", phase '{}'", visible(f["phase"].get<std::string>())),
          f["api"].get<std::string>(), bytes_text(f["bytes"].get<uint64_t>()),
          f["refused_by"].get<std::string>(), bytes_text(f["in_use_bytes"].get<uint64_t>()),
          f["refused_by"].get<std::string>(), bytes_text(f["allocated_bytes"].get<uint64_t>()),
          bytes_text(f["reserved_bytes"].get<uint64_t>()),
          f["recorded_failed"].get<bool>() ? " (it failed in the recorded run too)" : "");
    }
    s += fmt::format("  peak allocated {}, peak reserved {}, device charge {} (2 MiB pages)\n",
                     bytes_text(u("peak_allocated_bytes")), bytes_text(u("peak_reserved_bytes")),
                     bytes_text(u("device_peak_bytes")));
    const json& fr = d["fragmentation"];
    s += fmt::format("  fragmentation at peak {:.3f}, max {:.3f}; reserved-unallocated at peak {}",
                     fr["at_peak"].get<double>(), fr["max"].get<double>(),
                     bytes_text(fr["reserved_unallocated_at_peak_bytes"].get<uint64_t>()));
    if (!fr["utilization"].is_null())
      s += fmt::format("; utilization {:.3f}", fr["utilization"].get<double>());
    s += "\n";
    if (u("recorded_failures") > 0)
      s += fmt::format(
          "  note: {} allocation(s) failed in the recorded run; replay tries each "
          "and frees it at once, and cannot know what the program would have done "
          "after it\n",
          u("recorded_failures"));
    if (u("unknown_frees") > 0)
      s += fmt::format("  note: {} free(s) of unknown addresses skipped\n", u("unknown_frees"));
    if (d["smallest_limit"].is_null()) continue;
    s += "  smallest limit under which the whole trace fits:\n";
    s += fmt::format("    {:<10} {:>14} {:>16} {:>12} {:>8}\n", "policy", "limit", "bytes",
                     "granularity", "replays");
    for (const char* name : {"none", "growth", "fixed", "expandable"}) {
      const json& sr = d["smallest_limit"][name];
      std::string limit = "does not fit", exact = "-";
      if (!sr["bytes"].is_null()) {
        limit = bytes_text(sr["bytes"].get<uint64_t>());
        exact = std::to_string(sr["bytes"].get<uint64_t>());
      }
      s += fmt::format("    {:<10} {:>14} {:>16} {:>12} {:>8}{}\n", name, limit, exact,
                       bytes_text(sr["granularity_bytes"].get<uint64_t>()),
                       sr["replays"].get<uint64_t>(),
                       sr["non_monotonic"].get<bool>()
                           ? fmt::format("  (not monotone: some larger limits fail; every checked "
                                         "limit from {} up fits)",
                                         bytes_text(sr["safe_bytes"].get<uint64_t>()))
                           : "");
    }
  }
  return s;
}

int replay_main(const ReplayCommandOptions& options) {
  Policy policy;
  if (!resources::parse_pool_kind(options.pool, &policy)) {
    std::fprintf(stderr,
                 "gpumem replay: --pool '%s' is not a policy; use none, growth, fixed or "
                 "expandable\n",
                 visible(options.pool).c_str());
    return 2;
  }
  // --json naming the trace it reads (or the snapshot or log converted into it) would write the
  // replay over the recorded run.
  if (output_is_an_input(options.json_path, {options.trace, options.shown_as})) {
    std::fprintf(stderr,
                 "gpumem replay: --json %s names the file this replay reads; writing there would "
                 "destroy it: give the output another file\n",
                 visible(options.json_path).c_str());
    return 1;
  }
  std::string error;
  std::unique_ptr<Program> program = load_program(options.trace, &error);
  if (!program) {
    std::fprintf(stderr, "gpumem replay: %s\n", visible(error).c_str());
    return 1;
  }
  if (!options.shown_as.empty()) program->path = options.shown_as;
  json doc;
  if (!replay_to_json(*program, policy, options.limit, options.capacity, options.pool_size,
                      options.search, &doc, &error)) {
    std::fprintf(stderr, "gpumem replay: %s\n", visible(error).c_str());
    return 2;
  }
  // The trace's strings (command, device names, phases) are the program's bytes: what is not
  // UTF-8 becomes U+FFFD rather than an exception.
  const auto text = [&] { return doc.dump(2, ' ', false, json::error_handler_t::replace); };
  if (options.json_path == "-") {
    std::printf("%s\n", text().c_str());
    return 0;
  }
  if (!options.json_path.empty()) {
    std::ofstream f(options.json_path);
    f << text() << "\n";
    if (!f) {
      std::fprintf(stderr,
                   "gpumem replay: cannot write %s; check the directory exists and is "
                   "writable\n",
                   visible(options.json_path).c_str());
      return 1;
    }
  }
  std::fputs(render_replay_text(doc).c_str(), stdout);
  return 0;
}

}  // namespace gpumem::replay
