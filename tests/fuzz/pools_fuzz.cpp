// libFuzzer target: the resource stacks that run inside the user's program (resources/, the very
// classes libgpumem.so builds per device) under any sequence of calls a program can make. The
// first bytes pick the stack (no pool, growth, fixed or expandable pool; a limit or none; the
// device's capacity and when it starts refusing); each following 4 bytes are one call: allocate
// any size (zero, a few bytes, segment sizes, near the capacity, up to 2^64 - 1) on one of three
// streams, free a live block (synchronous or stream-ordered), free what the program does not
// hold (an unknown address, an address inside a block, a block freed already), synchronize,
// empty the cache. The stack must never crash and never disagree with a model of the program:
// a granted block overlaps no live block, a free of a live block succeeds, any other free is
// refused and changes nothing, allocated bytes equal the model's, reserved never falls below
// allocated, and once everything is freed the pools give all their memory back.
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <vector>

#include "gpumem/resources/simulated_upstream.h"
#include "gpumem/resources/simulated_vmm.h"
#include "gpumem/resources/stack.h"
#include "record_stream.h"  // Input

namespace {

using namespace gpumem::resources;

using gpumem::fuzz::Input;

constexpr uint64_t kMiB = uint64_t{1} << 20;

uint64_t size_from(Input& in, uint64_t capacity) {
  const uint8_t b = in.u8();
  const uint8_t c = in.u8();
  switch (b % 8) {
    case 0:
      return c;  // 0..255 bytes, 0 included
    case 1:
      return (uint64_t{c} << 9) + (b >> 3);  // around 512 B blocks
    case 2:
      return (uint64_t{c} << 14) + b;  // up to 4 MiB
    case 3:
      return (uint64_t{c} % 64 + 1) * 2 * kMiB;  // whole 2 MiB granules
    case 4:
      return (uint64_t{c} % 64 + 1) * 20 * kMiB - 1;  // around large segments
    case 5:
      return capacity - c;  // near the device's capacity
    case 6:
      return uint64_t{1} << (c % 64);  // powers of two up to 2^63
    default:
      return UINT64_MAX - c;  // what no device has
  }
}

void trap_unless(bool ok) {
  if (!ok) __builtin_trap();
}

Request alloc_request(uint64_t bytes, uint64_t stream) {
  Request r;
  r.bytes = bytes;
  r.stream = stream;
  r.api = gpumem::trace::Api::cudaMalloc;
  return r;
}
// `bytes`: the size of the allocation the caller holds (the preload's live table gives it; the
// device layer counts it), 0 when it holds none.
Request free_request(bool ordered, uint64_t stream, uint64_t bytes) {
  Request r;
  r.bytes = bytes;
  r.stream = ordered ? stream : 0;
  r.api = ordered ? gpumem::trace::Api::cudaFreeAsync : gpumem::trace::Api::cudaFree;
  r.flags = ordered ? gpumem::trace::kFlagAsync : 0;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in{data, size};
  const uint8_t shape = in.u8();
  const uint8_t limits = in.u8();
  SimulatedUpstream::Options device;
  device.capacity = (uint64_t{limits} % 16 + 1) * 64 * kMiB;  // 64 MiB .. 1 GiB
  if (limits & 0x10) device.fail_alloc_after = in.u8() % 32;
  SimulatedUpstream sim(device);
  SimulatedVmm vmm;
  StackConfig config;
  config.pool = static_cast<PoolKind>(shape % 4);
  if (shape & 0x04) config.limit = (uint64_t{in.u8()} + 1) * 2 * kMiB;
  if (config.pool == PoolKind::fixed) config.pool_size = (uint64_t{in.u8()} + 1) * 2 * kMiB;
  config.vmm = &vmm;
  config.vmm_range = (uint64_t{in.u8()} % 8 + 1) * 64 * kMiB;
  auto stack = std::make_unique<DeviceStack>(sim, 0, config);
  if (!stack->valid()) return 0;
  MemoryResource& mr = *stack->top();

  std::map<uint64_t, uint64_t> live;  // address -> requested bytes
  std::vector<uint64_t> freed;        // addresses freed and not granted again
  uint64_t allocated = 0;
  static constexpr uint64_t kStreams[] = {0, 0x1100, 0x2200};
  while (in.left() >= 4) {
    const uint8_t op = in.u8();
    const uint64_t stream = kStreams[(op >> 4) % 3];
    switch (op % 8) {
      case 0:
      case 1:
      case 2: {
        const uint64_t bytes = size_from(in, device.capacity);
        const Result r = mr.allocate(alloc_request(bytes, stream));
        if (bytes == 0) trap_unless(r.status == Status::invalid_value);
        if (!r.ok()) break;
        const uint64_t a = reinterpret_cast<uint64_t>(r.ptr);
        trap_unless(a != 0 && a + bytes >= a);
        auto next = live.lower_bound(a);
        trap_unless(next == live.end() || a + bytes <= next->first);
        trap_unless(next == live.begin() || std::prev(next)->first + std::prev(next)->second <= a);
        live.emplace(a, bytes);
        std::erase(freed, a);
        allocated += bytes;
        break;
      }
      case 3:
      case 4: {  // a live block, synchronous or stream-ordered
        const uint8_t pick = in.u8();
        in.u8();
        if (live.empty()) break;
        auto it = std::next(live.begin(), static_cast<long>(pick % live.size()));
        const FreeResult f = mr.deallocate(reinterpret_cast<void*>(it->first),
                                           free_request(op % 2 == 0, stream, it->second));
        trap_unless(f.ok());
        allocated -= it->second;
        freed.push_back(it->first);
        live.erase(it);
        break;
      }
      case 5: {  // what the program does not hold: refused, nothing changes
        const uint8_t how = in.u8();
        const uint8_t pick = in.u8();
        uint64_t a = 0x10000ull + uint64_t{pick} * 4096;  // never a device address here
        if (how % 3 == 1 && !live.empty()) {
          auto it = std::next(live.begin(), static_cast<long>(pick % live.size()));
          if (it->second < 2) break;
          a = it->first + 1 + pick % (it->second - 1);  // inside a live block
        } else if (how % 3 == 2 && !freed.empty()) {
          a = freed[pick % freed.size()];  // freed already (a double free)
        }
        const FreeResult f =
            mr.deallocate(reinterpret_cast<void*>(a), free_request(how & 4, stream, 0));
        trap_unless(!f.ok());
        break;
      }
      case 6:
        in.u8();
        in.u8();
        trap_unless(mr.synchronize(0) == Status::ok);
        break;
      default:
        in.u8();
        in.u8();
        if (PoolResource* pool = stack->pool()) pool->empty_cache();
        break;
    }
    const Stats s = stack->stats();
    trap_unless(s.allocated_bytes == allocated);
    trap_unless(s.reserved_bytes >= s.allocated_bytes);
    trap_unless(config.limit == 0 || s.reserved_bytes <= config.limit);
  }
  // Everything freed, the device synchronized and the cache emptied: a pool that grows gives
  // every byte back (a fixed pool keeps its one segment).
  while (!live.empty()) {
    const auto [a, bytes] = *live.begin();
    trap_unless(mr.deallocate(reinterpret_cast<void*>(a), free_request(false, 0, bytes)).ok());
    live.erase(live.begin());
  }
  trap_unless(mr.synchronize(0) == Status::ok);
  if (PoolResource* pool = stack->pool()) pool->empty_cache();
  const Stats s = stack->stats();
  trap_unless(s.allocated_bytes == 0);
  if (config.pool != PoolKind::fixed) trap_unless(s.reserved_bytes == 0);
  stack.reset();  // every segment, granule and range goes back
  trap_unless(sim.live_count() == 0);
  trap_unless(vmm.live_handles() == 0 && vmm.live_mappings() == 0 && vmm.live_ranges() == 0);
  return 0;
}
