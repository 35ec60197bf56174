// Phases: the spans between mark_begin and mark_end records (gpumem_mark_begin/end, NVTX ranges),
// nested or overlapping, and the peak each device reached inside each. Open phases are capped
// (begins that never end forget the oldest) and closed ones listed up to max_phases_per_device.
//
// NVTX push/pop ranges (api nvtx without kFlagProcessRange) belong to their thread: an event of
// that thread is in the innermost range the thread has open, with its ancestors (a path key);
// an event of a thread with none open is in the process-wide phase (gpumem marks, NVTX
// start/end ranges), as before NVTX existed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "attribution.h"
#include "devices.h"
#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

class Phases {
 public:
  explicit Phases(size_t max_closed) : max_closed_(max_closed) {}

  // The phase key of an event of thread `tid`: the innermost NVTX push range that thread has open
  // (a path key), else the most recently begun process-wide phase still open (its name id + 1),
  // 0 = none. The devices keep it with their peaks; every event asks for it.
  uint64_t current(uint32_t tid) const {
    if (thread_top_.empty()) return current_;
    auto it = thread_top_.find(tid);
    return it != thread_top_.end() ? it->second : current_;
  }
  bool any_open() const { return !open_.empty(); }
  // A phase key as a name: the innermost one (nothing for 0).
  std::optional<std::string> name(uint64_t key, const Attribution& strings) const;
  // A path key's names, outermost first, and its thread; empty for other keys.
  std::vector<std::string> path(uint64_t key, const Attribution& strings) const;
  std::optional<uint32_t> thread(uint64_t key) const;

  // `devices` gives each device's numbers at the start. `range_id`: an NVTX range's id (0 for
  // gpumem marks); `tid` != 0 makes it a push range of that thread.
  void begin(uint64_t name_id, int64_t t_ns, const Devices& devices, uint64_t range_id = 0,
             uint32_t tid = 0);
  // Ends the open range with that id; without one, the most recent open phase of that name (name
  // 0, or none of it open: the most recent).
  void end(uint64_t name_id, int64_t t_ns, uint64_t range_id = 0);
  // A device's numbers changed at t_ns: raise the peaks of every open phase (process-wide or an
  // NVTX push range of any thread).
  void device_changed(const DeviceState& device, int64_t t_ns) {
    if (!open_.empty()) raise_peaks(device, t_ns);
  }

  // An instant marker (Op::mark) of thread `tid`.
  void mark(uint64_t name_id, int64_t t_ns, uint32_t tid) {
    if (marks_.size() < kMaxMarks)
      marks_.push_back({name_id, t_ns, tid});
    else
      ++marks_omitted_;
  }
  std::vector<MarkRow> mark_rows(const Attribution& strings) const;
  uint64_t marks_omitted() const { return marks_omitted_; }
  static constexpr size_t kMaxMarks = 10000;

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
    uint64_t range_id = 0;
    uint32_t tid = 0;       // != 0: an NVTX push range of that thread
    uint64_t path_key = 0;  // its path key when tid != 0
  };
  // A thread's range inside its ancestors; path keys are kPathKey | index into paths_.
  struct PathNode {
    uint64_t parent;  // path key, 0 = outermost
    uint64_t name_id;
    uint32_t tid;
  };
  static constexpr uint64_t kPathKey = 1ull << 63;
  struct Closed {
    Open phase;
    int64_t end_ns;
    bool closed;
  };

  void raise_peaks(const DeviceState& device, int64_t t_ns);
  void open_changed();
  uint64_t path_key(uint64_t parent, uint64_t name_id, uint32_t tid);
  bool is_path(uint64_t key) const;
  static PhasePeak row(const Closed& p, int ordinal, const Attribution& strings);

  size_t max_closed_;
  std::vector<Open> open_;
  uint64_t current_ = 0;  // phase key of the last process-wide entry of open_
  std::unordered_map<uint32_t, uint64_t> thread_top_;  // threads with push ranges open
  std::vector<PathNode> paths_;
  std::map<std::tuple<uint64_t, uint64_t, uint32_t>, uint64_t> path_index_;
  struct Mark {
    uint64_t name_id;
    int64_t t_ns;
    uint32_t tid;
  };
  std::vector<Mark> marks_;
  uint64_t marks_omitted_ = 0;
  std::vector<Closed> closed_;
  uint64_t omitted_ = 0;
};

}  // namespace gpumem::analyzer
