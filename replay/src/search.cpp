// The smallest limit under which a device's whole program fits, for one policy.
//
// fits(L) changes only at multiples of the policy's granularity g (replay.h). Two facts bound the
// search without guessing:
//   - below P = the program's peak allocated bytes nothing fits: the limit counts at least the
//     bytes the program holds (pool blocks sit inside segments the limit counted);
//   - at H = what the policy reserved at most when only the capacity bounded it, everything fits
//     that fitted at the capacity: a limit that never refuses changes nothing.
// So binary search over k in ((P-1)/g, H/g] with fits(k*g) gives a boundary b: fits(b), !fits(b-g).
// A pool's fits() need not be monotone (the fixed pool's best fit depends on the size of its last
// block; a refused segment makes the growth pool release its cache), so then:
//   - below b, every step down to P is replayed when that costs at most kScanBudget replayed steps
//     (else `window` steps): the lowest that fits is the answer, smallest_bytes, exact;
//   - above b, `window` steps are replayed; a failure there restarts the binary search above it,
//     and safe_bytes is the limit from which every checked limit fits.
// non_monotonic says that either moved.
#include "gpumem/replay/replay.h"

namespace gpumem::replay {
namespace {

// Replays (steps x limits) the downward scan may spend before it falls back to the window.
constexpr uint64_t kScanBudget = 50'000'000;

class Search {
 public:
  Search(const Program& program, const DeviceProgram& dp, Policy policy, uint64_t capacity,
         LimitSearch& out)
      : program_(program), dp_(dp), capacity_(capacity), out_(out) {
    options_.policy = policy;
    options_.capacity = capacity;
    options_.metrics = false;
  }

  bool fits(uint64_t k) {
    ++out_.replays;
    options_.limit = k * out_.granularity;
    if (options_.limit == 0) return dp_.steps.empty();
    return replay_device(program_, dp_, options_).fits;
  }

  // Smallest k in (lo, hi] with fits(k), given !fits(lo) and fits(hi).
  uint64_t bisect(uint64_t lo, uint64_t hi) {
    while (lo + 1 < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      (fits(mid) ? hi : lo) = mid;
    }
    return hi;
  }

  void run(int window) {
    const uint64_t g = out_.granularity;
    const uint64_t k_max = capacity_ / g;
    options_.limit = k_max * g;
    ++out_.replays;
    const DeviceRun full = replay_device(program_, dp_, options_);
    out_.fits_at_capacity = full.fits;
    if (!full.fits) return;
    if (full.peak_allocated_bytes == 0) {
      out_.smallest_bytes = 0;
      return;
    }
    uint64_t k_hi = std::min(k_max, (full.peak_reserved_bytes + g - 1) / g);
    if (!fits(k_hi)) k_hi = k_max;  // not expected (see above); the capacity is known to fit
    const uint64_t floor_k = (full.peak_allocated_bytes - 1) / g;  // below P: cannot fit
    const uint64_t k_bisect = bisect(floor_k, k_hi);
    // Below it: every step down to the floor when the replays fit the budget, else `window` steps.
    // The smallest limit that fits is the lowest fitting step seen.
    uint64_t k_min = k_bisect;
    const uint64_t below = k_bisect - floor_k - 1;
    const uint64_t scan = below * std::max<size_t>(dp_.steps.size(), 1) <= kScanBudget
                              ? below
                              : std::min<uint64_t>(below, static_cast<uint64_t>(window));
    out_.below_exhaustive = scan == below;
    for (uint64_t i = 2; i <= scan; ++i)
      if (fits(k_bisect - i)) k_min = k_bisect - i;
    out_.smallest_bytes = k_min * g;
    // Above it: `window` steps must fit; a failure there means fits() is not monotone, and the
    // safe limit (from which every checked limit fits) is searched again above that failure.
    uint64_t k_safe = k_bisect;
    for (uint64_t i = 1; i <= static_cast<uint64_t>(window) && k_safe + i <= k_max; ++i) {
      if (fits(k_safe + i)) continue;
      k_safe = bisect(k_safe + i, k_hi);
      i = 0;
    }
    out_.safe_bytes = k_safe * g;
    out_.non_monotonic = k_min != k_bisect || k_safe != k_bisect;
  }

 private:
  const Program& program_;
  const DeviceProgram& dp_;
  uint64_t capacity_;
  ReplayOptions options_;
  LimitSearch& out_;
};

}  // namespace

LimitSearch smallest_limit(const Program& program, const DeviceProgram& device, Policy policy,
                           uint64_t capacity, int window) {
  LimitSearch out;
  out.policy = policy;
  out.granularity = limit_granularity(policy);
  Search(program, device, policy, effective_capacity(device, capacity), out).run(window);
  return out;
}

}  // namespace gpumem::replay
