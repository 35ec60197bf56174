#include "oom_advice.h"

#include <fmt/format.h>
#include <algorithm>
#include <vector>

#include "gpumem/units.h"
#include "memory_plan.h"

namespace gpumem::train {
namespace {

std::string human(uint64_t bytes) {
  char buf[32];
  return fmt::format("{} ({} bytes)", format_bytes(bytes, buf, sizeof buf), bytes);
}

struct Remedy {
  std::string flags;
  std::string why;
  uint64_t total;
};

}  // namespace

std::string out_of_memory_advice(const TrainOptions& o, const OutOfDeviceMemory& e,
                                 uint64_t capacity) {
  const MemoryPlan plan = plan_memory(o);
  std::string text = fmt::format(
      "gpumem-train: out of device memory allocating '{}' ({}): {} requested while the trainer "
      "held {}",
      e.buffer.name, category_key(e.buffer.category), human(e.buffer.bytes),
      human(e.trainer_bytes_before));
  if (capacity != 0) text += fmt::format("; device capacity {}", human(capacity));
  text += fmt::format(".\nThis configuration needs {} in all:", human(plan.total()));
  for (size_t c = 0; c < category_count; ++c) {
    if (plan.bytes[c] == 0) continue;
    text +=
        fmt::format("\n  {:<34} {}", category_key(static_cast<Category>(c)), human(plan.bytes[c]));
  }

  std::vector<Remedy> remedies;
  auto consider = [&](TrainOptions changed, std::string flags, std::string why) {
    const uint64_t total = plan_memory(changed).total();
    if (total < plan.total()) remedies.push_back({std::move(flags), std::move(why), total});
  };
  if (o.data == DataMode::resident) {
    TrainOptions t = o;
    t.data = DataMode::stream;
    consider(t, "--data stream",
             "keeps the dataset on the host and copies one micro-batch at a time into a staging "
             "buffer");
  }
  if (o.dtype == DType::fp32) {
    TrainOptions t = o;
    t.dtype = DType::fp16;
    consider(t, "--dtype fp16", "halves activations and gradients (weights stay fp32)");
  }
  // Smaller micro-batches, with more accumulation so that the effective batch stays the same.
  for (size_t b = o.batch / 2; b >= 1; b /= 2) {
    TrainOptions t = o;
    t.batch = b;
    const bool exact = o.batch % b == 0;
    t.accum = exact ? o.accum * (o.batch / b) : o.accum;
    const bool fits = capacity == 0 || plan_memory(t).total() <= capacity;
    if (fits || b == 1) {
      consider(t,
               exact ? fmt::format("--batch {} --accum {}", t.batch, t.accum)
                     : fmt::format("--batch {}", t.batch),
               exact ? fmt::format("activations scale with the micro-batch; {} x {} keeps the "
                                   "effective batch of {} samples per step",
                                   t.batch, t.accum, o.batch * o.accum)
                     : "activations scale with the micro-batch");
      break;
    }
  }
  if (o.accum > 1) {
    TrainOptions t = o;
    t.accum = 1;
    consider(t, "--accum 1",
             "drops the separate fp32 gradient accumulator (but shrinks the effective batch)");
  }

  if (remedies.empty()) {
    text +=
        "\nNo setting of --batch, --accum, --data or --dtype makes it smaller; use a smaller "
        "model (--hidden, --layers, --inputs) or a device with more memory.";
    return text;
  }
  std::sort(remedies.begin(), remedies.end(),
            [](const Remedy& a, const Remedy& b) { return a.total < b.total; });
  text += "\nWhat would help (smallest total first):";
  for (const Remedy& r : remedies) {
    const char* verdict = capacity == 0         ? ""
                          : r.total <= capacity ? ": fits"
                                                : ": still too big alone";
    text += fmt::format("\n  {:<24} needs {}{}; {}", r.flags, human(r.total), verdict, r.why);
  }
  if (capacity != 0) {
    // All the remedies together, in case no single one is enough.
    TrainOptions t = o;
    t.data = DataMode::stream;
    t.dtype = DType::fp16;
    t.accum = o.accum * o.batch;
    t.batch = 1;
    if (std::none_of(remedies.begin(), remedies.end(),
                     [&](const Remedy& r) { return r.total <= capacity; })) {
      const uint64_t all = plan_memory(t).total();
      text += all <= capacity ? fmt::format(
                                    "\nNo single change fits; together (--data stream --dtype fp16 "
                                    "--batch 1 --accum {}) they need {}.",
                                    t.accum, human(all))
                              : fmt::format(
                                    "\nEven all of them together need {}: use a smaller model "
                                    "(--hidden, --layers, --inputs) or a device with more memory.",
                                    human(all));
    }
  }
  return text;
}

}  // namespace gpumem::train
