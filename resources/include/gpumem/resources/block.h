// A pool's unit of bookkeeping: a block (a run of bytes inside one segment) and its segment.
#pragma once

#include <cstdint>

namespace gpumem::resources {

inline constexpr uint64_t kBlockAlign = 512;  // every block starts and is sized on 512 B
// Stream tag of a free block that is safe on every stream (no queued work may still use it).
inline constexpr uint64_t kAnyStream = ~uint64_t{0};

inline uint64_t round_up(uint64_t n, uint64_t to) {
  return (n + to - 1) / to * to;
}

enum class BlockState : uint8_t {
  free,     // reusable: at once on `stream`, anywhere when stream == kAnyStream
  live,     // held by the program
  pending,  // freed synchronously; reusable only after the next device synchronization
};

struct Segment;
class FreeBins;

struct Block {
  uintptr_t addr = 0;
  uint64_t size = 0;
  uint64_t requested = 0;        // live: the bytes the program asked for
  uint64_t stream = kAnyStream;  // free: the stream whose queued work may still use it
  Block* prev = nullptr;         // address neighbours inside the same segment
  Block* next = nullptr;
  Segment* segment = nullptr;
  // free: the index holding it and its neighbours in that index's size bin (free_bins.h)
  FreeBins* bins = nullptr;
  Block* bin_prev = nullptr;
  Block* bin_next = nullptr;
  Block* bin_left = nullptr;  // free: children in the bin's search tree (free_bins.h)
  Block* bin_right = nullptr;
  uint8_t kind = 0;  // the pool's size class (segment kind)
  BlockState state = BlockState::free;
};

struct Segment {
  uintptr_t addr = 0;
  uint64_t size = 0;
  uint8_t kind = 0;
  Block* first = nullptr;
};

}  // namespace gpumem::resources
