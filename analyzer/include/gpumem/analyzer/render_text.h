// The terminal summary: what heaptrack_print gives for host memory, for the GPU. Human units.
#pragma once

#include <cstddef>
#include <string>

#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

struct TextOptions {
  size_t top_rows = 10;    // live-at-peak and leak rows shown per device
  size_t max_frames = 4;   // frames shown per call site
  size_t max_phases = 20;  // phase rows shown per device (largest peaks first)
  size_t max_anomalies = 10;
};

// The OOM section first (render_oom_text for each listed failure), then every trace and device.
std::string render_text(const Report& report, const TextOptions& options = {});

// One failed allocation explained: the request, the state, what was live by site and by module,
// the waste, what would fit and the advice (docs/oom.md). Also what `gpumem run` prints on stderr
// after a program whose allocation failed for good.
std::string render_oom_text(const Oom& oom, const TextOptions& options = {});

}  // namespace gpumem::analyzer
