// Live memory over time split by allocation site (devices[].timeline_by_site): on each point of
// the device timeline, the live bytes of each site at that point's instant (when allocated
// reached its box maximum), so that the sites add up to the timeline's allocated exactly.
//
// One pass, bounded memory: the peak (which picks the series) is known only at the end, so each
// box keeps the breakdown of its maximum by site, the kSitesPerPoint largest sites and the sum of
// the rest, and the series are built from those at the end. The breakdown is copied lazily: after
// a box's maximum the changes are logged (site, bytes), and the state at the maximum is the
// current state minus the log, taken when the box is left, when the log is full, or at the end.
// A steadily growing box logs nothing; a run of frees costs one copy per kMaxLog events.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gpumem/analyzer/model.h"
#include "metrics.h"
#include "timeline.h"

namespace gpumem::analyzer {

// The live bytes by site at one box maximum: the largest sites, and the rest summed.
struct SiteBreakdown {
  std::vector<std::pair<uint32_t, uint64_t>> sites;  // (site, bytes), bytes > 0
  uint64_t rest = 0;                                 // bytes of the sites left out
};

class SiteCapture {
 public:
  static constexpr size_t kSitesPerPoint = 64;
  static constexpr size_t kMaxLog = 1024;

  // Every site the device's live-bytes map (whose nodes never move) holds: a breakdown reads
  // them from this list, faster than walking the map.
  void add_site(uint32_t site, Aggregate& live) { sites_.push_back({site, &live}); }

  void start() { log_.resize(kMaxLog); }
  // `site`'s aggregate just changed by `delta` bytes (modulo 2^64: a free is 0 - bytes).
  void changed(Aggregate& site, uint64_t delta) {
    if (pending_ == 0) return;
    log_[logged_++] = {&site, delta};
    if (logged_ == kMaxLog) capture();  // the log holds this change too: undone with the rest
  }
  // After the timeline took the state: `raised` is the detail slot of the box whose maximum this
  // state became (MaxBoxTimeline::add_tracked), or nullptr.
  void after(uint32_t* raised, MaxBoxTimeline& timeline) {
    if (raised == nullptr) return;
    if (*raised != 0 && *raised == pending_) {  // the same box's maximum, later: nothing to undo
      logged_ = 0;
      return;
    }
    raise(raised, timeline);
  }
  // Takes the pending breakdown (at the end of the run).
  void flush() {
    if (pending_ != 0) capture();
  }
  // The breakdown of a timeline point's detail slot; nullptr for 0 (a maximum reached before
  // any allocation of this device had a site: everything live was then site 0).
  const SiteBreakdown* breakdown(uint32_t detail) const {
    return detail == 0 || detail > details_.size() ? nullptr : &details_[detail - 1];
  }

 private:
  struct Change {
    Aggregate* site;
    uint64_t delta;
  };
  [[gnu::cold, gnu::noinline]] void raise(uint32_t* slot, MaxBoxTimeline& timeline);
  [[gnu::cold, gnu::noinline]] void capture();

  std::vector<std::pair<uint32_t, Aggregate*>> sites_;
  std::vector<SiteBreakdown> details_;  // detail slot d is details_[d - 1]
  uint32_t pending_ = 0;                // the slot whose breakdown is sites_ minus the log
  std::vector<Change> log_;  // kMaxLog entries, the first logged_ in use: never reallocated
  size_t logged_ = 0;
};

// Builds the series: `rows` are peak.live_at_peak (largest first, already merged by Python line),
// whose first `max_series` rows with bytes become the series; `python_line_of(site)` is the
// innermost Python frame of a site's stack ("" for none), the key rows were merged by. Returns
// nothing when the device's allocations never had a site (`capture` is null).
std::optional<SiteTimeline> build_site_timeline(
    const SiteCapture* capture, const std::vector<uint32_t>& point_details,
    const Timeline& timeline, const Peak& peak,
    const std::function<std::string(uint32_t)>& python_line_of, size_t max_series);

}  // namespace gpumem::analyzer
