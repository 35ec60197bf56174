// Phases: the spans between mark_begin and mark_end records (gpumem_mark_begin/end), nested or
// overlapping, and the peak each device reached inside each. Open phases are capped (begins
// that never end forget the oldest) and closed ones listed up to max_phases_per_device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "attribution.h"
#include "devices.h"
#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

class Phases {
 public:
  explicit Phases(size_t max_closed) : max_closed_(max_closed) {}

  // The phase key of the most recently begun phase still open: its name id + 1, 0 = none. The
  // devices keep it with their peaks; every event asks for it.
  uint64_t current() const { return current_; }
  // A phase key as a name (nothing for 0).
  static std::optional<std::string> name(uint64_t key, const Attribution& strings) {
    if (key == 0) return std::nullopt;
    return strings.string_or_id(key - 1);
  }

  // `devices` gives each device's numbers at the start.
  void begin(uint64_t name_id, int64_t t_ns, const Devices& devices);
  // Ends the most recent open phase of that name (name 0, or none of it open: the most recent).
  void end(uint64_t name_id, int64_t t_ns);
  // A device's numbers changed at t_ns: raise the peaks of every open phase.
  void device_changed(const DeviceState& device, int64_t t_ns) {
    if (current_ != 0) raise_peaks(device, t_ns);
  }

  // The rows of one device: closed phases in the order they ended, then those still open
  // (ending at last_ns).
  std::vector<PhasePeak> rows(int ordinal, int64_t last_ns, const Attribution& strings) const;
  uint64_t omitted() const { return omitted_; }

 private:
  static constexpr size_t kMaxOpen = 1024;
  struct DevicePeak {
    int device;
    uint64_t allocated;
    int64_t t_ns;
    uint64_t reserved;
  };
  struct Open {
    uint64_t name_id;
    int64_t start_ns;
    std::vector<DevicePeak> peaks;
  };
  struct Closed {
    Open phase;
    int64_t end_ns;
    bool closed;
  };

  void raise_peaks(const DeviceState& device, int64_t t_ns);
  void open_changed() { current_ = open_.empty() ? 0 : open_.back().name_id + 1; }
  static PhasePeak row(const Closed& p, int ordinal, const Attribution& strings);

  size_t max_closed_;
  std::vector<Open> open_;
  uint64_t current_ = 0;  // phase key of open_.back()
  std::vector<Closed> closed_;
  uint64_t omitted_ = 0;
};

}  // namespace gpumem::analyzer
