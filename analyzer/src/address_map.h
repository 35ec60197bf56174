// A flat open-addressing hash map keyed by 64-bit addresses, for the per-event lookups of the
// replay (live allocations, recently freed addresses). std::unordered_map allocates a node per
// insert and chases a pointer per lookup; this keeps keys and values in one array (linear probing,
// backward-shift deletion, no tombstones), so an alloc/free pair costs no allocation at all.
// Key 0 is the empty-slot mark; an entry with key 0 (a corrupt trace may hold one) lives apart.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace gpumem::analyzer {

template <class Value>
class AddressMap {
 public:
  AddressMap() {
    slots_.resize(kMinCapacity);
    resized();
  }

  size_t size() const { return size_; }

  Value* find(uint64_t key) {
    if (key == 0) return has_zero_ ? &zero_value_ : nullptr;
    Slot* slots = slots_.data();
    for (size_t i = home(key);; i = (i + 1) & mask_) {
      Slot& s = slots[i];
      if (s.key == key) return &s.value;
      if (s.key == 0) return nullptr;
    }
  }
  // Starts loading the slot where a lookup of `key` begins (a hint; no effect on the contents).
  void prefetch(uint64_t key) const { __builtin_prefetch(slots_.data() + home(key)); }

  // The value under `key`, inserted value-initialised when absent (*inserted says which). One
  // probe sequence for a lookup that may turn into an insert. Valid until the next insertion.
  Value& find_or_insert(uint64_t key, bool* inserted) {
    *inserted = false;
    if (key == 0) {
      if (!has_zero_) {
        has_zero_ = *inserted = true;
        zero_value_ = Value{};
        ++size_;
      }
      return zero_value_;
    }
    Slot* slots = slots_.data();
    for (size_t i = home(key);; i = (i + 1) & mask_) {
      Slot& s = slots[i];
      if (s.key == key) return s.value;
      if (s.key == 0) {
        if ((stored_ + 1) * 2 > mask_ + 1) {  // at most half full: grow, then probe again
          grow();
          return find_or_insert(key, inserted);
        }
        s.key = key;
        s.value = Value{};
        ++stored_;
        ++size_;
        *inserted = true;
        return s.value;
      }
    }
  }

  // Keeps only the entries for which keep(key, value) is true (a rebuild: O(capacity)).
  template <class Keep>
  void retain_if(Keep&& keep) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.resize(std::max(kMinCapacity, old.size()));
    resized();
    stored_ = 0;
    size_ = has_zero_ ? 1 : 0;
    if (has_zero_ && !keep(uint64_t{0}, zero_value_)) has_zero_ = false, size_ = 0;
    for (const Slot& s : old) {
      if (s.key == 0 || !keep(s.key, s.value)) continue;
      size_t i = home(s.key);
      while (slots_[i].key != 0) i = (i + 1) & mask();
      slots_[i] = s;
      ++stored_;
      ++size_;
    }
  }

  // Removes `key`; false when it was not there.
  bool erase(uint64_t key) {
    if (key == 0) {
      if (!has_zero_) return false;
      has_zero_ = false;
      --size_;
      return true;
    }
    size_t i = home(key);
    while (slots_[i].key != key) {
      if (slots_[i].key == 0) return false;
      i = (i + 1) & mask();
    }
    // Backward shift: move later entries of the probe run into the hole when their home allows.
    for (size_t j = (i + 1) & mask();; j = (j + 1) & mask()) {
      if (slots_[j].key == 0) break;
      size_t k = home(slots_[j].key);
      bool movable = i <= j ? (k <= i || k > j) : (k <= i && k > j);
      if (movable) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].key = 0;
    --stored_;
    --size_;
    return true;
  }

  template <class F>
  void for_each(F&& f) const {
    if (has_zero_) f(uint64_t{0}, zero_value_);
    for (const Slot& s : slots_)
      if (s.key != 0) f(s.key, s.value);
  }

 private:
  static constexpr size_t kMinCapacity = 64;
  struct Slot {
    uint64_t key = 0;
    Value value{};
  };

  size_t mask() const { return mask_; }
  // Fibonacci hashing: addresses are often multiples of large powers of two.
  size_t home(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  // The table's size changed: keep mask and shift at hand for the per-event lookups.
  void resized() {
    mask_ = slots_.size() - 1;
    shift_ = 64 - static_cast<unsigned>(std::countr_zero(slots_.size()));
  }

  [[gnu::noinline, gnu::cold]] void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    resized();
    for (const Slot& s : old) {
      if (s.key == 0) continue;
      size_t i = home(s.key);
      while (slots_[i].key != 0) i = (i + 1) & mask();
      slots_[i] = s;
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 64;
  size_t stored_ = 0;  // entries in slots_
  size_t size_ = 0;    // stored_ plus the key-0 entry
  bool has_zero_ = false;
  Value zero_value_{};
};

}  // namespace gpumem::analyzer
