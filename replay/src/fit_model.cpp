#include <cmath>

#include "gpumem/replay/fit_model.h"

namespace gpumem::replay {

bool fit_line(const std::vector<Measurement>& points, LinearFit* out, std::string* error) {
  const double n = static_cast<double>(points.size());
  double sx = 0, sy = 0;
  for (const Measurement& m : points) {
    sx += static_cast<double>(m.batch);
    sy += static_cast<double>(m.peak_bytes);
  }
  const double mx = n > 0 ? sx / n : 0, my = n > 0 ? sy / n : 0;
  double sxx = 0, sxy = 0, syy = 0;
  for (const Measurement& m : points) {
    const double dx = static_cast<double>(m.batch) - mx,
                 dy = static_cast<double>(m.peak_bytes) - my;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  if (points.size() < 2 || sxx == 0) {
    *error =
        "a line needs peaks measured at two or more different micro-batches; give --batches "
        "with at least two values, e.g. --batches 1,2,4,8";
    return false;
  }
  LinearFit f;
  f.per_sample_bytes = sxy / sxx;
  f.fixed_bytes = my - f.per_sample_bytes * mx;
  double ss_res = 0;
  for (const Measurement& m : points) {
    const double r = static_cast<double>(m.peak_bytes) - f.predict(m.batch);
    ss_res += r * r;
    f.max_abs_residual_bytes = std::max(f.max_abs_residual_bytes, std::fabs(r));
  }
  f.r2 = syy > 0 ? 1.0 - ss_res / syy : 1.0;
  *out = f;
  return true;
}

bool parse_accum_rule(const std::string& text, AccumRule* out) {
  if (text == "divisor")
    *out = AccumRule::divisor;
  else if (text == "ceil")
    *out = AccumRule::ceil;
  else
    return false;
  return true;
}

const char* accum_rule_name(AccumRule r) {
  return r == AccumRule::divisor ? "divisor" : "ceil";
}

uint64_t accum_for(uint64_t effective_batch, uint64_t batch) {
  return (effective_batch + batch - 1) / batch;
}

std::optional<Recommendation> recommend(const LinearFit& fit, uint64_t limit, double margin,
                                        uint64_t effective_batch, AccumRule rule) {
  const auto allowed = [&](uint64_t b) {
    return rule == AccumRule::ceil || effective_batch % b == 0;
  };
  const auto fits = [&](uint64_t b) {
    return fit.predict(b) * (1.0 + margin) <= static_cast<double>(limit);
  };
  std::optional<Recommendation> best;
  // N is a batch size, so a scan is short and needs no assumption about the slope's sign.
  for (uint64_t b = 1; b <= effective_batch; ++b)
    if (allowed(b) && fits(b))
      best = Recommendation{b, accum_for(effective_batch, b), fit.predict(b), std::nullopt};
  // The next larger allowed micro-batch: by the scan it does not fit (verification runs it).
  if (best)
    for (uint64_t b = best->batch + 1; b <= effective_batch; ++b)
      if (allowed(b)) {
        best->next_batch = b;
        break;
      }
  return best;
}

}  // namespace gpumem::replay
