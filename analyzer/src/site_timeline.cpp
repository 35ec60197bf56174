// See site_timeline.h.
#include "site_timeline.h"

#include <algorithm>
#include <unordered_map>

namespace gpumem::analyzer {

void SiteCapture::raise(uint32_t* slot, MaxBoxTimeline& timeline) {
  // The box pending until now is left at its maximum: its breakdown is now minus the log (which
  // holds this state's own change too).
  if (pending_ != 0) capture();
  if (*slot == 0) {
    std::vector<uint32_t>& dropped = timeline.dropped_details();
    if (!dropped.empty()) {
      *slot = dropped.back();
      dropped.pop_back();
    } else {
      details_.emplace_back();
      *slot = static_cast<uint32_t>(details_.size());
    }
  }
  pending_ = *slot;
  logged_ = 0;
}

void SiteCapture::capture() {
  SiteBreakdown& out = details_[pending_ - 1];
  out.sites.clear();
  out.rest = 0;
  for (size_t i = logged_; i-- > 0;) log_[i].site->bytes -= log_[i].delta;
  for (const auto& [site, live] : sites_)
    if (live->bytes != 0) out.sites.emplace_back(site, live->bytes);
  for (size_t i = 0; i < logged_; ++i) log_[i].site->bytes += log_[i].delta;
  if (out.sites.size() > kSitesPerPoint) {
    // The largest sites; ties by site, so the choice never depends on the map's order.
    auto larger = [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    };
    std::nth_element(out.sites.begin(), out.sites.begin() + kSitesPerPoint, out.sites.end(),
                     larger);
    for (size_t i = kSitesPerPoint; i < out.sites.size(); ++i) out.rest += out.sites[i].second;
    out.sites.resize(kSitesPerPoint);
  }
  pending_ = 0;
  logged_ = 0;
}

std::optional<SiteTimeline> build_site_timeline(
    const SiteCapture* capture, const std::vector<uint32_t>& point_details,
    const Timeline& timeline, const Peak& peak,
    const std::function<std::string(uint32_t)>& python_line_of, size_t max_series) {
  if (capture == nullptr || peak.grouped_by == "size_class") return std::nullopt;
  SiteTimeline out;
  out.grouped_by = peak.grouped_by;
  // A row's key: its Python line when it has one (rows were merged by it), else its site.
  auto row_key = [](const GroupRow& r) {
    return r.python_line.empty() ? "site " + std::to_string(r.site) : "line " + r.python_line;
  };
  std::unordered_map<std::string, size_t> series_of_key;
  for (const GroupRow& r : peak.live_at_peak) {
    if (out.sites.size() >= max_series) break;
    if (r.bytes == 0) continue;
    series_of_key.emplace(row_key(r), out.sites.size());
    out.sites.push_back(r);
  }
  const size_t n = timeline.t_ns.size();
  out.bytes.assign(out.sites.size(), std::vector<uint64_t>(n, 0));
  out.other.assign(n, 0);
  // Which series each site feeds (npos: other), looked up once per site.
  constexpr size_t kOther = SIZE_MAX;
  std::unordered_map<uint32_t, size_t> series_of_site;
  auto series = [&](uint32_t site) {
    auto [it, inserted] = series_of_site.emplace(site, kOther);
    if (inserted) {
      GroupRow probe;
      probe.site = site;
      probe.python_line = python_line_of(site);
      if (auto k = series_of_key.find(row_key(probe)); k != series_of_key.end())
        it->second = k->second;
    }
    return it->second;
  };
  for (size_t i = 0; i < n; ++i) {
    uint64_t shown = 0;  // every site's bytes at the point
    const SiteBreakdown* b =
        i < point_details.size() ? capture->breakdown(point_details[i]) : nullptr;
    if (b == nullptr) {
      // Reached before this device saw a site: all of it was site 0's.
      if (size_t k = series(0); k != kOther) out.bytes[k][i] = timeline.allocated[i];
      shown = timeline.allocated[i];
    } else {
      for (const auto& [site, bytes] : b->sites) {
        if (size_t k = series(site); k != kOther) out.bytes[k][i] += bytes;
        shown += bytes;
      }
      shown += b->rest;
    }
    uint64_t in_series = 0;
    for (size_t k = 0; k < out.sites.size(); ++k) in_series += out.bytes[k][i];
    // From the breakdown, not from timeline.allocated: that the two agree at every point is
    // what analyzer.SiteTimeline.* check.
    out.other[i] = shown - in_series;
  }
  return out;
}

}  // namespace gpumem::analyzer
