// The devices of one trace: a DeviceState per ordinal seen, what the header and device_info
// records say about each, and pinned host memory, counted apart from every device.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "device_state.h"
#include "gpumem/analyzer/analysis.h"
#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

class Devices {
 public:
  struct Info {
    std::string name;
    uint64_t capacity = 0;
    uint64_t limit = 0;
  };

  explicit Devices(const AnalysisOptions& options) : options_(options) {}
  // Before the first get(): each device logs its reserved bytes (a shared budget's process).
  void log_reserved() { log_reserved_ = true; }

  // The device's state, made on first use.
  DeviceState& get(int ordinal) {
    // Nearly every record names the same device as the one before it: skip the map lookup.
    if (last_ != nullptr && last_ordinal_ == ordinal) [[likely]]
      return *last_;
    return find(ordinal);
  }
  // The device of the last get(), for the fast path; nullptr before the first.
  DeviceState* last() const { return last_; }
  bool has(int ordinal) const { return states_.count(ordinal) != 0; }

  // From the header, then from device_info records (which may come later and say more).
  Info& info(int ordinal) { return info_[ordinal]; }
  const Info* find_info(int ordinal) const {
    auto it = info_.find(ordinal);
    return it != info_.end() ? &it->second : nullptr;
  }

  // Every device seen, in ordinal order: f(ordinal, DeviceState&).
  template <class F>
  void for_each(F&& f) {
    for (auto& [ordinal, state] : states_) f(ordinal, *state);
  }
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [ordinal, state] : states_) f(ordinal, std::as_const(*state));
  }

 private:
  [[gnu::noinline]] DeviceState& find(int ordinal) {
    auto it = states_.find(ordinal);
    if (it == states_.end()) {
      it = states_.emplace(ordinal, std::make_unique<DeviceState>(ordinal, options_)).first;
      if (log_reserved_) it->second->keep_reserved_log();
    }
    last_ordinal_ = ordinal;
    last_ = it->second.get();
    return *last_;
  }

  const AnalysisOptions& options_;
  bool log_reserved_ = false;
  std::map<int, std::unique_ptr<DeviceState>> states_;
  std::map<int, Info> info_;
  int last_ordinal_ = 0;
  DeviceState* last_ = nullptr;
};

// Pinned host memory (cudaMallocHost and the like): counted, never part of a device's numbers.
class PinnedHostCount {
 public:
  void alloc(uint64_t bytes) {
    ++numbers_.alloc;
    live_ += bytes;
    numbers_.peak_bytes = std::max(numbers_.peak_bytes, live_);
  }
  void free(uint64_t bytes) {
    ++numbers_.free;
    live_ -= bytes;
  }
  // Undoes free() after the real free failed.
  void unfree(uint64_t bytes) {
    --numbers_.free;
    live_ += bytes;
    numbers_.peak_bytes = std::max(numbers_.peak_bytes, live_);
  }
  PinnedHost report() const {
    PinnedHost p = numbers_;
    p.final_bytes = live_;
    return p;
  }

 private:
  PinnedHost numbers_;
  uint64_t live_ = 0;
};

}  // namespace gpumem::analyzer
