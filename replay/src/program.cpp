// Compiles a trace into per-device programs of steps (replay.h), in one streaming pass, so that a
// limit search can replay the same program many times without reading the file again.
#include <algorithm>
#include <cstring>
#include <deque>
#include <unordered_map>

#include "gpumem/replay/replay.h"
#include "gpumem/resources/pool_serves.h"
#include "gpumem/trace/reader.h"
#include "gpumem/units.h"

namespace gpumem::replay {
namespace {

using trace::MemKind;
using trace::Op;

struct LiveEntry {
  size_t device_index;
  uint32_t slot;
  size_t alloc_step;  // index of its alloc step in the device's steps
};

// The last frees, remembered so that an Op::free_failed (which follows its free closely) can undo
// one: by address, the newest kRecentFrees.
struct RecentFree {
  LiveEntry entry{};
  size_t free_step = 0;  // index of the free step in the device's steps
  uint64_t seq = 0;      // the free's number, as recent_order_ names it
};
constexpr size_t kRecentFrees = 4096;
// cudaErrorMemoryAllocation and CUDA_ERROR_OUT_OF_MEMORY: an alloc_failed record's result when the
// device, a cap or a pool ran out of memory.
constexpr int32_t kOutOfMemoryCode = 2;

class Compiler {
 public:
  explicit Compiler(Program& program) : program_(program) { program_.phases.emplace_back(); }

  void header(const trace::Header& h) {
    const uint32_t n = std::min<uint32_t>(h.device_count, trace::kMaxDevices);
    for (uint32_t d = 0; d < n; ++d) device_index(static_cast<int>(d), &h);
    header_ = &h;
  }

  void feed(const trace::Event& ev) {
    const trace::Record& r = ev.rec;
    const int64_t t = static_cast<int64_t>(r.t_ns - header_->clock_base_ns);
    switch (static_cast<Op>(r.op)) {
      case Op::alloc:
        on_alloc(r, t, false);
        break;
      case Op::alloc_failed:
        on_alloc(r, t, true);
        break;
      case Op::free:
        on_free(r, t);
        break;
      case Op::free_failed:
        on_free_failed(r);
        break;
      case Op::trim:
        on_trim(r, t);
        break;
      case Op::string:
        strings_[r.aux] = std::string(ev.payload);
        break;
      case Op::mark_begin:
        open_.push_back(phase_index(r.aux));
        break;
      case Op::mark_end:
        on_mark_end(r.aux);
        break;
      default:
        break;  // segment events are the recorded pool's: replay's pool makes its own
    }
    ++record_;
  }

  void finish() {
    // Frees that the program's real call refused (Op::free_failed) never happened: drop them.
    for (size_t di = 0; di < cancelled_.size(); ++di) {
      auto& steps = program_.devices[di].steps;
      std::vector<bool>& gone = cancelled_[di];
      if (gone.empty()) continue;
      size_t kept = 0;
      for (size_t i = 0; i < steps.size(); ++i)
        if (i >= gone.size() || !gone[i]) steps[kept++] = steps[i];
      steps.resize(kept);
    }
    for (size_t i = 1; i < program_.phases.size(); ++i) {
      auto it = strings_.find(phase_string_ids_[i]);
      program_.phases[i] =
          it != strings_.end() ? it->second : "phase#" + std::to_string(phase_string_ids_[i]);
    }
    std::sort(program_.devices.begin(), program_.devices.end(),
              [](const DeviceProgram& a, const DeviceProgram& b) { return a.device < b.device; });
  }

 private:
  size_t device_index(int device, const trace::Header* h = nullptr) {
    auto it = by_device_.find(device);
    if (it != by_device_.end()) return it->second;
    if (h == nullptr) h = header_;
    DeviceProgram dp;
    dp.device = device;
    if (device >= 0 && device < trace::kMaxDevices) {
      const trace::DeviceInfo& info = h->devices[device];
      dp.capacity_bytes = info.capacity_bytes;
      dp.recorded_limit_bytes = info.limit_bytes;
      dp.name.assign(info.name, strnlen(info.name, sizeof info.name));
    }
    program_.devices.push_back(std::move(dp));
    free_slots_.emplace_back();
    by_device_.emplace(device, program_.devices.size() - 1);
    return program_.devices.size() - 1;
  }

  uint32_t take_slot(size_t di) {
    auto& fl = free_slots_[di];
    if (!fl.empty()) {
      uint32_t s = fl.back();
      fl.pop_back();
      return s;
    }
    return program_.devices[di].slots++;
  }

  Step make_step(const trace::Record& r, int64_t t, Step::Kind kind) const {
    Step s;
    s.kind = kind;
    s.api = r.api;
    s.flags = r.flags;
    s.bytes = r.bytes;
    s.stream = r.stream;
    s.t_ns = t;
    s.record = record_;
    s.phase = open_.empty() ? 0 : open_.back();
    s.pooled_kind = resources::pool_serves(static_cast<trace::Api>(r.api), r.flags);
    return s;
  }

  static uint64_t key(const trace::Record& r) {
    // VMM handles and pointers are different value spaces: keep them apart.
    const bool handle = trace::mem_kind(r) == MemKind::physical;
    return r.address ^ (handle ? 0x8000000000000000ull : 0);
  }

  // Not this process's device memory: pinned host memory, and memory imported from another
  // process (the preload never charges it to the cap: policy::route_for).
  static bool not_replayed(const trace::Record& r) {
    const MemKind kind = trace::mem_kind(r);
    return kind == MemKind::pinned_host || kind == MemKind::imported || r.device < 0;
  }

  void on_alloc(const trace::Record& r, int64_t t, bool failed) {
    if (not_replayed(r)) {
      if (r.device >= 0 && trace::mem_kind(r) == MemKind::pinned_host)
        ++program_.devices[device_index(r.device)].skipped_pinned;
      if (r.device >= 0 && trace::mem_kind(r) == MemKind::imported)
        ++program_.devices[device_index(r.device)].skipped_imported;
      return;
    }
    if (r.bytes == 0) return;  // zero-byte calls never reach a resource
    // Refused for another reason than memory (an invalid argument, an unknown stream): no limit
    // could have served it. 0 is kept for traces that did not record a code.
    if (failed && r.result != 0 && r.result != kOutOfMemoryCode) return;
    const size_t di = device_index(r.device);
    DeviceProgram& dp = program_.devices[di];
    Step s = make_step(r, t, Step::alloc);
    s.slot = take_slot(di);
    s.recorded_failed = failed;
    if (!s.pooled_kind) ++dp.unpooled_allocs;
    dp.steps.push_back(s);
    if (failed) {
      // The program never held it: the replayer frees it right after a successful try.
      ++dp.recorded_failures;
      free_slots_[di].push_back(s.slot);
      return;
    }
    live_[key(r)] = LiveEntry{di, s.slot, dp.steps.size() - 1};
    // A free of this address before its reallocation can no longer be cancelled.
    recent_frees_.erase(key(r));
  }

  void on_free(const trace::Record& r, int64_t t) {
    auto it = live_.find(key(r));
    if (it == live_.end()) {
      if (!not_replayed(r)) ++program_.devices[device_index(r.device)].unknown_frees;
      return;
    }
    const size_t di = it->second.device_index;
    Step s = make_step(r, t, Step::free);
    s.slot = it->second.slot;
    program_.devices[di].steps.push_back(s);
    free_slots_[di].push_back(s.slot);
    remember_free(key(r), it->second, program_.devices[di].steps.size() - 1);
    live_.erase(it);
  }

  void remember_free(uint64_t k, const LiveEntry& entry, size_t free_step) {
    recent_frees_[k] = RecentFree{entry, free_step, ++free_seq_};
    recent_order_.emplace_back(k, free_seq_);
    if (recent_order_.size() <= kRecentFrees) return;
    const auto [oldest, seq] = recent_order_.front();
    recent_order_.pop_front();
    auto it = recent_frees_.find(oldest);
    if (it != recent_frees_.end() && it->second.seq == seq) recent_frees_.erase(it);
  }

  // The real free failed: the allocation stays live and its free step is cancelled.
  void on_free_failed(const trace::Record& r) {
    auto found = recent_frees_.find(key(r));
    if (found == recent_frees_.end()) return;  // too long ago: nothing to undo
    const RecentFree recent = found->second;
    recent_frees_.erase(found);
    const size_t di = recent.entry.device_index;
    DeviceProgram& dp = program_.devices[di];
    // A slot of its own: its old one is spare from the cancelled free on and may have served
    // another allocation since.
    LiveEntry entry = recent.entry;
    entry.slot = dp.slots++;
    dp.steps[entry.alloc_step].slot = entry.slot;
    if (cancelled_.size() <= di) cancelled_.resize(di + 1);
    if (cancelled_[di].size() <= recent.free_step) cancelled_[di].resize(recent.free_step + 1);
    cancelled_[di][recent.free_step] = true;
    live_[key(r)] = entry;
  }

  void on_trim(const trace::Record& r, int64_t t) {
    // Only gpumem's own empty_cache (the C API) concerns gpumem's pools; cuMemPoolTrimTo and
    // cudaMemPoolTrimTo trim CUDA's stream-ordered pool.
    if (r.api != static_cast<uint16_t>(trace::Api::gpumem)) return;
    for (size_t di = 0; di < program_.devices.size(); ++di)
      if (r.device < 0 || program_.devices[di].device == r.device)
        program_.devices[di].steps.push_back(make_step(r, t, Step::empty_cache));
  }

  void on_mark_end(uint64_t string_id) {
    if (open_.empty()) return;
    if (string_id == 0) {
      open_.pop_back();
      return;
    }
    for (size_t i = open_.size(); i-- > 0;)
      if (phase_string_ids_[open_[i]] == string_id) {
        open_.erase(open_.begin() + static_cast<std::ptrdiff_t>(i));
        return;
      }
  }

  uint32_t phase_index(uint64_t string_id) {
    auto [it, added] = phase_by_string_.emplace(string_id, 0);
    if (added) {
      it->second = static_cast<uint32_t>(program_.phases.size());
      program_.phases.emplace_back();
      phase_string_ids_.resize(program_.phases.size());
      phase_string_ids_[it->second] = string_id;
    }
    return it->second;
  }

  Program& program_;
  const trace::Header* header_ = nullptr;
  uint64_t record_ = 0;
  std::unordered_map<int, size_t> by_device_;
  std::vector<std::vector<uint32_t>> free_slots_;
  std::unordered_map<uint64_t, LiveEntry> live_;
  std::unordered_map<uint64_t, RecentFree> recent_frees_;   // by key
  std::deque<std::pair<uint64_t, uint64_t>> recent_order_;  // (key, seq), oldest first
  uint64_t free_seq_ = 0;
  std::vector<std::vector<bool>> cancelled_;  // per device: steps to drop at finish()
  std::unordered_map<uint64_t, std::string> strings_;
  std::unordered_map<uint64_t, uint32_t> phase_by_string_;
  std::vector<uint64_t> phase_string_ids_{0};
  std::vector<uint32_t> open_;
};

// The preload's GPUMEM_POOL_SIZE, from the header's "KEY=VALUE" configuration lines; 0 when the
// line is absent (the limit sized the pool) or not a pool size (the preload refuses to start then).
uint64_t recorded_pool_size(const trace::Header& h) {
  const std::string_view config(h.config, strnlen(h.config, sizeof h.config));
  constexpr std::string_view kKey = "GPUMEM_POOL_SIZE=";
  for (size_t at = 0; at < config.size();) {
    const size_t end = std::min(config.find('\n', at), config.size());
    const std::string_view line = config.substr(at, end - at);
    if (line.starts_with(kKey)) {
      const std::string value(line.substr(kKey.size()));
      uint64_t bytes = 0;
      return pool_size_problem(value.c_str(), &bytes) == nullptr ? bytes : 0;
    }
    at = end + 1;
  }
  return 0;
}

}  // namespace

std::unique_ptr<Program> load_program(const std::string& path, std::string* error) {
  std::unique_ptr<trace::Reader> reader = trace::Reader::open(path, error);
  if (!reader) return nullptr;
  auto program = std::make_unique<Program>();
  const trace::Header& h = reader->header();
  program->path = path;
  program->recorded_pool.assign(h.pool, strnlen(h.pool, sizeof h.pool));
  program->recorded_pool_size = recorded_pool_size(h);
  program->command.assign(h.command, strnlen(h.command, sizeof h.command));
  Compiler compiler(*program);
  compiler.header(h);
  trace::Event ev;
  while (reader->next(&ev)) compiler.feed(ev);
  compiler.finish();
  program->truncated = reader->stats().truncated;
  if (const trace::DroppedSpan* d = reader->dropped()) program->dropped_records = d->records;
  return program;
}

}  // namespace gpumem::replay
