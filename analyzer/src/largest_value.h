// A multiset of sizes that answers "what is the largest?" — the free-extent sizes of a pool's
// segments, for external fragmentation (1 - largest free / total free) after every event.
//
// A binary max-heap in one vector with lazy removal: remove() notes the value in a small hash
// table, and the largest() that would return a removed value drops it instead. A std::map of
// size -> count (what this replaced) allocated a node per new size and chased pointers on every
// change: 600 ns per pooled event in bench_analyzer. Removed values left deep in the heap are
// swept out whenever they outnumber the live ones, so memory stays proportional to the live set.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "address_map.h"

namespace gpumem::analyzer {

class LargestValue {
 public:
  void add(uint64_t v) {
    heap_.push_back(v);
    std::push_heap(heap_.begin(), heap_.end());
    ++live_;
  }

  // `v` must have been added and not yet removed.
  void remove(uint64_t v) {
    bool inserted = false;
    ++removed_.find_or_insert(v, &inserted);
    --live_;
    if (heap_.size() > 2 * live_ + 64) sweep();
  }

  uint64_t largest() {
    while (!heap_.empty()) {
      const uint64_t top = heap_.front();
      uint64_t* pending = removed_.find(top);
      if (pending == nullptr) return top;
      std::pop_heap(heap_.begin(), heap_.end());
      heap_.pop_back();
      if (--*pending == 0) removed_.erase(top);
    }
    return 0;
  }

  size_t size() const { return live_; }

 private:
  // Drops every removed value from the heap at once (O(n)).
  void sweep() {
    size_t kept = 0;
    for (uint64_t v : heap_) {
      if (uint64_t* pending = removed_.find(v)) {
        if (--*pending == 0) removed_.erase(v);
        continue;
      }
      heap_[kept++] = v;
    }
    heap_.resize(kept);
    std::make_heap(heap_.begin(), heap_.end());
  }

  std::vector<uint64_t> heap_;
  AddressMap<uint64_t> removed_;  // value -> how many of it were removed but are still in heap_
  size_t live_ = 0;
};

}  // namespace gpumem::analyzer
