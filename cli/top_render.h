// What `gpumem top` prints from its views (top_watch.h): the terminal screen, the plain lines
// for a stdout that is not a terminal, the --json snapshot and the Prometheus text exposition.
#pragma once

#include <string>
#include <vector>

#include "top_watch.h"

namespace gpumem::cli::top {

enum class SortKey { allocated, peak, reserved, pid };
const char* sort_name(SortKey k);

struct ScreenOptions {
  int width = 80;
  int height = 24;
  SortKey sort = SortKey::allocated;
  int sites_of = -1;       // -1: the process table; else the sites of that process (its index)
  bool bytes = false;      // exact byte counts instead of KiB/MiB/GiB
  bool utf8 = true;        // block characters for the history, else ASCII
  double interval_s = 1;
  std::string clock;       // the refresh's wall-clock time, HH:MM:SS
};

// The views sorted by opts.sort (ended processes last).
std::vector<const ProcessView*> sorted(std::vector<const ProcessView*> views, SortKey sort);

// The screen as lines, each at most opts.width columns, at most opts.height lines.
std::vector<std::string> screen(const std::vector<const ProcessView*>& views,
                                const ScreenOptions& opts);

// One line per process and device: "key=value" fields, for logs and scripts.
std::string plain_lines(const std::vector<const ProcessView*>& views, const std::string& time_utc);

// The snapshot as JSON (schema gpumem.top/1, docs/top.md).
std::string json(const std::vector<const ProcessView*>& views, const std::string& time_utc);

// The Prometheus text exposition format (version 0.0.4) of the same numbers.
std::string prometheus(const std::vector<const ProcessView*>& views);

}  // namespace gpumem::cli::top
