// The hand-built trace behind the report_html tests: one device under a growth pool with a 1 GiB
// limit, an epoch holding two steps, a failed allocation, a leak, call stacks, and the hostile
// strings of the escaping test. Every number the page shows is known:
//
//   t (ms)  event                                  allocated  reserved
//    1      segment S1 512 MiB                        0        512 MiB
//    3,4,5  A 128 MiB, B 256 MiB, C 64 MiB in S1    448 MiB    512 MiB
//    6      free A (S1 free: 128 hole + 64 tail)    320 MiB    512 MiB
//    9      segment S2 256 MiB                      320 MiB    768 MiB
//   10      D 256 MiB in S2                 peak -> 576 MiB    768 MiB   frag 1 - 128/192
//   11      1 GiB allocation fails (576 MiB in use)
//   12,14   free D, free B                           64 MiB    768 MiB
//   16      release S2                               64 MiB    512 MiB   (C leaks)
#pragma once

#include <cstring>
#include <string>

#include "events.h"

namespace gpumem::analyzer::testing {

inline constexpr int64_t kMs = 1'000'000;
inline constexpr uint64_t kMiB = 1ull << 20;
inline constexpr const char* kEvilMarker = "<script>alert(1)</script>";
inline constexpr const char* kEvilCommand =
    "python train.py --tag \"</script><img src=x onerror=alert(2)>\" --note 'a & b'";

inline trace::Header sample_header(bool evil) {
  trace::Header h = make_header(4242, -1, "growth");
  h.devices[0].limit_bytes = 1ull << 30;
  std::strncpy(h.host, "gpu-node-01", sizeof h.host - 1);
  std::memset(h.command, 0, sizeof h.command);
  std::strncpy(h.command, evil ? kEvilCommand : "python train.py --epochs 1 --batch 64",
               sizeof h.command - 1);
  std::memset(h.devices[0].name, 0, sizeof h.devices[0].name);
  std::strncpy(h.devices[0].name, "NVIDIA H100 80GB HBM3", sizeof h.devices[0].name - 1);
  return h;
}

// Two call sites with symbolized frames; `evil` names the second step with kEvilMarker.
inline Events sample_events(bool evil) {
  const uint64_t s1 = 0x7f0000000000, s2 = 0x7f1000000000;
  Events e;
  e.string(1, "epoch 0")
      .string(2, "step 1")
      .string(3, evil ? kEvilMarker : "step 2")
      .string(10, "forward (libtrain.so+0x1a2b)")
      .string(11, "Trainer::step (libtrain.so+0x2c40)")
      .string(12, "optimizer_init (libtrain.so+0x3300)")
      .stack(1, {0x1000, 0x2000})
      .stack(2, {0x3000, 0x2000})
      .symbol(0x1000, 10)
      .symbol(0x2000, 11)
      .symbol(0x3000, 12);
  auto pooled_at = [&](int64_t t, uint64_t address, uint64_t bytes, uint32_t site) {
    e.alloc(t, address, bytes, site, 0, trace::kFlagPooled);
  };
  e.begin(0, 1).segment(1 * kMs, s1, 512 * kMiB).begin(2 * kMs, 2);
  pooled_at(3 * kMs, s1, 128 * kMiB, 1);
  pooled_at(4 * kMs, s1 + 128 * kMiB, 256 * kMiB, 2);
  pooled_at(5 * kMs, s1 + 384 * kMiB, 64 * kMiB, 1);
  e.free(6 * kMs, s1).end(7 * kMs, 2).begin(8 * kMs, 3).segment(9 * kMs, s2, 256 * kMiB);
  pooled_at(10 * kMs, s2, 256 * kMiB, 1);
  e.failed(11 * kMs, 1024 * kMiB, 576 * kMiB)
      .free(12 * kMs, s2)
      .end(13 * kMs, 3)
      .free(14 * kMs, s1 + 128 * kMiB)
      .end(15 * kMs, 1)
      .release(16 * kMs, s2, 256 * kMiB);
  return e;
}

inline Report sample_report(bool evil = false) {
  return sample_events(evil).analyze(sample_header(evil));
}

}  // namespace gpumem::analyzer::testing
