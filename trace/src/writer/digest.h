// The fold of the chunks a bounded trace drops from its middle (GPUMEM_TRACE_MAX;
// docs/trace-format.md, "Bounded traces"). It keeps a subsequence of the dropped records that a
// reader replaying head + digest + window sees exactly where it matters:
//   - definitions (strings, stacks, symbols, device_info) and NVTX heap/region records, all;
//   - the frees of allocations made before the drop (in the head), all;
//   - the allocations made in the dropped part and still live at the cut;
//   - per device, the allocations (and segments) live at the instant the device's allocated
//     (and reserved) bytes were highest in the dropped part, with their frees;
//   - phase begins still open at the cut and ends of phases begun before it.
// Every other record is counted, per device and op, in the omitted rows. An allocation born and
// freed inside the dropped part, alive at none of those instants, goes entirely, so at every
// instant a reader's sum over live allocations is at most the true one and equal at the peaks:
// peaks, their times and live sets, leaks and counts stay exact; only the timeline coarsens.
// Runs under the writer's seal lock, on the appending thread; its memory comes from a FoldArena
// (fold_arena.h), never from malloc, so that a fold inside a signal handler cannot deadlock.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include "fold_arena.h"
#include "gpumem/trace/format.h"
#include "gpumem/trace/format_v2.h"

namespace gpumem::detail {

class DigestFold {
 public:
  explicit DigestFold(FoldArena* arena);
  // A record of the head, which stays in the file: only what it leaves live matters.
  void head(const trace::Record& r);
  // A record of a dropped chunk, in file order.
  void drop(const trace::Record& r, std::string_view payload);
  // Frame (generation, chunk indices, window offset filled in by the caller in `frame`), rows and
  // the digest chunk into out; the size written, or 0 when it does not fit in `capacity`.
  size_t encode(trace::DigestFrame frame, uint8_t* out, size_t capacity) const;
  // An upper bound of encode()'s size.
  size_t bound() const;
  uint64_t dropped_records() const { return records_; }

 private:
  struct Kept {
    trace::Record rec;
    ArenaString payload;
    Kept(const trace::Record& r, ArenaString p) : rec(r), payload(std::move(p)) {}
  };
  struct Object {
    trace::Record rec;
    uint64_t seq = 0;  // when it was made; 0 = in the head
  };
  struct Dead {  // freed in the dropped part but kept: it was live at a peak
    uint64_t free_seq = 0;
    uint8_t mask = 0;  // which peaks (bit m: metric m) it covers
  };
  struct Device {
    int64_t cur[2] = {0, 0};   // allocated, reserved (true values over head + dropped)
    int64_t max[2] = {0, 0};   // their highest in the dropped part
    uint64_t p_seq[2] = {0, 0};  // the record that reached it (objects made at or before it and
                                 // freed after it were live then)
    ArenaVector<uint64_t> covering[2];  // Dead objects kept for that peak (their seq)
    explicit Device(FoldArena* a) : covering{ArenaVector<uint64_t>(FoldAllocator<uint64_t>(a)),
                                             ArenaVector<uint64_t>(FoldAllocator<uint64_t>(a))} {}
  };
  struct OmitKey {
    int16_t device;
    uint16_t op;
    uint32_t aux;
    bool operator<(const OmitKey& o) const {
      return device != o.device ? device < o.device : op != o.op ? op < o.op : aux < o.aux;
    }
  };

  static uint64_t key(const trace::Record& r, int cls);
  Device& device(int16_t d);
  void change(const trace::Record& alloc, int64_t sign, uint64_t seq, bool in_drop);
  uint8_t metrics(const trace::Record& alloc) const;
  void take(const trace::Record& r, uint64_t seq, bool in_drop);
  void keep(uint64_t seq, const trace::Record& r, std::string_view payload = {});

  FoldArena* arena_;
  uint64_t seq_ = 0;
  uint64_t records_ = 0;
  int64_t first_t_ = INT64_MAX, last_t_ = INT64_MIN;
  ArenaHashMap<uint64_t, Object> live_;
  ArenaMap<uint64_t, Kept> kept_;  // by seq
  ArenaHashMap<uint64_t, Dead> dead_;
  ArenaMap<int16_t, Device> devices_;
  ArenaMap<OmitKey, std::pair<uint64_t, uint64_t>> totals_;  // every dropped record
  // Open phases: push ranges per thread (seq of their begin), process ranges by range id.
  ArenaHashMap<uint32_t, ArenaVector<uint64_t>> pushed_;
  ArenaHashMap<uint64_t, uint64_t> started_;
};

}  // namespace gpumem::detail
