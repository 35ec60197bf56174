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

std::string render_text(const Report& report, const TextOptions& options = {});

}  // namespace gpumem::analyzer
