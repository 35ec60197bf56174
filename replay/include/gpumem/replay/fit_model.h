// The arithmetic of `gpumem fit`: a least-squares line peak = fixed + per_sample * micro_batch
// through the measured peaks, and the largest micro-batch whose predicted peak, with a safety
// margin, fits under a limit. No processes here (cli/cmd_fit.cpp runs them). docs/replay-fit.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gpumem::replay {

struct Measurement {
  uint64_t batch = 0;
  uint64_t peak_bytes = 0;
};

struct LinearFit {
  double fixed_bytes = 0;       // intercept
  double per_sample_bytes = 0;  // slope
  double max_abs_residual_bytes = 0;
  double r2 = 1;  // 1 when the peaks do not vary at all and the line is exact
  double predict(uint64_t batch) const {
    return fixed_bytes + per_sample_bytes * static_cast<double>(batch);
  }
};

// Needs at least two distinct batches; false and *error otherwise.
bool fit_line(const std::vector<Measurement>& points, LinearFit* out, std::string* error);

enum class AccumRule {
  divisor,  // only micro-batches that divide N: accum = N / batch, effective batch exactly N
  ceil,     // any micro-batch up to N: accum = ceil(N / batch), effective batch >= N
};
bool parse_accum_rule(const std::string& text, AccumRule* out);
const char* accum_rule_name(AccumRule r);

// The accumulation steps a micro-batch needs for effective batch N under the rule (ceil(N/b)).
uint64_t accum_for(uint64_t effective_batch, uint64_t batch);

struct Recommendation {
  uint64_t batch = 0;
  uint64_t accum = 0;
  double predicted_bytes = 0;          // without the margin
  std::optional<uint64_t> next_batch;  // the next larger candidate (for verification), if any
};

// The largest allowed micro-batch b <= N with predict(b) * (1 + margin) <= limit; nullopt when
// none (see fixed_exceeds_limit for the reason to give).
std::optional<Recommendation> recommend(const LinearFit& fit, uint64_t limit, double margin,
                                        uint64_t effective_batch, AccumRule rule);

}  // namespace gpumem::replay
