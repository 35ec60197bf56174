// Live blocks by address: one flat open-addressing table (linear probing, backward-shift
// deletion), so a lookup is a multiply and usually one cache line. It only allocates when it
// grows (at half full); steady state is allocation-free.
#pragma once

#include <cstdint>
#include <vector>

#include "gpumem/resources/block.h"

namespace gpumem::resources {

class LiveTable {
 public:
  LiveTable() : slots_(kInitial) {}

  void insert(Block* b) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    place(b);
    ++count_;
  }

  Block* find(uintptr_t addr) const {
    for (size_t i = home(addr);; i = (i + 1) & mask()) {
      Block* b = slots_[i];
      if (b == nullptr) return nullptr;
      if (b->addr == addr) return b;
    }
  }

  // `b` must be in the table.
  void erase(const Block* b) {
    size_t hole = home(b->addr);
    while (slots_[hole] != b) hole = (hole + 1) & mask();
    // Backward shift: move later entries of the probe run into the hole when their home allows.
    for (size_t i = (hole + 1) & mask(); slots_[i] != nullptr; i = (i + 1) & mask()) {
      const size_t h = home(slots_[i]->addr);
      if (((i - h) & mask()) >= ((i - hole) & mask())) {
        slots_[hole] = slots_[i];
        hole = i;
      }
    }
    slots_[hole] = nullptr;
    --count_;
  }

  size_t size() const { return count_; }

 private:
  static constexpr size_t kInitial = 64;

  size_t mask() const { return slots_.size() - 1; }
  size_t home(uintptr_t addr) const {
    // Addresses are multiples of 512: Fibonacci hashing spreads them over the top bits.
    return static_cast<size_t>(((addr >> 9) * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void place(Block* b) {
    size_t i = home(b->addr);
    while (slots_[i] != nullptr) i = (i + 1) & mask();
    slots_[i] = b;
  }
  void grow() {
    std::vector<Block*> old(slots_.size() * 2);
    old.swap(slots_);
    --shift_;
    for (Block* b : old)
      if (b != nullptr) place(b);
  }

  std::vector<Block*> slots_;
  unsigned shift_ = 64 - 6;  // log2(kInitial) top bits
  size_t count_ = 0;
};

}  // namespace gpumem::resources
