// `gpumem replay TRACE [--pool none|growth|fixed] [--limit X] [--pool-size X] [--capacity X]
// [--json F] [--no-search]`: the whole command, for cli/cmd_replay.cpp and tests.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "gpumem/replay/replay.h"

namespace gpumem::replay {

struct ReplayCommandOptions {
  std::string trace;
  std::string shown_as;   // the input's name in the output; "" = trace (a snapshot converted to
                          // a temporary trace is named as the user gave it)
  std::string pool = "none";
  std::string limit;      // "" = the recorded limit, else none (the capacity)
  std::string capacity;   // "" = the trace's capacity
  std::string pool_size;  // fixed pool's size; "" = the recorded GPUMEM_POOL_SIZE, else the limit
  std::string json_path;  // "" = none, "-" = stdout (then no text)
  bool search = true;     // smallest limit per policy
};

// Exit status: 0 the replay ran (fits or not: see the output), 1 the trace could not be read or the
// JSON not written, 2 bad options. Text on stdout, messages on stderr.
int replay_main(const ReplayCommandOptions& options);

// The analysis behind it, as the JSON document (schema "gpumem.replay/1", docs/replay-fit.md).
// Returns false and sets *error for bad options.
bool replay_to_json(const Program& program, Policy policy, const std::string& limit,
                    const std::string& capacity, const std::string& pool_size, bool search,
                    nlohmann::json* out, std::string* error);

// The text rendering of that JSON document.
std::string render_replay_text(const nlohmann::json& doc);

}  // namespace gpumem::replay
