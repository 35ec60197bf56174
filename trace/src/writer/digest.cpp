// DigestFold (digest.h): what a bounded trace keeps of the chunks it drops.
#include "digest.h"

#include <algorithm>
#include <cstring>

#include "gpumem/trace/compact.h"

namespace gpumem::detail {

using trace::MemKind;
using trace::Op;
using trace::Record;

namespace {

bool is(const Record& r, Op op) { return r.op == static_cast<uint16_t>(op); }

bool handle_kind(const Record& r) {
  const auto kind = static_cast<MemKind>(r.flags & trace::kFlagKindMask);
  return kind == MemKind::physical || kind == MemKind::array;
}

}  // namespace

DigestFold::DigestFold(FoldArena* arena)
    : arena_(arena),
      live_(FoldAllocator<std::pair<const uint64_t, Object>>(arena)),
      kept_(FoldAllocator<std::pair<const uint64_t, Kept>>(arena)),
      dead_(FoldAllocator<std::pair<const uint64_t, Dead>>(arena)),
      devices_(FoldAllocator<std::pair<const int16_t, Device>>(arena)),
      totals_(FoldAllocator<std::pair<const OmitKey, std::pair<uint64_t, uint64_t>>>(arena)),
      pushed_(FoldAllocator<std::pair<const uint32_t, ArenaVector<uint64_t>>>(arena)),
      started_(FoldAllocator<std::pair<const uint64_t, uint64_t>>(arena)) {}

uint64_t DigestFold::key(const Record& r, int cls) { return r.address * 4 + static_cast<uint64_t>(cls); }

DigestFold::Device& DigestFold::device(int16_t d) { return devices_.try_emplace(d, arena_).first->second; }

void DigestFold::keep(uint64_t seq, const Record& r, std::string_view payload) {
  kept_.insert_or_assign(seq, Kept{r, ArenaString(payload, FoldAllocator<char>(arena_))});
}

// Bit 0: the device's allocated bytes (device, managed and array memory, pooled or not);
// bit 1: its reserved bytes (pool segments and the allocations no pool served).
uint8_t DigestFold::metrics(const Record& a) const {
  if (is(a, Op::segment_reserve)) return 2;
  if (!is(a, Op::alloc)) return 0;
  const auto kind = static_cast<MemKind>(a.flags & trace::kFlagKindMask);
  if (kind != MemKind::device && kind != MemKind::managed && kind != MemKind::array) return 0;
  return static_cast<uint8_t>(1 | ((a.flags & trace::kFlagPooled) == 0 ? 2 : 0));
}

void DigestFold::change(const Record& a, int64_t sign, uint64_t seq, bool in_drop) {
  const uint8_t m = metrics(a);
  if (m == 0) return;
  Device& d = device(a.device);
  for (int i = 0; i < 2; ++i) {
    if ((m & (1 << i)) == 0) continue;
    d.cur[i] += sign * static_cast<int64_t>(a.bytes);
    if (!in_drop || sign < 0 || d.cur[i] <= d.max[i]) continue;
    // A new highest: what was kept for the old one is not needed any more.
    for (uint64_t s : d.covering[i]) {
      auto it = dead_.find(s);
      if (it == dead_.end()) continue;
      it->second.mask = static_cast<uint8_t>(it->second.mask & ~(1 << i));
      if (it->second.mask != 0) continue;
      kept_.erase(s);
      kept_.erase(it->second.free_seq);
      dead_.erase(it);
    }
    d.covering[i].clear();
    d.max[i] = d.cur[i];
    d.p_seq[i] = seq;
  }
}

void DigestFold::head(const Record& r) { take(r, 0, false); }

void DigestFold::drop(const Record& r, std::string_view payload) {
  if (records_ == 0) {
    // The dropped part starts here: its highest so far is the value at its start (then only
    // allocations of the head were live, and those a reader sees).
    for (auto& [id, d] : devices_)
      for (int i = 0; i < 2; ++i) d.max[i] = d.cur[i], d.p_seq[i] = 0;
  }
  ++records_;
  const auto t = static_cast<int64_t>(r.t_ns);
  first_t_ = std::min(first_t_, t);
  last_t_ = std::max(last_t_, t);
  const uint32_t aux = is(r, Op::anomaly) ? static_cast<uint32_t>(r.aux) : 0;
  auto& total = totals_[{r.device, r.op, aux}];
  ++total.first;
  total.second += r.bytes;
  const uint64_t seq = ++seq_;
  switch (static_cast<Op>(r.op)) {
    case Op::string:
    case Op::stack:
    case Op::symbol:
    case Op::device_info:
    case Op::heap_register:
    case Op::heap_unregister:
    case Op::heap_reset:
    case Op::region_register:
    case Op::region_resize:
    case Op::region_unregister:
      keep(seq, r, payload);
      return;
    case Op::mark_begin:
      if ((r.flags & trace::kFlagProcessRange) != 0)
        started_[r.address] = seq;
      else
        pushed_.try_emplace(r.tid, FoldAllocator<uint64_t>(arena_)).first->second.push_back(seq);
      keep(seq, r);
      return;
    case Op::mark_end: {
      // Begun in the dropped part too: both go. Else it ends a phase a reader saw begin.
      if ((r.flags & trace::kFlagProcessRange) != 0) {
        auto it = started_.find(r.address);
        if (it != started_.end()) {
          kept_.erase(it->second);
          started_.erase(it);
          return;
        }
      } else if (auto it = pushed_.find(r.tid); it != pushed_.end() && !it->second.empty()) {
        kept_.erase(it->second.back());
        it->second.pop_back();
        return;
      }
      keep(seq, r);
      return;
    }
    default:
      take(r, seq, true);
  }
}

void DigestFold::take(const Record& r, uint64_t seq, bool in_drop) {
  int cls = -1;
  bool make = false;
  switch (static_cast<Op>(r.op)) {
    case Op::alloc: cls = handle_kind(r) ? 1 : 0, make = true; break;
    case Op::free: cls = handle_kind(r) ? 1 : 0; break;
    case Op::segment_reserve: cls = 2, make = true; break;
    case Op::segment_release: cls = 2; break;
    case Op::map: cls = 3, make = true; break;
    case Op::unmap: cls = 3; break;
    default: return;  // counted in the omitted rows only
  }
  if (r.address == 0) return;
  const uint64_t k = key(r, cls);
  if (make) {
    auto [it, fresh] = live_.try_emplace(k, Object{r, seq});
    if (!fresh) {
      change(it->second.rec, -1, seq, in_drop);  // made again over a live one
      it->second = {r, seq};
    }
    change(r, +1, seq, in_drop);
    return;
  }
  auto it = live_.find(k);
  if (it == live_.end()) return;
  const Object o = it->second;
  live_.erase(it);
  change(o.rec, -1, seq, in_drop);
  if (!in_drop) return;
  if (o.seq == 0) {  // made in the head: a reader must see it go
    keep(seq, r);
    return;
  }
  const uint8_t m = metrics(o.rec);
  Device& d = device(o.rec.device);
  uint8_t mask = 0;
  for (int i = 0; i < 2; ++i)
    if ((m & (1 << i)) != 0 && o.seq <= d.p_seq[i]) mask = static_cast<uint8_t>(mask | (1 << i));
  if (mask == 0) return;  // live at no peak: both records go
  keep(o.seq, o.rec);
  keep(seq, r);
  dead_[o.seq] = {seq, mask};
  for (int i = 0; i < 2; ++i)
    if ((mask & (1 << i)) != 0) d.covering[i].push_back(o.seq);
}

size_t DigestFold::bound() const {
  size_t n = sizeof(trace::DigestFrame) + totals_.size() * sizeof(trace::OmittedRow) +
             trace::compact::kChunkHeaderBytes;
  for (const auto& [seq, k] : kept_) n += trace::compact::kMaxRecordBytes + k.payload.size();
  for (const auto& [key, o] : live_)
    if (o.seq != 0) n += trace::compact::kMaxRecordBytes;
  return n;
}

size_t DigestFold::encode(trace::DigestFrame frame, uint8_t* out, size_t capacity) const {
  // The kept records and the live allocations made in the dropped part, in file order.
  ArenaVector<std::pair<uint64_t, const Record*>> live{
      FoldAllocator<std::pair<uint64_t, const Record*>>(arena_)};
  for (const auto& [k, o] : live_)
    if (o.seq != 0) live.emplace_back(o.seq, &o.rec);
  std::sort(live.begin(), live.end());
  auto omitted = totals_;
  auto emitted = [&](const Record& r) {
    const uint32_t aux = is(r, Op::anomaly) ? static_cast<uint32_t>(r.aux) : 0;
    auto& row = omitted[{r.device, r.op, aux}];
    row.first -= 1;
    row.second -= r.bytes;
  };
  size_t rows = 0;
  // Count first (rows go before the chunk).
  for (const auto& [seq, k] : kept_) emitted(k.rec);
  for (const auto& [seq, r] : live) emitted(*r);
  for (const auto& [k, v] : omitted) rows += v.first != 0 ? 1 : 0;
  const size_t frame_bytes = sizeof(trace::DigestFrame) + rows * sizeof(trace::OmittedRow);
  if (capacity < frame_bytes + trace::compact::kChunkHeaderBytes) return 0;
  size_t at = sizeof(trace::DigestFrame);
  for (const auto& [k, v] : omitted) {
    if (v.first == 0) continue;
    const trace::OmittedRow row{k.device, k.op, k.aux, v.first, v.second};
    std::memcpy(out + at, &row, sizeof row);
    at += sizeof row;
  }
  trace::compact::ChunkEncoder enc;
  enc.begin(out + frame_bytes, capacity - frame_bytes);
  auto k = kept_.begin();
  size_t l = 0;
  while (k != kept_.end() || l < live.size()) {
    const bool from_kept = l == live.size() || (k != kept_.end() && k->first < live[l].first);
    const bool ok = from_kept ? enc.add(k->second.rec, k->second.payload) : enc.add(*live[l].second);
    if (!ok || enc.records() >= trace::compact::kMaxChunkRecords) return 0;
    if (from_kept)
      ++k;
    else
      ++l;
  }
  const size_t chunk = enc.finish();
  frame.magic = trace::kDigestMagic;
  frame.frame_bytes = static_cast<uint32_t>(frame_bytes);
  frame.rows = static_cast<uint32_t>(rows);
  frame.records = records_;
  frame.first_t_ns = records_ != 0 ? first_t_ : 0;
  frame.last_t_ns = records_ != 0 ? last_t_ : 0;
  frame.kept = enc.records();
  frame.checksum = 0;
  std::memcpy(out, &frame, sizeof frame);
  frame.checksum = trace::compact::checksum(frame.frame_bytes, frame.rows, out + 16,
                                            frame_bytes - 16);
  std::memcpy(out, &frame, sizeof frame);
  return frame_bytes + chunk;
}

}  // namespace gpumem::detail
