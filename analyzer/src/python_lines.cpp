// See python_lines.h.
#include "python_lines.h"

#include <algorithm>
#include <string>
#include <unordered_map>

namespace gpumem::analyzer {

bool merge_by_python_line(std::vector<GroupRow>& rows) {
  const bool any = std::any_of(rows.begin(), rows.end(),
                               [](const GroupRow& r) { return !r.python_line.empty(); });
  if (!any) return false;
  std::vector<GroupRow> merged;
  std::vector<uint64_t> largest;  // bytes of the site whose frames each merged row shows
  std::unordered_map<std::string, size_t> index;
  for (GroupRow& r : rows) {
    if (r.python_line.empty()) {
      r.sites = 1;
      largest.push_back(r.bytes);
      merged.push_back(std::move(r));
      continue;
    }
    auto [it, inserted] = index.emplace(r.python_line, merged.size());
    if (inserted) {
      r.sites = 1;
      largest.push_back(r.bytes);
      merged.push_back(std::move(r));
      continue;
    }
    GroupRow& into = merged[it->second];
    if (r.bytes > largest[it->second]) {
      largest[it->second] = r.bytes;
      into.site = r.site;
      into.frames = std::move(r.frames);
    }
    into.count += r.count;
    into.bytes += r.bytes;
    into.sites += 1;
  }
  std::stable_sort(merged.begin(), merged.end(), [](const GroupRow& a, const GroupRow& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.python_line < b.python_line;
  });
  rows = std::move(merged);
  return true;
}

}  // namespace gpumem::analyzer
