// `gpumem top`'s model: each trace it watches is followed as it grows (trace/follow.h) into its own
// streaming Analysis, and each refresh takes the analysis' snapshot (Analysis::snapshot), so every
// number on the screen is the number `gpumem report` gives for the trace as far as it is written.
// The rendering (cmd_top.cpp, top_render.cpp) only reads the views made here.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gpumem/analyzer/analysis.h"
#include "gpumem/analyzer/model.h"
#include "gpumem/trace/reader.h"

namespace gpumem::cli::top {

// One process's device as a refresh saw it.
struct DeviceView {
  int device = 0;
  std::string name;
  uint64_t capacity_bytes = 0;
  uint64_t limit_bytes = 0;
  uint64_t allocated_bytes = 0;  // report: devices[].final.allocated_bytes
  uint64_t reserved_bytes = 0;   // report: devices[].final.reserved_bytes
  uint64_t peak_bytes = 0;       // report: devices[].peak.allocated_bytes
  int64_t peak_time_ns = 0;      // report: devices[].peak.time_ns (since the trace started)
  std::string peak_phase;        // report: devices[].peak.phase ("" = none)
  double fragmentation = 0;      // the timeline's last point (its latest box): fragmentation now
  uint64_t allocs = 0;           // report: devices[].counts.alloc
  uint64_t frees = 0;            // report: devices[].counts.free
  uint64_t failed = 0;           // report: devices[].counts.alloc_failed
  double allocs_per_second = 0;  // since the refresh before (over the whole trace at the first)
  std::string phase;             // the phases open now, outermost first, " > " between
  std::vector<analyzer::GroupRow> sites;  // live now, largest first (report: devices[].leaks)
  std::string grouped_by;                 // "site", "python_line" or "size_class"
  std::deque<uint64_t> history;           // allocated at each refresh, oldest first
};

struct ProcessView {
  std::string path;
  uint32_t pid = 0;
  int rank = -1;
  std::string host;
  std::string command;
  std::string state;  // "running", "ended" (closed cleanly), "killed" (not closed, pid gone),
                      // "waiting" (no readable header yet), "gone" (the file was removed)
  std::string note;   // why the trace is incomplete, or what happened to the file ("" = nothing)
  uint64_t events = 0;
  int64_t last_event_ns = 0;  // since the trace started
  std::vector<DeviceView> devices;
  bool ended() const { return state != "running" && state != "waiting"; }
};

// Follows one trace file.
class Watch {
 public:
  // `key` names the file whichever way its path is spelled (its canonical path).
  Watch(std::string path, std::string key);
  ~Watch();
  // Reads what was appended since the last poll and refreshes view(). `now_s` is the monotonic
  // time of this refresh (for rates); `history` the number of samples kept per device.
  void poll(double now_s, size_t history);
  const ProcessView& view() const { return view_; }
  const std::string& path() const { return path_; }
  const std::string& key() const { return key_; }

 private:
  void restart(const std::string& why);
  void close_file();
  // True when a version-1 trace has nothing new at offset_: the slots there are still zero.
  bool nothing_appended();
  void take_snapshot(double now_s, size_t history);
  // A refresh that read nothing: the view stays, only the history and the rate move on.
  void tick(double now_s, size_t history);

  std::string path_;
  std::string key_;
  std::unique_ptr<analyzer::Analysis> analysis_;
  std::unique_ptr<trace::Reader> reader_;  // the follower, kept between looks (trace/follow.h)
  uint64_t offset_ = 0;  // where the next read starts (trace::resume_offset)
  uint64_t inode_ = 0;
  int fd_ = -1;  // the followed file, for nothing_appended(); closed once it cannot change
  uint32_t version_ = 0;
  int stuck_polls_ = 0;  // polls that read nothing while the writer lives
  bool closed_ = false;
  bool settled_ = false;  // read to its end after its writer was gone: it never changes again
  uint64_t records_ = 0, torn_ = 0, abandoned_ = 0;
  std::string reason_;   // the last reader's truncation reason
  std::string restart_note_;  // why the trace was read again from its start ("" = never)
  // A bounded trace's dropped middle at the last look (GPUMEM_TRACE_MAX): when more is dropped,
  // what was read has moved, and the trace is read again from its start.
  std::optional<trace::DroppedSpan> dropped_;
  double last_poll_s_ = -1;
  ProcessView view_;
};

// Every trace top follows: named files, directories (new *.trace files in them are picked up at
// each refresh) and, with none named, the traces of `gpumem run` programs and the default
// template's traces in the current folder.
class Top {
 public:
  explicit Top(std::vector<std::string> targets);
  void refresh(double now_s, size_t history);
  // Stops showing the processes that ended.
  void dismiss_ended();
  std::vector<const ProcessView*> views() const;
  // Messages about targets that cannot be read (each once).
  std::vector<std::string> take_messages();

 private:
  void discover();
  std::vector<std::string> targets_;
  std::vector<std::unique_ptr<Watch>> watches_;
  std::vector<std::string> dismissed_;
  std::vector<std::string> messages_;
  std::vector<std::string> reported_;
};

// The default targets: the trace paths that running `gpumem run` programs (GPUMEM_RUN in their
// environment) write, and ./gpumem-*.trace (the preload's default template).
std::vector<std::string> default_trace_paths();

}  // namespace gpumem::cli::top
