// The Perfetto export: the report's timelines, phases, peaks and failed allocations as a Trace
// Event Format JSON file that ui.perfetto.dev (and chrome://tracing) opens. The mapping is
// documented in docs/report-html.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

// Lays phases out on tracks so that slices on one track never partly overlap: on a track, two
// phases are either disjoint or one holds the other. Returns the track (0 = outermost) of each
// phase, in the order given. Phases that partly overlap go to the next free track.
std::vector<int> phase_tracks(const std::vector<PhasePeak>& phases);

nlohmann::json perfetto_json(const Report& report);
std::string render_perfetto(const Report& report);

}  // namespace gpumem::analyzer
