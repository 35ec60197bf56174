// What the trace says about where memory was asked for: its strings, its interned call stacks
// (site id -> code addresses) and the symbols of those addresses. Turns a site into frames and
// the source line of its innermost Python frame (python_lines.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

class Attribution {
 public:
  explicit Attribution(size_t max_frames) : max_frames_(max_frames) {}

  void add_string(uint64_t id, std::string_view text) { strings_[id] = std::string(text); }
  // `payload` holds the stack's code addresses, innermost first.
  void add_stack(uint32_t site, std::string_view payload);
  void add_symbol(uint64_t pc, uint64_t string_id) { symbols_[pc] = string_id; }

  // The string, or "string#ID" when the trace never gave it.
  std::string string_or_id(uint64_t id) const;
  // The innermost Python frame of a site's stack, named as add_frames() names it; "" for none.
  std::string python_line_of(uint32_t site) const;
  // Fills the frames and Python line of each row grouped by a site.
  void add_frames(std::vector<GroupRow>& rows) const;
  // The same for where an anomaly happened.
  void add_frames(Anomaly& anomaly) const;

 private:
  std::string frame_name(uint64_t pc) const;

  size_t max_frames_;
  std::unordered_map<uint64_t, std::string> strings_;
  std::unordered_map<uint32_t, std::vector<uint64_t>> stacks_;
  std::unordered_map<uint64_t, uint64_t> symbols_;  // code address -> string id
};

}  // namespace gpumem::analyzer
