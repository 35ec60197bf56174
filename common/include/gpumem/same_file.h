// Whether a command's output names a file it reads. `gpumem report T --json T` would write the
// report over the recorded run; report, replay and export refuse such an output before reading.
// Header-only.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace gpumem {

// True when `output` is the same file as one of `inputs`, however either is spelt (another
// relative path, a link). "" (no output) and "-" (standard output) name no file.
inline bool output_is_an_input(const std::string& output, const std::vector<std::string>& inputs) {
  if (output.empty() || output == "-") return false;
  for (const std::string& input : inputs) {
    std::error_code ec;
    if (!input.empty() && std::filesystem::equivalent(output, input, ec)) return true;
  }
  return false;
}

}  // namespace gpumem
