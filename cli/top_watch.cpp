// Following traces for `gpumem top` (top_watch.h).
#include "top_watch.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "gpumem/trace/follow.h"
#include "gpumem/trace/reader.h"
#include "gpumem/trace_name.h"

namespace gpumem::cli::top {
namespace {

// A slot the writer reserved and has not committed after this many polls is not in flight: it
// was cut (a thread stopped mid-record), and is read past as the report reads it.
constexpr int kStuckPolls = 3;

// nothing_appended() looks at this much of the file after what was read: 1024 slots.
constexpr size_t kZeroWindowBytes = 64 * 1024;
// ... of which it reads this much first (64 slots): enough to see a record appended.
constexpr size_t kFirstLookBytes = 4 * 1024;

// Timeline points of top's analyses (gpumem report --points 240 gives the same timeline).
constexpr size_t kTimelinePoints = 240;

bool same_host(const std::string& host) {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return host.empty() || host == name;
}

bool pid_alive(uint32_t pid) {
  if (pid == 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Watch::Watch(std::string path, std::string key) : path_(std::move(path)), key_(std::move(key)) {
  view_.path = path_;
  view_.state = "waiting";
}
Watch::~Watch() { close_file(); }

void Watch::close_file() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  reader_.reset();
}

void Watch::restart(const std::string& why) {
  analysis_.reset();
  close_file();
  offset_ = trace::kHeaderSize;
  records_ = torn_ = abandoned_ = 0;
  stuck_polls_ = 0;
  closed_ = settled_ = false;
  for (DeviceView& d : view_.devices) d.history.clear();
  restart_note_ = why;
}

bool Watch::nothing_appended() {
  // Version 1 only: its writer reserves slots in file order in zeroed space, so if the slots from
  // offset_ on are zero nothing was appended since, and no slot in flight (zero until filled) has
  // a committed one after it for the read to hold before or, after three looks, read past. The
  // window is longer than any record the writer reserves at once but a 64 KiB string.
  // Version 2's offset counts records, not bytes: always read.
  if (version_ != trace::kVersion) return false;
  if (fd_ < 0) {
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st {};
    if (fd_ >= 0 && (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode) ||
                     static_cast<uint64_t>(st.st_ino) != inode_)) {
      ::close(fd_);
      fd_ = -1;
    }
    if (fd_ < 0) return false;
  }
  // A clean close appends nothing (unless a slot was in flight): its header says it.
  uint32_t flags = 0;
  if (::pread(fd_, &flags, sizeof flags, offsetof(trace::Header, flags)) != sizeof flags ||
      (flags & trace::kHeaderClosed) != 0)
    return false;
  // The window's first slots are read alone: when records were appended they hold the first,
  // and the rest of the window is not copied for nothing (the follower reads those bytes next).
  static uint64_t window[kZeroWindowBytes / sizeof(uint64_t)];  // top reads on one thread
  for (size_t from = 0, to = kFirstLookBytes; from < kZeroWindowBytes;
       from = to, to = kZeroWindowBytes) {
    const ssize_t got = ::pread(fd_, reinterpret_cast<char*>(window) + from, to - from,
                                static_cast<off_t>(offset_ + from));
    if (got < 0) return false;
    const size_t words = static_cast<size_t>(got) / sizeof(uint64_t);
    for (size_t i = 0; i < words; ++i)
      if (window[from / sizeof(uint64_t) + i] != 0) return false;
    if (static_cast<size_t>(got) < to - from) break;  // the end of the file
  }
  return true;
}

void Watch::poll(double now_s, size_t history) {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    if (analysis_ != nullptr) view_.state = "gone", view_.note = "the trace file was removed";
    close_file();  // a removed file's blocks are freed only once nothing holds it open
    return;
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  // Shorter than what was read: records read are gone. (Shorter than before but not than that
  // is the writer trimming its unused end at a clean close.) A version-2 trace's offset_ counts
  // records, not bytes: its file is shorter than that by design.
  if (analysis_ != nullptr && (st.st_ino != inode_ || (version_ == 1 && size < offset_))) {
    restart(st.st_ino != inode_ ? "the trace file was replaced: read again from its start"
                                : "the trace file was truncated: read again from its start");
  }
  // A clean close, or a dead writer's trace read to its end, never changes again.
  if (analysis_ != nullptr && (closed_ || settled_)) return tick(now_s, history);
  const bool alive = view_.pid != 0 && same_host(view_.host) && pid_alive(view_.pid);
  const bool hold = analysis_ == nullptr || (alive && stuck_polls_ < kStuckPolls);
  // Nothing appended since the last look: no read and no snapshot.
  if (analysis_ != nullptr && alive && nothing_appended()) return tick(now_s, history);
  // The follower of the last look goes on from where it stopped; a new one only at the first look
  // (or when it cannot go on: a bounded trace, whose window turns).
  if (reader_ == nullptr || analysis_ == nullptr || !trace::follow_on(*reader_, hold)) {
    std::string error;
    reader_ = trace::open_from(path_, analysis_ != nullptr ? offset_ : trace::kHeaderSize, hold,
                               &error);
    if (reader_ == nullptr) {
      if (analysis_ == nullptr) view_.note = error;  // a header not written yet, or not a trace
      return;
    }
  }
  trace::Reader* reader = reader_.get();
  const trace::DroppedSpan* dropped = reader->dropped();
  if (analysis_ != nullptr && (dropped != nullptr ? dropped->records : 0) !=
                                  (dropped_ ? dropped_->records : 0)) {
    // Taken before restart() lets the reader (which owns *dropped) go.
    dropped_ = dropped != nullptr ? std::optional<trace::DroppedSpan>(*dropped) : std::nullopt;
    restart("the bounded trace (GPUMEM_TRACE_MAX) dropped more of its middle: read again from "
            "its start");
    return poll(now_s, history);
  }
  if (dropped != nullptr) dropped_ = *dropped;
  const trace::Header* h = &reader->header();
  const bool first = analysis_ == nullptr;
  if (first) {
    // A coarser timeline than the report's 2000 points: each refresh's snapshot builds it (and
    // its series by site) again, and a box per record is what following costs most at low rates.
    // Enough for the history graph's first look; `fragmentation` is its last point.
    analyzer::AnalysisOptions options;
    options.max_points = std::max(kTimelinePoints, history);
    options.site_series = false;  // timeline_by_site: not shown
    analysis_ = std::make_unique<analyzer::Analysis>(options);
    analysis_->begin_trace(*h, path_);
    inode_ = st.st_ino;
    version_ = h->version;
    offset_ = trace::kHeaderSize;
    view_.pid = h->pid;
    view_.rank = h->rank;
    view_.host = std::string(h->host, strnlen(h->host, sizeof h->host));
    view_.command = std::string(h->command, strnlen(h->command, sizeof h->command));
  }
  bool changed = first;
  uint64_t records = 0;
  auto read = [&] {
    trace::Batch batch;
    while (reader->next_batch(&batch)) analysis_->feed(batch);
    const trace::ReadStats& s = reader->stats();
    records += s.records;
    records_ += s.records;
    torn_ += s.torn;
    abandoned_ += s.abandoned;
    changed |= s.records > 0 || s.torn > 0 || s.abandoned > 0 || reason_ != s.reason;
    reason_ = s.reason;
  };
  read();
  closed_ = (h->flags & trace::kHeaderClosed) != 0;
  // Closed cleanly (the header is read again at each look: it may have closed since `hold` was
  // chosen): nothing is in flight any more, so a slot still not committed is damage and the rest
  // is read past it, as the report reads it. Without this, a closed trace's records after such
  // a slot were never read: top showed fewer events than `gpumem report` for good. (A follower
  // that cannot go on, a bounded trace's, is opened again where it stopped.)
  if (closed_ && hold) {
    if (!trace::follow_on(*reader, false)) {
      std::string error;
      if (auto again = trace::open_from(path_, trace::resume_offset(*reader), false, &error)) {
        reader_ = std::move(again);
        reader = reader_.get();
        h = &reader->header();
      }
    }
    read();
  }
  const uint64_t resume = trace::resume_offset(*reader);
  stuck_polls_ = resume == offset_ && records == 0 ? stuck_polls_ + 1 : 0;
  offset_ = resume;
  // Names the header gained since the first look (CUDA initialised after the trace opened).
  for (DeviceView& d : view_.devices)
    if (d.device >= 0 && d.device < trace::kMaxDevices && h->devices[d.device].present)
      d.name = h->devices[d.device].name;
  const std::string before = view_.state;
  if (closed_)
    view_.state = "ended";
  else if (view_.pid != 0 && same_host(view_.host) && !pid_alive(view_.pid))
    view_.state = "killed";
  else
    view_.state = "running";
  // Read without holding after its writer was gone: what is there now is all there will be.
  settled_ = !hold && !alive && view_.state == "killed";
  if (closed_ || settled_) close_file();  // never looked at again: one descriptor less
  if (changed || view_.state != before) take_snapshot(now_s, history);
  else tick(now_s, history);
}

void Watch::tick(double now_s, size_t history) {
  const double dt = last_poll_s_ >= 0 ? now_s - last_poll_s_ : 0;
  if (dt <= 0) return;
  for (DeviceView& d : view_.devices) {
    d.allocs_per_second = 0;
    d.history.push_back(d.allocated_bytes);
    while (d.history.size() > history) d.history.pop_front();
  }
  last_poll_s_ = now_s;
}

void Watch::take_snapshot(double now_s, size_t history) {
  trace::ReadStats stats;
  stats.records = records_;
  stats.torn = torn_;
  stats.abandoned = abandoned_;
  stats.truncated = !reason_.empty();
  stats.reason = reason_;
  stats.dropped_span = dropped_ ? &*dropped_ : nullptr;
  const analyzer::Report r = analysis_->snapshot(stats);
  if (r.traces.empty()) return;
  const analyzer::TraceSummary& t = r.traces.front();
  view_.events = t.events;
  view_.last_event_ns = t.last_ns;
  view_.note = restart_note_;
  if (view_.state == "killed" || (view_.state == "ended" && t.truncated))
    view_.note += (view_.note.empty() ? "" : "; ") + t.truncated_reason;
  const double dt = last_poll_s_ >= 0 ? now_s - last_poll_s_ : 0;
  std::vector<DeviceView> devices;
  for (const analyzer::DeviceReport& d : r.devices) {
    DeviceView v;
    // What only the refreshes know (history, the rate) carries over from the last view.
    auto before = std::find_if(view_.devices.begin(), view_.devices.end(),
                               [&](const DeviceView& o) { return o.device == d.device; });
    v.device = d.device;
    v.name = !d.name.empty() ? d.name : before != view_.devices.end() ? before->name : "";
    v.capacity_bytes = d.capacity_bytes;
    v.limit_bytes = d.limit_bytes;
    v.allocated_bytes = d.final.allocated_bytes;
    v.reserved_bytes = d.final.reserved_bytes;
    v.peak_bytes = d.peak.allocated_bytes;
    v.peak_time_ns = d.peak.time_ns;
    v.peak_phase = d.peak.phase.value_or("");
    v.fragmentation = d.timeline.fragmentation.empty() ? 0 : d.timeline.fragmentation.back();
    v.allocs = d.counts.alloc;
    v.frees = d.counts.free;
    v.failed = d.counts.alloc_failed;
    if (before != view_.devices.end() && dt > 0)
      v.allocs_per_second = static_cast<double>(v.allocs - before->allocs) / dt;
    else
      v.allocs_per_second = d.churn.allocs_per_second;
    for (const analyzer::PhasePeak& p : d.phases) {
      if (p.closed) continue;
      v.phase += (v.phase.empty() ? "" : " > ") + p.name;
    }
    v.sites = d.leaks;
    v.grouped_by = d.peak.grouped_by;
    if (before != view_.devices.end()) {
      v.history = std::move(before->history);
    } else {
      // The first look: the run so far, from the report's timeline (box maxima).
      const auto& a = d.timeline.allocated;
      const size_t from = a.size() > history ? a.size() - history : 0;
      v.history.assign(a.begin() + static_cast<ptrdiff_t>(from), a.end());
    }
    if (before == view_.devices.end() || dt > 0 || v.history.empty())
      v.history.push_back(v.allocated_bytes);
    while (v.history.size() > history) v.history.pop_front();
    devices.push_back(std::move(v));
  }
  view_.devices = std::move(devices);
  last_poll_s_ = now_s;
}

Top::Top(std::vector<std::string> targets) : targets_(std::move(targets)) {}

void Top::discover() {
  std::vector<std::string> files;
  const std::vector<std::string> targets =
      targets_.empty() ? default_trace_paths() : targets_;
  for (const std::string& t : targets) {
    std::error_code ec;
    if (std::filesystem::is_directory(t, ec)) {
      for (const auto& e : std::filesystem::directory_iterator(t, ec)) {
        const std::string p = e.path().string();
        if (ends_with(p, ".trace") && e.is_regular_file(ec)) files.push_back(p);
      }
    } else if (std::filesystem::exists(t, ec)) {
      files.push_back(t);
    } else if (!targets_.empty() &&
               std::find(reported_.begin(), reported_.end(), t) == reported_.end()) {
      reported_.push_back(t);
      messages_.push_back("'" + t + "' does not exist (yet): watching for it; pass a trace file "
                          "or a folder of *.trace files");
    }
  }
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) {
    // A path followed already: its canonical path is known (working it out again at each
    // refresh costs a few system calls a file).
    if (std::any_of(watches_.begin(), watches_.end(),
                    [&](const auto& w) { return w->path() == f; }))
      continue;
    std::error_code ec;
    std::string key = std::filesystem::weakly_canonical(f, ec).string();
    if (ec) key = f;
    if (std::find(dismissed_.begin(), dismissed_.end(), key) != dismissed_.end()) continue;
    auto known = std::find_if(watches_.begin(), watches_.end(),
                              [&](const auto& w) { return w->key() == key; });
    if (known == watches_.end()) watches_.push_back(std::make_unique<Watch>(f, key));
  }
}

void Top::refresh(double now_s, size_t history) {
  discover();
  for (auto& w : watches_) w->poll(now_s, history);
}

void Top::dismiss_ended() {
  for (auto it = watches_.begin(); it != watches_.end();) {
    if ((*it)->view().ended()) {
      dismissed_.push_back((*it)->key());
      it = watches_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<const ProcessView*> Top::views() const {
  std::vector<const ProcessView*> out;
  for (const auto& w : watches_)
    if (w->view().state != "waiting" || !w->view().note.empty()) out.push_back(&w->view());
  return out;
}

std::vector<std::string> Top::take_messages() {
  std::vector<std::string> out;
  out.swap(messages_);
  return out;
}

std::vector<std::string> default_trace_paths() {
  std::set<std::string> paths;
  // ./gpumem-*.trace: the preload's default template, in this folder.
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(".", ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("gpumem-", 0) == 0 && ends_with(name, ".trace"))
      paths.insert("./" + name);
  }
  // Programs started by `gpumem run` carry GPUMEM_RUN; their GPUMEM_TRACE names the trace.
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return {paths.begin(), paths.end()};
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  while (dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::ifstream env(std::string("/proc/") + e->d_name + "/environ", std::ios::binary);
    if (!env) continue;
    const std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
    if (all.find("GPUMEM_RUN=") == std::string::npos) continue;
    std::string tmpl = "gpumem-%p.trace";
    int rank = -1;
    for (size_t at = 0; at < all.size();) {
      size_t next = all.find('\0', at);
      if (next == std::string::npos) next = all.size();
      const std::string var = all.substr(at, next - at);
      if (var.rfind("GPUMEM_TRACE=", 0) == 0) tmpl = var.substr(13);
      at = next + 1;
    }
    if (tmpl == "off" || tmpl.find("%t") != std::string::npos) continue;  // %t: not knowable
    rank = rank_from_environment([&](const char* name) -> const char* {
      static thread_local std::string value;
      const std::string key = std::string(name) + "=";
      for (size_t at = 0; at < all.size();) {
        size_t next = all.find('\0', at);
        if (next == std::string::npos) next = all.size();
        if (all.compare(at, key.size(), key) == 0) {
          value = all.substr(at + key.size(), next - at - key.size());
          return value.c_str();
        }
        at = next + 1;
      }
      return nullptr;
    });
    char out[4096];
    if (!expand_trace_template(tmpl.c_str(), static_cast<int>(pid), host, rank, 0, out,
                               sizeof out))
      continue;
    std::string path = out;
    if (path.empty() || path[0] != '/') {
      char cwd[4096];
      const std::string link = std::string("/proc/") + e->d_name + "/cwd";
      const ssize_t n = ::readlink(link.c_str(), cwd, sizeof cwd - 1);
      if (n <= 0) continue;
      path = std::string(cwd, static_cast<size_t>(n)) + "/" + path;
    }
    if (std::filesystem::exists(path, ec)) paths.insert(path);
  }
  ::closedir(proc);
  return {paths.begin(), paths.end()};
}

}  // namespace gpumem::cli::top
