#include "attribution.h"

#include <cstring>

#include <fmt/format.h>

#include "gpumem/trace/format.h"

namespace gpumem::analyzer {

void Attribution::add_stack(uint32_t site, std::string_view payload) {
  std::vector<uint64_t> pcs(payload.size() / sizeof(uint64_t));
  if (!pcs.empty()) std::memcpy(pcs.data(), payload.data(), pcs.size() * sizeof(uint64_t));
  stacks_[site] = std::move(pcs);
}

std::string Attribution::string_or_id(uint64_t id) const {
  auto it = strings_.find(id);
  return it != strings_.end() ? it->second : fmt::format("string#{}", id);
}

std::string Attribution::frame_name(uint64_t pc) const {
  auto sym = symbols_.find(pc);
  return sym != symbols_.end() ? string_or_id(sym->second) : fmt::format("{:#x}", pc);
}

std::string Attribution::python_line_of(uint32_t site) const {
  auto stack = stacks_.find(site);
  if (stack == stacks_.end()) return {};
  for (uint64_t pc : stack->second)
    if (trace::is_python_frame(pc)) return frame_name(pc);
  return {};
}

void Attribution::add_frames(std::vector<GroupRow>& rows) const {
  for (GroupRow& row : rows) {
    if (!row.by_site || row.site == 0) continue;
    auto stack = stacks_.find(row.site);
    if (stack == stacks_.end()) continue;
    for (uint64_t pc : stack->second) {
      std::string frame = frame_name(pc);
      // The innermost Python frame names the row's source line (python_lines.h).
      if (row.python_line.empty() && trace::is_python_frame(pc)) row.python_line = frame;
      if (row.frames.size() < max_frames_) row.frames.push_back(std::move(frame));
    }
  }
}

void Attribution::add_frames(Anomaly& anomaly) const {
  if (anomaly.site == 0) return;
  // In the same terms as the peak's rows.
  GroupRow where;
  where.by_site = true;
  where.site = anomaly.site;
  std::vector<GroupRow> one{std::move(where)};
  add_frames(one);
  anomaly.frames = std::move(one[0].frames);
  anomaly.python_line = std::move(one[0].python_line);
}

}  // namespace gpumem::analyzer
