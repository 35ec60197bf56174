// gpumem trace <-> PyTorch memory snapshot (the dict torch.cuda.memory._snapshot() returns,
// pickled by _dump_snapshot). Field by field: docs/formats.md.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <string_view>
#include <unordered_map>

#include "gpumem/formats/convert.h"
#include "gpumem/formats/pickle.h"
#include "loaded_trace.h"

namespace gpumem::formats {

namespace {

using detail::LoadedTrace;
using trace::Op;
using trace::Record;

constexpr size_t kMaxFrames = 64;  // per entry, both ways: bounds work on shared frame lists

struct Frame {
  std::string filename;
  int64_t line = 0;
  std::string name;
};

// "function (file:line)" for a Python frame, "function (module+0xoff)" for a native one.
Frame parse_symbol(const std::string& text, uint64_t pc, bool python) {
  Frame f;
  const size_t open = text.rfind(" (");
  if (text.empty() || open == std::string::npos || text.back() != ')') {
    f.name = text.empty() ? fmt::format("{:#x}", pc) : text;
    f.filename = "??";
    return f;
  }
  f.name = text.substr(0, open);
  std::string inside = text.substr(open + 2, text.size() - open - 3);
  const size_t colon = inside.rfind(':');
  if (python && colon != std::string::npos && colon + 1 < inside.size() &&
      std::all_of(inside.begin() + static_cast<long>(colon) + 1, inside.end(),
                  [](char c) { return c >= '0' && c <= '9'; })) {
    f.filename = inside.substr(0, colon);
    f.line = std::strtoll(inside.c_str() + colon + 1, nullptr, 10);
  } else {
    f.filename = inside;
  }
  return f;
}

// Python frames when the stack has any (GPUMEM_STACKS=python|mixed), native frames otherwise.
std::vector<Frame> frames_of(const LoadedTrace& t, uint32_t site) {
  std::vector<Frame> out;
  auto it = t.stacks.find(site);
  if (site == 0 || it == t.stacks.end()) return out;
  const auto real_python = [](uint64_t pc) {
    return trace::is_python_frame(pc) && (pc & 0xFFFFFFFFu) != 0;  // id 0: "[no Python frame]"
  };
  const bool python = std::any_of(it->second.begin(), it->second.end(), real_python);
  for (uint64_t pc : it->second) {
    if (out.size() == kMaxFrames) break;
    if (python ? !real_python(pc) : trace::is_python_frame(pc)) continue;
    auto sym = t.symbols.find(pc);
    out.push_back(parse_symbol(sym == t.symbols.end() ? std::string() : t.string_of(sym->second),
                               pc, python));
  }
  return out;
}

void write_frames(PickleWriter& w, const std::vector<Frame>& frames) {
  w.begin_list();
  for (const Frame& f : frames) {
    w.begin_dict();
    w.key("filename");
    w.string(f.filename);
    w.key("line");
    w.integer(f.line);
    w.key("name");
    w.string(f.name);
    w.end_dict();
  }
  w.end_list();
}

struct Live {
  uint64_t bytes = 0;
  uint64_t stream = 0;
  uint32_t site = 0;
  bool pooled = false;
};
struct Segment {
  uint64_t bytes = 0;
  uint64_t stream = 0;
  uint32_t site = 0;
  bool pooled = false;  // false: one allocation of an unpooled trace, its own segment
  // A granule the expandable pool mapped (MemKind::physical): "segment_map" / "segment_unmap",
  // and adjacent ones are one segment of the end state, as PyTorch's expandable segments are.
  bool expandable = false;
};
struct DeviceState {
  std::map<uint64_t, Live> live;
  std::map<uint64_t, Segment> segments;

  // A damaged trace may hold memory that no snapshot can: PyTorch's segments never overlap and
  // each is tiled with its blocks, and an importer (ours included) puts a block in the segment
  // that holds its address. The export keeps such memory as the analyzer counts it where a
  // snapshot can show that (DeviceState::alloc, SegmentSpace in analyzer/src) and leaves out
  // the rest.
  // Whether an entry of `ranges` (start -> something with `bytes`, entries never overlapping, so
  // the one before is the only one that can reach past `address`) starts at `address` or shares
  // a byte with [address, end).
  template <class Map>
  static bool touches(const Map& ranges, uint64_t address, uint64_t end) {
    auto next = ranges.lower_bound(address);
    if (next != ranges.end() && (next->first == address || next->first < end)) return true;
    return next != ranges.begin() &&
           std::prev(next)->first + std::prev(next)->second.bytes > address;
  }
  // Whether [address, address + bytes) touches a segment held (a pool's, or an allocation's own),
  // or wraps.
  bool overlaps(uint64_t address, uint64_t bytes) const {
    return address + bytes < address || touches(segments, address, address + bytes);
  }
  // Whether a live block lies in [address, address + bytes), or reaches into it.
  bool holds_live(uint64_t address, uint64_t bytes) const {
    return touches(live, address, address + bytes);
  }
  // Whether a pooled block [address, address + bytes) lies wholly in pool segments held (one, or
  // adjacent granules of the expandable pool, which are one segment) and overlaps no live block:
  // what the analyzer takes from a segment (SegmentSpace::take). Else it counts it outside any
  // segment, as an allocation the pool did not serve.
  bool fits_in_segment(uint64_t address, uint64_t bytes) const {
    const uint64_t end = address + bytes;
    if (end < address) return false;
    auto seg = segments.upper_bound(address);
    if (seg == segments.begin() || !(--seg)->second.pooled) return false;
    uint64_t covered = seg->first + seg->second.bytes;
    while (covered < end && seg->second.expandable) {
      ++seg;
      if (seg == segments.end() || seg->first != covered || !seg->second.expandable) return false;
      covered = seg->first + seg->second.bytes;
    }
    return covered >= end && address < covered && !touches(live, address, end);
  }
};

// The phases open at a record, innermost last: a mark_begin opens one, a mark_end closes the
// most recent open phase of the same name (by text; an id with no string is the name ""), and
// none when no phase of that name is open. Each mark costs O(1) amortized however many phases
// stay open: a trace cut by a crash, or a program that begins phases without ending them, leaves
// thousands, and looking through them at every end made the export quadratic.
class OpenPhases {
 public:
  explicit OpenPhases(const LoadedTrace& t) : names_{std::string()} {
    std::unordered_map<std::string_view, uint32_t> key_of_text{{std::string_view(), 0}};
    for (const auto& [id, text] : t.strings) {  // views into t.strings, which outlives this loop
      auto [it, added] = key_of_text.emplace(text, static_cast<uint32_t>(names_.size()));
      if (added) names_.push_back(text);
      key_of_id_[id] = it->second;
    }
    open_at_.resize(names_.size());
  }
  void clear() {
    for (const Entry& e : stack_) open_at_[e.key].clear();
    stack_.clear();
  }
  void begin(uint64_t string_id) {
    const uint32_t key = key_of(string_id);
    open_at_[key].push_back(stack_.size());
    stack_.push_back({key, true});
  }
  void end(uint64_t string_id) {
    std::vector<size_t>& open = open_at_[key_of(string_id)];
    if (open.empty()) return;
    stack_[open.back()].open = false;
    open.pop_back();
    while (!stack_.empty() && !stack_.back().open) stack_.pop_back();  // each entry once
  }
  const std::string& innermost() const {
    return stack_.empty() ? names_[0] : names_[stack_.back().key];
  }

 private:
  struct Entry {
    uint32_t key;  // the name, by text
    bool open;     // false: ended, removed once nothing open lies above it
  };
  uint32_t key_of(uint64_t string_id) const {
    auto it = key_of_id_.find(string_id);
    return it == key_of_id_.end() ? 0 : it->second;
  }
  std::vector<std::string> names_;                    // by key; key 0 is ""
  std::unordered_map<uint64_t, uint32_t> key_of_id_;  // string ids with the same text share a key
  std::vector<Entry> stack_;                          // the innermost open phase is at the back
  std::vector<std::vector<size_t>> open_at_;          // by key: where its open phases are in stack_
};

void trace_entry(PickleWriter& w, const char* action, uint64_t addr, uint64_t size, uint64_t stream,
                 uint64_t time_us, const std::vector<Frame>& frames, const std::string& phase) {
  w.begin_dict();
  w.key("action");
  w.string(action);
  w.key("addr");
  w.unsigned_integer(addr);
  w.key("size");
  w.unsigned_integer(size);
  w.key("stream");
  w.unsigned_integer(stream);
  w.key("time_us");
  w.unsigned_integer(time_us);
  w.key("frames");
  write_frames(w, frames);
  if (!phase.empty()) {
    w.key("user_metadata");
    w.string(phase);
  }
  w.end_dict();
}

}  // namespace

bool trace_to_snapshot(const std::string& trace_path, std::string* pickle, std::string* error,
                       std::string* note) {
  LoadedTrace t;
  if (!detail::load_trace(trace_path, &t, error)) return false;
  if (note != nullptr) *note = detail::incomplete_note(t, trace_path, "snapshot");
  const int devices = std::max<int>(1, static_cast<int>(t.header.device_count));
  // A free whose real free then failed (Op::free_failed, aux = that free's t_ns) never happened.
  std::set<std::pair<uint64_t, uint64_t>> cancelled;
  for (const Record& r : t.records)
    if (static_cast<Op>(r.op) == Op::free_failed) cancelled.insert({r.aux, r.address});

  PickleWriter w;
  std::vector<DeviceState> state(static_cast<size_t>(devices));
  // Records left out: allocations and segments of no bytes or overlapping a segment held, pooled
  // blocks in no pool segment held, segments given back with live blocks in them (a damaged
  // trace's; see DeviceState).
  uint64_t left_out = 0;
  auto free_live = [&](DeviceState& s, std::map<uint64_t, Live>::iterator it, uint64_t us,
                       const std::string& phase) {
    const uint64_t address = it->first;
    const auto frames = frames_of(t, it->second.site);
    trace_entry(w, "free_requested", address, it->second.bytes, it->second.stream, us, frames,
                phase);
    trace_entry(w, "free_completed", address, it->second.bytes, it->second.stream, us, frames,
                phase);
    if (!it->second.pooled) {
      trace_entry(w, "segment_free", address, it->second.bytes, it->second.stream, us, frames,
                  phase);
      s.segments.erase(address);
    }
    s.live.erase(it);
  };
  OpenPhases phases(t);
  // device_traces first in time; the dict is written with "segments" (the end state) after it,
  // which a dict does not mind.
  w.begin_dict();
  w.key("device_traces");
  w.begin_list();
  for (int d = 0; d < devices; ++d) {
    w.begin_list();
    DeviceState& s = state[static_cast<size_t>(d)];
    phases.clear();
    // A device's entries never go back in time: a record stamped earlier than the one before it
    // (a thread stamps its record before it takes its slot; a damaged trace's times are anywhere)
    // gets the time before it. An importer orders entries by time_us, and the trace's order is the
    // order the calls took effect: a free re-ordered after the allocation that reused its address
    // pairs the wrong records.
    uint64_t last_us = 0;
    for (const Record& r : t.records) {
      const auto op = static_cast<Op>(r.op);
      if (op == Op::mark_begin) {
        phases.begin(r.aux);
        continue;
      }
      if (op == Op::mark_end) {
        phases.end(r.aux);
        continue;
      }
      if (r.device != d) continue;
      const uint64_t us = last_us = std::max(last_us, t.unix_us(r));
      const std::string& phase = phases.innermost();
      switch (op) {
        case Op::alloc: {
          if (!detail::is_device_memory(r)) break;
          // The free of this address's previous owner was lost (a torn record): it ends here, as
          // the analyzer ends it.
          if (auto old = s.live.find(r.address); old != s.live.end()) free_live(s, old, us, phase);
          const bool pooled =
              (r.flags & trace::kFlagPooled) != 0 && s.fits_in_segment(r.address, r.bytes);
          if (r.bytes == 0 || (!pooled && s.overlaps(r.address, r.bytes))) {
            ++left_out;
            break;
          }
          const auto frames = frames_of(t, r.site);
          if (!pooled) {
            trace_entry(w, "segment_alloc", r.address, r.bytes, r.stream, us, frames, phase);
            s.segments[r.address] = {r.bytes, r.stream, r.site, false};
          }
          trace_entry(w, "alloc", r.address, r.bytes, r.stream, us, frames, phase);
          s.live[r.address] = {r.bytes, r.stream, r.site, pooled};
          break;
        }
        case Op::free: {
          if (cancelled.count({r.t_ns, r.address})) break;
          auto it = s.live.find(r.address);
          if (it == s.live.end()) break;  // not a device allocation this trace saw
          free_live(s, it, us, phase);
          break;
        }
        case Op::alloc_failed: {
          const uint64_t capacity = d < trace::kMaxDevices ? t.header.devices[d].capacity_bytes : 0;
          w.begin_dict();
          w.key("action");
          w.string("oom");
          w.key("addr");
          w.integer(0);
          w.key("size");
          w.unsigned_integer(r.bytes);
          w.key("stream");
          w.unsigned_integer(r.stream);
          w.key("time_us");
          w.unsigned_integer(us);
          w.key("device_free");
          w.unsigned_integer(capacity > r.aux ? capacity - r.aux : 0);
          w.key("frames");
          write_frames(w, frames_of(t, r.site));
          w.end_dict();
          break;
        }
        case Op::segment_reserve: {
          if (r.bytes == 0 || s.overlaps(r.address, r.bytes)) {
            ++left_out;
            break;
          }
          const bool granule = trace::mem_kind(r) == trace::MemKind::physical;
          trace_entry(w, granule ? "segment_map" : "segment_alloc", r.address, r.bytes, r.stream,
                      us, {}, phase);
          s.segments[r.address] = {r.bytes, r.stream, 0, true, granule};
          break;
        }
        case Op::segment_release: {
          auto it = s.segments.find(r.address);
          if (it == s.segments.end() || !it->second.pooled) break;  // not a pool segment held
          if (s.holds_live(r.address, it->second.bytes)) {
            ++left_out;  // a pool never gives back a segment with live blocks: a damaged trace
            break;
          }
          trace_entry(w, it->second.expandable ? "segment_unmap" : "segment_free", r.address,
                      r.bytes, r.stream, us, {}, phase);
          s.segments.erase(it);
          break;
        }
        default:
          break;
      }
    }
    w.end_list();
  }
  w.end_list();

  // The end state: every segment still held, its live blocks and the free gaps between them
  // ("inactive"), so the blocks tile the segment as PyTorch's do. Adjacent expandable granules
  // are one segment, as PyTorch reports one per contiguous mapped range of an expandable segment.
  w.key("segments");
  w.begin_list();
  for (int d = 0; d < devices; ++d) {
    const DeviceState& s = state[static_cast<size_t>(d)];
    std::vector<std::pair<uint64_t, Segment>> joined;
    for (const auto& [base, seg] : s.segments) {
      if (seg.expandable && !joined.empty() && joined.back().second.expandable &&
          joined.back().first + joined.back().second.bytes == base)
        joined.back().second.bytes += seg.bytes;
      else
        joined.emplace_back(base, seg);
    }
    for (const auto& [base, seg] : joined) {
      struct Block {
        uint64_t address, size;
        bool active;
        uint32_t site;
      };
      std::vector<Block> blocks;
      uint64_t cursor = base, allocated = 0;
      for (auto it = s.live.lower_bound(base); it != s.live.end() && it->first < base + seg.bytes;
           ++it) {
        if (it->second.pooled != seg.pooled || it->first < cursor) continue;
        const uint64_t size = std::min(it->second.bytes, base + seg.bytes - it->first);
        if (it->first > cursor) blocks.push_back({cursor, it->first - cursor, false, 0});
        blocks.push_back({it->first, size, true, it->second.site});
        allocated += size;
        cursor = it->first + size;
        if (!seg.pooled) break;
      }
      if (cursor < base + seg.bytes)
        blocks.push_back({cursor, base + seg.bytes - cursor, false, 0});
      w.begin_dict();
      w.key("device");
      w.integer(d);
      w.key("address");
      w.unsigned_integer(base);
      w.key("total_size");
      w.unsigned_integer(seg.bytes);
      w.key("allocated_size");
      w.unsigned_integer(allocated);
      w.key("active_size");
      w.unsigned_integer(allocated);
      w.key("requested_size");
      w.unsigned_integer(allocated);
      w.key("stream");
      w.unsigned_integer(seg.stream);
      w.key("segment_type");
      w.string(seg.bytes > (uint64_t{1} << 20) ? "large" : "small");
      w.key("segment_pool_id");
      w.begin_tuple();
      w.integer(0);
      w.integer(0);
      w.end_tuple();
      w.key("is_expandable");
      w.boolean(seg.expandable);
      w.key("frames");
      write_frames(w, frames_of(t, seg.site));
      w.key("blocks");
      w.begin_list();
      for (const Block& b : blocks) {
        w.begin_dict();
        w.key("address");
        w.unsigned_integer(b.address);
        w.key("size");
        w.unsigned_integer(b.size);
        w.key("requested_size");
        w.unsigned_integer(b.active ? b.size : 0);
        w.key("state");
        w.string(b.active ? "active_allocated" : "inactive");
        w.key("frames");
        write_frames(w, frames_of(t, b.site));
        w.end_dict();
      }
      w.end_list();
      w.end_dict();
    }
  }
  w.end_list();
  w.end_dict();
  *pickle = w.finish();
  if (note != nullptr && left_out > 0)
    *note += std::string(note->empty() ? "" : "; ") + std::to_string(left_out) + " record(s) of '" +
             trace_path +
             "' left out: memory no snapshot can hold (no bytes, overlapping memory already "
             "held, a pooled block in no segment held, or a segment given back with live blocks "
             "in it: a damaged trace)";
  return true;
}

// ---- snapshot -> trace --------------------------------------------------------------------------

namespace {

struct Entry {
  std::string action;
  uint64_t addr = 0, size = 0, stream = 0, time_us = 0, device_free = 0;
  int device = 0;
  uint32_t site = 0;
  uint64_t frames = 0;  // alloc and segment_alloc: frames_key()
};

// The parts of [addr, addr + size) that no range of `ranges` (start -> size) covers, in address
// order; with `take`, also removes [addr, addr + size) from the ranges, keeping what lies outside.
std::vector<std::pair<uint64_t, uint64_t>> uncovered_parts(std::map<uint64_t, uint64_t>& ranges,
                                                           uint64_t addr, uint64_t size,
                                                           bool take) {
  std::vector<std::pair<uint64_t, uint64_t>> uncovered;
  const uint64_t end = addr + size < addr ? UINT64_MAX : addr + size;
  uint64_t cursor = addr;
  auto it = ranges.upper_bound(addr);
  if (it != ranges.begin() && std::prev(it)->first + std::prev(it)->second > addr) --it;
  while (cursor < end && it != ranges.end() && it->first < end) {
    const uint64_t a = it->first, n = it->second;
    if (a > cursor) uncovered.push_back({cursor, a - cursor});
    cursor = std::max(cursor, std::min(a + n, end));
    if (!take) {
      ++it;
      continue;
    }
    it = ranges.erase(it);
    if (a < addr) ranges[a] = addr - a;          // the part before
    if (a + n > end) ranges[end] = a + n - end;  // the part after
  }
  if (cursor < end) uncovered.push_back({cursor, end - cursor});
  return uncovered;
}

class SnapshotReader {
 public:
  SnapshotReader(const PickleDocument& doc, TraceImage* out, std::string* error)
      : doc_(doc), out_(out), error_(error), visited_(doc.node_count(), false) {}

  bool fail(const std::string& where, const std::string& what) {
    *error_ = fmt::format("{}: {}", where, what);
    return false;
  }
  bool uint_field(const PickleNode& dict, const char* key, const std::string& where, uint64_t* v,
                  bool required = true) {
    const PickleNode* n = doc_.find(dict, key);
    if (n == nullptr && !required) return true;
    if (n == nullptr || n->kind != PickleKind::integer || n->integer < 0 ||
        n->integer > static_cast<__int128>(UINT64_MAX))
      return fail(where, fmt::format("'{}' is missing or not a non-negative integer", key));
    *v = static_cast<uint64_t>(n->integer);
    return true;
  }
  bool possible_size(uint64_t size, const std::string& where) {
    if (size <= detail::kMaxDeviceBytes) return true;
    return fail(where, fmt::format("size {} is more than a GPU can address ({}); the file is "
                                   "damaged",
                                   size, detail::kMaxDeviceBytes));
  }
  // Lookups in a dict are linear: a snapshot's dicts have a handful of keys, and one with more
  // (a hostile file sharing one huge dict among every entry) is refused rather than scanned again
  // and again.
  bool small(const PickleNode& dict, const std::string& where) {
    if (dict.kind != PickleKind::dict) return fail(where, "is not a dict");
    if (dict.items.size() > 2 * kMaxKeys)
      return fail(where, fmt::format("has {} keys; a snapshot's entries have a few",
                                     dict.items.size() / 2));
    return true;
  }
  // The node at `index` as a segment, block or trace entry, refused when an earlier entry was
  // the same node: PyTorch builds a new dict for each (only frame lists are shared, and site()
  // converts each once), and a hostile file listing one dict again and again through the memo or
  // DUP, at a byte a repeat, would otherwise cost the product of the repeats (segments x blocks).
  const PickleNode* entry(uint32_t index, const std::string& where) {
    const PickleNode& n = doc_.at(index);
    if (!small(n, where)) return nullptr;
    if (visited_[index]) {
      fail(where,
           "is the dict of an earlier segment, block or trace entry again (a pickle memo "
           "reference or DUP); torch.cuda.memory._dump_snapshot gives each its own dict");
      return nullptr;
    }
    visited_[index] = true;
    return &n;
  }
  // An entry's frames as "name (filename:line)", innermost first (at most kMaxFrames).
  std::vector<std::string> frame_texts(const PickleNode& frames) {
    std::vector<std::string> texts;
    for (uint32_t i : frames.items) {
      if (texts.size() == kMaxFrames) break;
      const PickleNode& f = doc_.at(i);
      if (f.kind != PickleKind::dict || f.items.size() > 2 * kMaxKeys) continue;
      const PickleNode* name = doc_.find(f, "name");
      const PickleNode* file = doc_.find(f, "filename");
      const PickleNode* line = doc_.find(f, "line");
      texts.push_back(fmt::format(
          "{} ({}:{})", name && name->kind == PickleKind::string ? name->string : "??",
          file && file->kind == PickleKind::string ? file->string : "??",
          line && line->kind == PickleKind::integer ? static_cast<int64_t>(line->integer) : 0));
    }
    return texts;
  }
  uint32_t site(const PickleNode& dict) {
    const PickleNode* frames = doc_.find(dict, "frames");
    if (frames == nullptr || frames->kind != PickleKind::list) return 0;
    // Shared frame lists (the pickle's memo) are converted once.
    auto cached = sites_.find(frames);
    if (cached != sites_.end()) return cached->second;
    return sites_[frames] = out_->intern_python_stack(frame_texts(*frames));
  }
  // The frames of a segment_alloc compared with its alloc's (which shape the snapshot has), not
  // interned: a hash of their texts; 0 for none.
  uint64_t frames_key(const PickleNode& dict) {
    const PickleNode* frames = doc_.find(dict, "frames");
    if (frames == nullptr || frames->kind != PickleKind::list || frames->items.empty()) return 0;
    auto cached = frame_keys_.find(frames);
    if (cached != frame_keys_.end()) return cached->second;
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the texts, each ended by a NUL
    for (const std::string& text : frame_texts(*frames))
      for (size_t i = 0; i <= text.size(); ++i)
        h = (h ^ static_cast<unsigned char>(i < text.size() ? text[i] : 0)) * 0x100000001b3ull;
    return frame_keys_[frames] = h | 1;
  }

  bool run(const std::string& source) {
    const PickleNode& root = doc_.root();
    if (root.kind != PickleKind::dict)
      return fail("the top level",
                  "is not a dict; a memory snapshot is the dict "
                  "torch.cuda.memory._snapshot() returns");
    const PickleNode* traces = doc_.find(root, "device_traces");
    const PickleNode* segments = doc_.find(root, "segments");
    if (segments == nullptr || segments->kind != PickleKind::list)
      return fail("the top level",
                  "has no 'segments' list, so it is not a PyTorch memory "
                  "snapshot (torch.cuda.memory._dump_snapshot writes one)");
    if (traces != nullptr && traces->kind != PickleKind::list)
      return fail("the top level", "'device_traces' is not a list");

    std::vector<Entry> entries;
    int max_device = 0;
    if (traces != nullptr) {
      for (size_t d = 0; d < traces->items.size(); ++d) {
        const PickleNode& list = doc_.at(traces->items[d]);
        if (list.kind != PickleKind::list)
          return fail(fmt::format("device_traces[{}]", d), "is not a list");
        if (d >= trace::kMaxDevices)
          return fail("device_traces", fmt::format("has more than {} devices", trace::kMaxDevices));
        for (size_t i = 0; i < list.items.size(); ++i) {
          const std::string where = fmt::format("device_traces[{}][{}]", d, i);
          const PickleNode* ep = entry(list.items[i], where);
          if (ep == nullptr) return false;
          const PickleNode& e = *ep;
          const PickleNode* action = doc_.find(e, "action");
          if (action == nullptr || action->kind != PickleKind::string)
            return fail(where, "has no 'action' string");
          Entry en;
          en.action = action->string;
          en.device = static_cast<int>(d);
          if (!uint_field(e, "addr", where, &en.addr, en.action != "oom") ||
              !uint_field(e, "size", where, &en.size) ||
              !uint_field(e, "stream", where, &en.stream, false) ||
              !uint_field(e, "time_us", where, &en.time_us, false) ||
              !uint_field(e, "device_free", where, &en.device_free, false))
            return false;
          if ((en.action == "alloc" || en.action == "segment_alloc" ||
               en.action == "segment_map") &&
              !possible_size(en.size, where))
            return false;
          if (en.action == "alloc" || en.action == "oom") en.site = site(e);
          if (en.action == "alloc" || en.action == "segment_alloc") en.frames = frames_key(e);
          entries.push_back(std::move(en));
          max_device = std::max(max_device, static_cast<int>(d));
        }
      }
    }
    struct EndSegment {
      int device = 0;
      uint64_t address = 0, size = 0, stream = 0;
      std::vector<std::pair<uint64_t, uint64_t>> active;  // address, size
      std::vector<uint32_t> sites;
      bool expandable = false;  // a mapped range of an expandable segment
    };
    std::vector<EndSegment> end;
    for (size_t i = 0; i < segments->items.size(); ++i) {
      const std::string where = fmt::format("segments[{}]", i);
      const PickleNode* sp = entry(segments->items[i], where);
      if (sp == nullptr) return false;
      const PickleNode& s = *sp;
      EndSegment es;
      uint64_t device = 0;
      if (!uint_field(s, "address", where, &es.address) ||
          !uint_field(s, "total_size", where, &es.size) || !possible_size(es.size, where) ||
          !uint_field(s, "stream", where, &es.stream, false) ||
          !uint_field(s, "device", where, &device, false))
        return false;
      if (device >= trace::kMaxDevices)
        return fail(where, fmt::format("device {} is beyond {}", device, trace::kMaxDevices - 1));
      es.device = static_cast<int>(device);
      const PickleNode* expandable = doc_.find(s, "is_expandable");
      es.expandable =
          expandable != nullptr && expandable->kind == PickleKind::boolean && expandable->boolean;
      const PickleNode* blocks = doc_.find(s, "blocks");
      if (blocks != nullptr && blocks->kind == PickleKind::list) {
        for (size_t b = 0; b < blocks->items.size(); ++b) {
          const std::string bw = fmt::format("{}.blocks[{}]", where, b);
          const PickleNode* bp = entry(blocks->items[b], bw);
          if (bp == nullptr) return false;
          const PickleNode& block = *bp;
          const PickleNode* state = doc_.find(block, "state");
          if (state == nullptr || state->kind != PickleKind::string)
            return fail(bw, "has no 'state' string");
          if (state->string != "active_allocated" && state->string != "active_pending_free")
            continue;
          uint64_t address = 0, size = 0;
          if (!uint_field(block, "size", bw, &size) || !possible_size(size, bw) ||
              !uint_field(block, "address", bw, &address, false))
            return false;
          if (doc_.find(block, "address") == nullptr) address = es.address;  // older snapshots
          es.active.push_back({address, size});
          es.sites.push_back(site(block));
        }
      }
      max_device = std::max(max_device, es.device);
      end.push_back(std::move(es));
    }
    // An expandable segment is one mapped range, reported once: overlapping ones would each be
    // matched against all of the history's ranges again (quadratic in a hostile file).
    std::vector<size_t> ranges;  // indices into end (= into segments)
    for (size_t i = 0; i < end.size(); ++i)
      if (end[i].expandable) ranges.push_back(i);
    std::sort(ranges.begin(), ranges.end(), [&](size_t a, size_t b) {
      return std::pair(end[a].device, end[a].address) < std::pair(end[b].device, end[b].address);
    });
    for (size_t k = 1; k < ranges.size(); ++k) {
      const EndSegment& prev = end[ranges[k - 1]];
      const EndSegment& cur = end[ranges[k]];
      if (prev.device == cur.device && cur.address - prev.address < prev.size)
        return fail(fmt::format("segments[{}]", ranges[k]),
                    fmt::format("overlaps segments[{}], and both are expandable: PyTorch reports "
                                "each mapped range once",
                                ranges[k - 1]));
    }
    // Devices in time order, each device's entries keeping their order.
    std::stable_sort(entries.begin(), entries.end(),
                     [](const Entry& a, const Entry& b) { return a.time_us < b.time_us; });

    // Unpooled when every segment is one allocation for its whole life: the shape gpumem exports
    // for a trace without a pool (segment_alloc+alloc, free_completed+segment_free in pairs, each
    // pair with the same frames). A pool's segment written with no frames before a block that has
    // some is a pool's, even when it holds that one block: reading it as unpooled gave the
    // segment the block's frames, so each export and import changed the snapshot.
    bool unpooled = !entries.empty();
    for (size_t i = 0; i < entries.size() && unpooled; ++i) {
      const Entry& e = entries[i];
      auto same = [&](const Entry& o, const char* action) {
        return o.action == action && o.addr == e.addr && o.size == e.size && o.frames == e.frames;
      };
      auto next_is = [&](const char* action) {
        return i + 1 < entries.size() && same(entries[i + 1], action);
      };
      auto prev_is = [&](const char* action) { return i > 0 && same(entries[i - 1], action); };
      if (e.action == "segment_alloc")
        unpooled = next_is("alloc");
      else if (e.action == "alloc")
        unpooled = prev_is("segment_alloc");
      else if (e.action == "free_completed")
        unpooled = next_is("segment_free");
      else if (e.action == "segment_free")
        unpooled = prev_is("free_completed");
      else if (e.action == "segment_map" || e.action == "segment_unmap")
        unpooled = false;
    }
    for (const EndSegment& es : end)
      if (unpooled && (es.active.size() != 1 || es.active[0].first != es.address)) unpooled = false;

    // PyTorch with expandable_segments:True maps and unmaps ranges of one growing segment.
    bool expandable = false;
    for (const Entry& e : entries) expandable = expandable || e.action == "segment_map";
    for (const EndSegment& es : end) expandable = expandable || es.expandable;
    trace::Header& h = out_->header();
    std::snprintf(h.pool, sizeof h.pool, "%s",
                  unpooled ? "none" : (expandable ? "expandable" : "growth"));
    std::snprintf(h.command, sizeof h.command, "converted from the PyTorch memory snapshot %s",
                  source.c_str());
    const uint64_t t0 = entries.empty() ? 0 : entries.front().time_us;
    h.start_unix_ns = t0 * 1000;
    for (int d = 0; d <= max_device; ++d)
      out_->set_device(d, 0, fmt::format("PyTorch snapshot device {}", d));
    const uint64_t base = h.clock_base_ns;
    auto t_of = [&](uint64_t us) { return base + (us >= t0 ? us - t0 : 0) * 1000; };
    const uint16_t pooled_flag = unpooled ? 0 : trace::kFlagPooled;
    const uint16_t api =
        static_cast<uint16_t>(unpooled ? trace::Api::cudaMalloc : trace::Api::torch);

    // What was there before the first entry (the history is a ring buffer, or was off): blocks
    // and segments freed without being allocated in it, and the end state's blocks and segments
    // the history does not leave live. They are allocated at the start.
    std::vector<std::map<uint64_t, uint64_t>> live(static_cast<size_t>(max_device) + 1),
        segs(live.size());
    std::vector<Entry> before;
    for (const Entry& e : entries) {
      auto& l = live[static_cast<size_t>(e.device)];
      auto& sg = segs[static_cast<size_t>(e.device)];
      if (e.action == "alloc")
        l[e.addr] = e.size;
      else if (e.action == "free_completed" && l.erase(e.addr) == 0)
        before.push_back({"alloc", e.addr, e.size, e.stream, 0, 0, e.device, 0});
      else if (e.action == "segment_alloc" && !unpooled)
        sg[e.addr] = e.size;
      else if (e.action == "segment_free" && !unpooled && sg.erase(e.addr) == 0)
        before.push_back({"segment_alloc", e.addr, e.size, e.stream, 0, 0, e.device, 0});
      else if (e.action == "segment_map" && !unpooled)
        sg[e.addr] = e.size;
      else if (e.action == "segment_unmap" && !unpooled)
        // An unmap may take part of a mapped range; what no range covered was mapped before.
        for (const auto& [a, n] : uncovered_parts(sg, e.addr, e.size, true))
          before.push_back({"segment_map", a, n, e.stream, 0, 0, e.device, 0});
    }
    for (const EndSegment& es : end) {
      auto& l = live[static_cast<size_t>(es.device)];
      auto& sg = segs[static_cast<size_t>(es.device)];
      if (!unpooled && es.expandable) {
        // One end segment is a run of mapped ranges: what the history did not map was before.
        // Read in place: a copy of the ranges for each end segment was quadratic.
        for (const auto& [a, n] : uncovered_parts(sg, es.address, es.size, false))
          before.push_back({"segment_map", a, n, es.stream, 0, 0, es.device, 0});
      } else if (!unpooled && sg.count(es.address) == 0) {
        before.push_back({"segment_alloc", es.address, es.size, es.stream, 0, 0, es.device, 0});
      }
      for (size_t b = 0; b < es.active.size(); ++b) {
        auto it = l.find(es.active[b].first);
        if (it == l.end() || it->second != es.active[b].second)
          before.push_back({"alloc", es.active[b].first, es.active[b].second, es.stream, 0, 0,
                            es.device, es.sites[b]});
      }
    }
    std::stable_sort(before.begin(), before.end(), [](const Entry& a, const Entry& b) {
      const auto segment = [](const Entry& e) {
        return e.action == "segment_alloc" || e.action == "segment_map";
      };
      return segment(a) && !segment(b);
    });
    for (const Entry& e : before) emit(e, t_of(t0), unpooled, pooled_flag, api);
    for (const Entry& e : entries) emit(e, t_of(e.time_us), unpooled, pooled_flag, api);
    return true;
  }

  void emit(const Entry& e, uint64_t t_ns, bool unpooled, uint16_t pooled_flag, uint16_t api) {
    Record* r = nullptr;
    if (e.action == "alloc") {
      r = &out_->add(Op::alloc, t_ns, e.device);
      r->flags = pooled_flag;
      r->site = e.site;
    } else if (e.action == "free_completed") {
      r = &out_->add(Op::free, t_ns, e.device);
      r->flags = pooled_flag;
    } else if (e.action == "oom") {
      r = &out_->add(Op::alloc_failed, t_ns, e.device);
      r->result = 2;  // cudaErrorMemoryAllocation
      r->site = e.site;
    } else if (!unpooled && (e.action == "segment_alloc" || e.action == "segment_map")) {
      r = &out_->add(Op::segment_reserve, t_ns, e.device);
      r->aux = 1;  // one pool: PyTorch's caching allocator
    } else if (!unpooled && (e.action == "segment_free" || e.action == "segment_unmap")) {
      r = &out_->add(Op::segment_release, t_ns, e.device);
      r->aux = 1;
    } else {
      return;  // free_requested (free_completed is the free), snapshot, anything newer
    }
    r->api = (e.action == "segment_alloc" || e.action == "segment_free" ||
              e.action == "segment_map" || e.action == "segment_unmap")
                 ? static_cast<uint16_t>(trace::Api::pool)
                 : api;
    // Mapped ranges are physical memory in one virtual range, as gpumem's expandable pool writes
    // its granules: the analyzer joins adjacent ones and releases any part of them.
    if (e.action == "segment_map" || e.action == "segment_unmap")
      r->flags = static_cast<uint16_t>(trace::MemKind::physical) | trace::kFlagPooled;
    r->address = e.action == "oom" ? 0 : e.addr;
    r->bytes = e.size;
    r->stream = e.stream;
    r->tid = 1;
  }

 private:
  static constexpr size_t kMaxKeys = 64;
  const PickleDocument& doc_;
  TraceImage* out_;
  std::string* error_;
  std::unordered_map<const PickleNode*, uint32_t> sites_;
  std::unordered_map<const PickleNode*, uint64_t> frame_keys_;
  std::vector<bool> visited_;  // by node index: segments, blocks and trace entries read so far
};

}  // namespace

bool snapshot_to_trace(std::string_view pickle, const std::string& source, TraceImage* out,
                       std::string* error) {
  PickleDocument doc;
  if (!read_pickle(pickle, &doc, error)) return false;
  SnapshotReader reader(doc, out, error);
  return reader.run(source);
}

}  // namespace gpumem::formats
