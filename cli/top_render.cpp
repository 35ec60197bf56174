// `gpumem top`'s outputs (top_render.h). Terminal strings from traces (commands, phase names,
// frames) go through visible(): a trace must not be able to send escape sequences.
#include "top_render.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "gpumem/units.h"
#include "gpumem/visible_text.h"

namespace gpumem::cli::top {
namespace {

std::string human(uint64_t bytes, bool exact) {
  if (exact) return std::to_string(bytes);
  char buf[32];
  return format_bytes(bytes, buf, sizeof buf);
}

std::string seconds(int64_t ns) { return fmt::format("{:.1f}s", static_cast<double>(ns) / 1e9); }

std::string rate(double per_s) {
  if (per_s >= 1e6) return fmt::format("{:.1f}M", per_s / 1e6);
  if (per_s >= 1e4) return fmt::format("{:.1f}k", per_s / 1e3);
  return fmt::format("{:.0f}", per_s);
}

// Utilisation now: allocated / reserved ("-" with nothing reserved).
std::string utilisation(const DeviceView& d) {
  if (d.reserved_bytes == 0) return "-";
  return fmt::format("{:.0f}%", 100.0 * static_cast<double>(d.allocated_bytes) /
                                    static_cast<double>(d.reserved_bytes));
}

// The last `width` samples as a sparkline scaled to their own maximum.
std::string sparkline(const std::deque<uint64_t>& h, size_t width, bool utf8) {
  static const char* const kBlocks[] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                        "\u2585", "\u2586", "\u2587", "\u2588"};
  static const char kAscii[] = "_.-=+*#@";
  const size_t n = std::min(h.size(), width);
  uint64_t top = 0;
  for (size_t i = h.size() - n; i < h.size(); ++i) top = std::max(top, h[i]);
  std::string out;
  for (size_t i = h.size() - n; i < h.size(); ++i) {
    const int level =
        top == 0 ? 0 : static_cast<int>(std::lround(7.0 * static_cast<double>(h[i]) /
                                                    static_cast<double>(top)));
    if (utf8)
      out += kBlocks[level];
    else
      out += kAscii[level];
  }
  return out;
}

// Cuts `s` to `width` columns (UTF-8 continuation bytes take none).
std::string fit(const std::string& s, size_t width) {
  size_t cols = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    if (cols == width) break;
    ++cols;
  }
  return s.substr(0, i);
}

std::string pad(const std::string& s, size_t width) {
  std::string out = fit(s, width);
  size_t cols = 0;
  for (char c : out) cols += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return out + std::string(width > cols ? width - cols : 0, ' ');
}

std::string site_label(const analyzer::GroupRow& r, bool exact) {
  if (!r.by_site)
    return "size " + human(r.min_bytes, exact) + " .. " + human(r.max_bytes, exact);
  if (!r.python_line.empty()) return visible(r.python_line);
  if (r.site == 0) return "(no call stack recorded)";
  if (r.frames.empty()) return fmt::format("site {} (stack not in trace)", r.site);
  return visible(r.frames.front());
}

std::string process_label(const ProcessView& p) {
  std::string s = fmt::format("pid {}", p.pid);
  if (p.rank >= 0) s += fmt::format(" rank {}", p.rank);
  return s;
}

}  // namespace

const char* sort_name(SortKey k) {
  switch (k) {
    case SortKey::allocated: return "allocated";
    case SortKey::peak: return "peak";
    case SortKey::reserved: return "reserved";
    case SortKey::pid: return "pid";
  }
  return "allocated";
}

std::vector<const ProcessView*> sorted(std::vector<const ProcessView*> views, SortKey sort) {
  auto total = [sort](const ProcessView* p) {
    uint64_t v = 0;
    for (const DeviceView& d : p->devices)
      v += sort == SortKey::peak       ? d.peak_bytes
           : sort == SortKey::reserved ? d.reserved_bytes
                                       : d.allocated_bytes;
    return v;
  };
  std::stable_sort(views.begin(), views.end(), [&](const ProcessView* a, const ProcessView* b) {
    if (a->ended() != b->ended()) return !a->ended();
    if (sort == SortKey::pid) return a->pid < b->pid;
    const uint64_t x = total(a), y = total(b);
    return x != y ? x > y : a->pid < b->pid;
  });
  return views;
}

std::vector<std::string> screen(const std::vector<const ProcessView*>& views,
                                const ScreenOptions& o) {
  const size_t width = static_cast<size_t>(std::max(o.width, 20));
  std::vector<std::string> lines;
  size_t ended = 0;
  for (const ProcessView* p : views) ended += p->ended();
  lines.push_back(fit(fmt::format("gpumem top  {}  {} process(es), {} ended  every {:g}s  sort: {}",
                                  o.clock, views.size(), ended, o.interval_s, sort_name(o.sort)),
                      width));
  lines.push_back(fit("q quit  s sort  tab processes/sites  d dismiss ended", width));
  const size_t w = o.bytes ? 13 : 10;  // a byte column
  if (o.sites_of < 0 || o.sites_of >= static_cast<int>(views.size())) {
    // PID RANK DEV ALLOCATED RESERVED PEAK AT UTIL FRAG ALLOC/S FAILED STATE PHASE HISTORY
    std::string head = pad("PID", 8) + pad("RANK", 5) + pad("DEV", 4) + pad("ALLOCATED", w + 1) +
                       pad("RESERVED", w + 1) + pad("PEAK", w + 1) + pad("AT", 8) +
                       pad("UTIL", 5) + pad("FRAG", 5) + pad("ALLOC/S", 8) + pad("FAILED", 7) +
                       pad("STATE", 8);
    const size_t fixed = head.size();
    const size_t rest = width > fixed ? width - fixed : 0;
    const size_t phase_w = rest >= 24 ? std::min<size_t>(rest / 2, 24) : rest;
    const size_t hist_w = rest > phase_w + 1 ? rest - phase_w - 1 : 0;
    head += pad("PHASE", phase_w) + (hist_w > 0 ? " " + pad("HISTORY", hist_w) : "");
    lines.push_back(fit(head, width));
    for (const ProcessView* p : views) {
      if (p->devices.empty()) {
        lines.push_back(fit(pad(std::to_string(p->pid), 8) +
                                pad(p->rank >= 0 ? std::to_string(p->rank) : "-", 5) +
                                pad("-", 4) + pad(p->state, 8) + " " + visible(p->note),
                            width));
        continue;
      }
      for (const DeviceView& d : p->devices) {
        std::string l = pad(std::to_string(p->pid), 8) +
                        pad(p->rank >= 0 ? std::to_string(p->rank) : "-", 5) +
                        pad(std::to_string(d.device), 4) + pad(human(d.allocated_bytes, o.bytes), w + 1) +
                        pad(human(d.reserved_bytes, o.bytes), w + 1) +
                        pad(human(d.peak_bytes, o.bytes), w + 1) + pad(seconds(d.peak_time_ns), 8) +
                        pad(utilisation(d), 5) +
                        pad(fmt::format("{:.0f}%", d.fragmentation * 100), 5) +
                        pad(rate(d.allocs_per_second), 8) + pad(std::to_string(d.failed), 7) +
                        pad(p->state, 8);
        l += pad(visible(d.phase.empty() ? "-" : d.phase), phase_w);
        if (hist_w > 0) l += " " + sparkline(d.history, hist_w, o.utf8);
        lines.push_back(fit(l, width));
      }
    }
    // Under the table, what is wrong with each trace that has something to say.
    for (const ProcessView* p : views)
      if (!p->note.empty())
        lines.push_back(fit(fmt::format("{}: {}", process_label(*p), visible(p->note)), width));
  } else {
    const ProcessView& p = *views[static_cast<size_t>(o.sites_of)];
    lines.push_back(fit(fmt::format("{} [{}]  {}  {}", process_label(p), p.state,
                                    visible(p.command), visible(p.path)),
                        width));
    for (const DeviceView& d : p.devices) {
      lines.push_back(fit(fmt::format("device {} {}: {} allocated now, {} reserved; live by {}:",
                                      d.device, visible(d.name), human(d.allocated_bytes, o.bytes),
                                      human(d.reserved_bytes, o.bytes), d.grouped_by),
                          width));
      lines.push_back(fit(pad("BYTES", w + 1) + pad("COUNT", 8) + "SITE", width));
      for (const analyzer::GroupRow& r : d.sites)
        lines.push_back(fit(pad(human(r.bytes, o.bytes), w + 1) +
                                pad(std::to_string(r.count), 8) + site_label(r, o.bytes),
                            width));
    }
  }
  if (lines.size() > static_cast<size_t>(std::max(o.height, 1)))
    lines.resize(static_cast<size_t>(std::max(o.height, 1)));
  return lines;
}

std::string plain_lines(const std::vector<const ProcessView*>& views, const std::string& time_utc) {
  std::string out;
  for (const ProcessView* p : views) {
    if (p->devices.empty()) {
      out += fmt::format("{} pid={} rank={} state={} path=\"{}\" note=\"{}\"\n", time_utc, p->pid,
                         p->rank, p->state, visible(p->path), visible(p->note));
      continue;
    }
    for (const DeviceView& d : p->devices)
      out += fmt::format(
          "{} pid={} rank={} device={} state={} allocated={} reserved={} peak={} peak_at_s={:.3f} "
          "fragmentation={:.4f} allocs={} allocs_per_s={:.1f} failed={} phase=\"{}\"{}\n",
          time_utc, p->pid, p->rank, d.device, p->state, d.allocated_bytes, d.reserved_bytes,
          d.peak_bytes, static_cast<double>(d.peak_time_ns) / 1e9, d.fragmentation, d.allocs,
          d.allocs_per_second, d.failed, visible(d.phase),
          p->note.empty() ? "" : " note=\"" + visible(p->note) + "\"");
  }
  return out;
}

std::string json(const std::vector<const ProcessView*>& views, const std::string& time_utc) {
  nlohmann::ordered_json j;
  j["schema"] = "gpumem.top/1";
  j["time"] = time_utc;
  j["processes"] = nlohmann::ordered_json::array();
  for (const ProcessView* p : views) {
    nlohmann::ordered_json pj;
    pj["path"] = p->path;
    pj["pid"] = p->pid;
    pj["rank"] = p->rank;
    pj["host"] = p->host;
    pj["command"] = p->command;
    pj["state"] = p->state;
    pj["note"] = p->note;
    pj["events"] = p->events;
    pj["last_event_ns"] = p->last_event_ns;
    pj["devices"] = nlohmann::ordered_json::array();
    for (const DeviceView& d : p->devices) {
      nlohmann::ordered_json dj;
      dj["device"] = d.device;
      dj["name"] = d.name;
      dj["capacity_bytes"] = d.capacity_bytes;
      dj["limit_bytes"] = d.limit_bytes;
      dj["allocated_bytes"] = d.allocated_bytes;
      dj["reserved_bytes"] = d.reserved_bytes;
      dj["peak_allocated_bytes"] = d.peak_bytes;
      dj["peak_time_ns"] = d.peak_time_ns;
      dj["peak_phase"] = d.peak_phase;
      if (d.reserved_bytes > 0)
        dj["utilization"] =
            static_cast<double>(d.allocated_bytes) / static_cast<double>(d.reserved_bytes);
      else
        dj["utilization"] = nullptr;
      dj["fragmentation"] = d.fragmentation;
      dj["allocs"] = d.allocs;
      dj["frees"] = d.frees;
      dj["alloc_failed"] = d.failed;
      dj["allocs_per_second"] = d.allocs_per_second;
      dj["phase"] = d.phase;
      dj["grouped_by"] = d.grouped_by;
      nlohmann::ordered_json sites = nlohmann::ordered_json::array();
      for (const analyzer::GroupRow& r : d.sites) {
        nlohmann::ordered_json sj;
        sj["label"] = site_label(r, true);
        sj["site"] = r.site;
        sj["count"] = r.count;
        sj["bytes"] = r.bytes;
        sites.push_back(std::move(sj));
      }
      dj["live"] = std::move(sites);
      pj["devices"].push_back(std::move(dj));
    }
    j["processes"].push_back(std::move(pj));
  }
  // Strings from the traces (device names, phases, frames) may not be UTF-8: written as U+FFFD,
  // as the report does (nlohmann's default throws, and top aborted).
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string prometheus(const std::vector<const ProcessView*>& views) {
  struct Metric {
    const char* name;
    const char* type;
    const char* help;
    double (*value)(const ProcessView&, const DeviceView&);
  };
  static const Metric kMetrics[] = {
      {"gpumem_allocated_bytes", "gauge", "Bytes the process holds allocated on the device now.",
       [](const ProcessView&, const DeviceView& d) { return double(d.allocated_bytes); }},
      {"gpumem_reserved_bytes", "gauge",
       "Bytes taken from the device now (pool segments and direct allocations).",
       [](const ProcessView&, const DeviceView& d) { return double(d.reserved_bytes); }},
      {"gpumem_peak_allocated_bytes", "gauge", "The largest allocated so far.",
       [](const ProcessView&, const DeviceView& d) { return double(d.peak_bytes); }},
      {"gpumem_capacity_bytes", "gauge", "The device's capacity (0 = unknown).",
       [](const ProcessView&, const DeviceView& d) { return double(d.capacity_bytes); }},
      {"gpumem_fragmentation_ratio", "gauge",
       "External fragmentation of the pool segments in the latest timeline box.",
       [](const ProcessView&, const DeviceView& d) { return d.fragmentation; }},
      {"gpumem_allocations_total", "counter", "Allocations made so far.",
       [](const ProcessView&, const DeviceView& d) { return double(d.allocs); }},
      {"gpumem_failed_allocations_total", "counter", "Allocations that failed so far.",
       [](const ProcessView&, const DeviceView& d) { return double(d.failed); }},
      {"gpumem_process_ended", "gauge", "1 once the process ended (cleanly or not).",
       [](const ProcessView& p, const DeviceView&) { return p.ended() ? 1.0 : 0.0; }},
  };
  // Label values escape backslash, quote and newline (the exposition format's rule).
  auto escape = [](const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    return out;
  };
  std::string out;
  for (const Metric& m : kMetrics) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", m.name, m.help, m.name, m.type);
    for (const ProcessView* p : views)
      for (const DeviceView& d : p->devices)
        out += fmt::format("{}{{host=\"{}\",pid=\"{}\",rank=\"{}\",device=\"{}\"}} {}\n", m.name,
                           escape(p->host), p->pid, p->rank, d.device, m.value(*p, d));
  }
  return out;
}

}  // namespace gpumem::cli::top
