// Bytes by category follow the formulas of docs/trainer.md, written out here as numbers: static
// allocation holds them all from the start; eager reaches them at its peak and frees per step.
#include <gtest/gtest.h>

#include "trainer_fixture.h"

using namespace gpumem::train;

namespace {
TrainOptions static_alloc(TrainOptions o) {
  o.alloc = AllocMode::static_once;
  return o;
}
// What static allocation holds before training: every buffer.
MemoryPlan held(const TrainOptions& o) {
  return HostTrainer(static_alloc(o)).memory->bytes_by_category();
}
}  // namespace

TEST(Memory, DefaultModelBytesByCategory) {
  TrainOptions o;  // 100 -> 64 -> 10, batch 32, 2048 samples, fp32, resident
  EXPECT_EQ(parameter_count(o), 7114u);
  const MemoryPlan m = held(o);
  EXPECT_EQ(m[Category::parameters], 28456u);       // 4 P
  EXPECT_EQ(m[Category::gradients], 28456u);        // 4 P
  EXPECT_EQ(m[Category::accumulator], 0u);          // accum 1: none
  EXPECT_EQ(m[Category::optimizer_state], 56912u);  // 2 x 4 P
  EXPECT_EQ(m[Category::activations], 18944u);      // 2 x 4 x 32 x (64 + 10)
  EXPECT_EQ(m[Category::data], 827392u);            // 2048 x (4 x 100 + 4)
  EXPECT_EQ(m[Category::metrics], 16u);
  EXPECT_EQ(m.total(), 960176u);
  EXPECT_EQ(m.total(), plan_memory(static_alloc(o)).total());
}

TEST(Memory, ActivationsScaleWithTheMicroBatch) {
  TrainOptions o;
  for (size_t b : {1u, 8u, 64u, 256u}) {
    o.batch = b;
    const MemoryPlan m = held(o);
    EXPECT_EQ(m[Category::activations], 2u * 4 * b * 74) << "batch " << b;
    EXPECT_EQ(m[Category::parameters], 28456u);
    EXPECT_EQ(m[Category::data], 827392u);
  }
}

TEST(Memory, AccumulationAddsOneGradientSizedBufferAndNothingPerStep) {
  TrainOptions one;
  one.batch = 16;
  TrainOptions four = one;
  four.accum = 4;
  const MemoryPlan a = held(one);
  HostTrainer t(static_alloc(four));
  const MemoryPlan b = t.memory->bytes_by_category();
  EXPECT_EQ(b[Category::accumulator], 28456u);  // 4 P, fp32
  EXPECT_EQ(b.total() - a.total(), 28456u);
  for (size_t c = 0; c < category_count; ++c) {
    if (static_cast<Category>(c) != Category::accumulator) {
      EXPECT_EQ(a.bytes[c], b.bytes[c]);
    }
  }
  // Training allocates nothing more: no buffer per micro-batch or per step.
  const size_t buffers = t.memory->buffers().size();
  t.trainer.train_epoch();
  EXPECT_EQ(t.memory->buffers().size(), buffers);
  EXPECT_EQ(t.memory->peak_bytes(), b.total());
  EXPECT_EQ(t.memory->held_bytes(), b.total());
}

TEST(Memory, StreamUsesAFixedStagingBufferInsteadOfTheDataset) {
  TrainOptions o;
  o.data = DataMode::stream;
  EXPECT_EQ(held(o)[Category::data], 12928u);  // 32 x (4 x 100 + 4)
  o.samples = 8192;
  EXPECT_EQ(held(o)[Category::data], 12928u);  // independent of the dataset size
  o.data = DataMode::resident;
  EXPECT_EQ(held(o)[Category::data], 8192u * 404);
}

TEST(Memory, Fp16HalvesActivationsAndGradients) {
  TrainOptions o;
  o.accum = 2;
  const MemoryPlan f32 = held(o);
  o.dtype = DType::fp16;
  const MemoryPlan f16 = held(o);
  EXPECT_EQ(f16[Category::activations] * 2, f32[Category::activations]);
  EXPECT_EQ(f16[Category::activations], 9472u);
  EXPECT_EQ(f16[Category::gradients], 14228u);    // 2 P
  EXPECT_EQ(f16[Category::accumulator], 28456u);  // stays fp32
  EXPECT_EQ(f16[Category::parameters], 28456u);   // fp32 master weights
  EXPECT_EQ(f16[Category::optimizer_state], 56912u);
  EXPECT_EQ(f16[Category::data], f32[Category::data]);
}

// Widths 30 -> 48 -> 48 -> 48 -> 5, 300 samples in batches of 20.
TrainOptions deeper_model() {
  TrainOptions o;
  o.layers = 3;
  o.hidden = 48;
  o.inputs = 30;
  o.classes = 5;
  o.samples = 300;
  o.batch = 20;
  return o;
}

TEST(Memory, PlanMatchesAllocationsForDeeperModels) {
  TrainOptions o = deeper_model();
  o.accum = 3;
  for (DType t : {DType::fp32, DType::fp16})
    for (DataMode d : {DataMode::resident, DataMode::stream}) {
      o.dtype = t;
      o.data = d;
      const MemoryPlan m = held(o);
      const MemoryPlan p = plan_memory(static_alloc(o));
      EXPECT_EQ(m.bytes, p.bytes);
      // P = 30*48+48 + 2*(48*48+48) + 48*5+5 = 1488 + 4704 + 245
      EXPECT_EQ(parameter_count(o), 6437u);
      EXPECT_EQ(m[Category::activations], 2u * dtype_bytes(t) * 20 * (3 * 48 + 5));
    }
}

TEST(Memory, EachBufferIsNamed) {
  HostTrainer t(static_alloc(TrainOptions{}));
  const auto& b = t.memory->buffers();
  ASSERT_EQ(b.size(),
            23u);  // 2 layers x (w, b, 2 grads, 4 adam) + 2 data + 4 activations + metrics
  EXPECT_EQ(b[0].name, "dense1.weight");
  EXPECT_EQ(b[0].bytes, 25600u);
  EXPECT_EQ(b[16].name, "dataset.inputs");
}

// Eager, the deeper model: widths 30, 48, 48, 48, 5. Live during layer l's backward: outputs 1..l,
// its output gradient and the one it writes: l=4: 149 + 5 + 48 = 202; l=3: 144 + 48 + 48 = 240;
// l=2: 96 + 48 + 48 = 192; l=1: 48 + 48 = 96. The peak is 240 units, against static's 2 x 149.
TEST(Memory, EagerPeakIsTheLargestBackwardState) {
  TrainOptions o = deeper_model();
  o.epochs = 1;
  EXPECT_EQ(activation_peak_units(o), 240u);
  EXPECT_EQ(activation_peak_units(static_alloc(o)), 298u);
  for (DType t : {DType::fp32, DType::fp16})
    for (DataMode d : {DataMode::resident, DataMode::stream}) {
      o.dtype = t;
      o.data = d;
      HostTrainer h(o);
      // Before training: no activations, and no data either when streaming.
      const MemoryPlan before = h.memory->bytes_by_category();
      EXPECT_EQ(before[Category::activations], 0u);
      EXPECT_EQ(before[Category::data], d == DataMode::resident ? 300u * 124 : 0u);
      h.trainer.train_epoch();
      const MemoryPlan peak = h.memory->peak_bytes_by_category();
      EXPECT_EQ(peak.bytes, plan_memory(o).bytes);
      EXPECT_EQ(peak[Category::activations], dtype_bytes(t) * 20 * 240);
      EXPECT_EQ(h.memory->peak_bytes(), plan_memory(o).total());
      // After the epoch, only what lives for the run is held again.
      EXPECT_EQ(h.memory->bytes_by_category().bytes, before.bytes);
    }
}

// Per micro-batch, eager allocates each layer's output and output gradient (2 per layer) and,
// when streaming, the batch's inputs and labels; it frees every one of them in the same step.
TEST(Memory, EagerAllocatesAndFreesPerStepExactly) {
  for (DataMode d : {DataMode::resident, DataMode::stream}) {
    TrainOptions o;  // 2 layers; 2048 / (32 x 2) = 32 steps of 2 micro-batches
    o.accum = 2;
    o.data = d;
    HostTrainer h(o);
    const uint64_t setup = h.memory->allocation_count();
    // 2 layers x 10 (w, b, 2 grads, 2 accumulators, 4 Adam) + metrics, + 2 when resident
    EXPECT_EQ(setup, d == DataMode::resident ? 23u : 21u);
    EXPECT_EQ(h.memory->free_count(), 0u);
    h.trainer.train_epoch();
    const uint64_t per_micro_batch = d == DataMode::resident ? 4 : 6;
    EXPECT_EQ(h.memory->allocation_count() - setup, 32u * 2 * per_micro_batch);
    EXPECT_EQ(h.memory->free_count(), 32u * 2 * per_micro_batch);
    EXPECT_EQ(h.memory->buffers().size(), setup);
  }
}

TEST(Memory, EagerAndStaticComputeTheSameLosses) {
  for (DType t : {DType::fp32, DType::fp16}) {
    TrainOptions o;
    o.dtype = t;
    o.data = DataMode::stream;
    o.accum = 2;
    HostTrainer eager(o);
    HostTrainer fixed(static_alloc(o));
    for (int e = 0; e < 2; ++e) {
      const EpochResult a = eager.trainer.train_epoch();
      const EpochResult b = fixed.trainer.train_epoch();
      EXPECT_EQ(a.loss, b.loss);  // the same arithmetic on the same values, bit for bit
      EXPECT_EQ(a.accuracy, b.accuracy);
    }
    EXPECT_EQ(eager.trainer.parameters(), fixed.trainer.parameters());
  }
}

// --seq-lengths 3,1,2: micro-batches of 32 x T rows. Eager allocates each step's own sizes (so a
// caching pool sees mixed sizes); static pads every buffer to the longest, T = 3.
TEST(Memory, SequenceLengthsVaryTheMicroBatch) {
  TrainOptions o;
  o.seq_lengths = {3, 1, 2};
  o.data = DataMode::stream;
  HostTrainer eager(o);
  const EpochResult r = eager.trainer.train_epoch();
  // Steps take 96, 32, 64 rows in turn: 21 full cycles (4032 rows) would pass 2048, so
  // 10 cycles (1920 rows) and then a 96-row step (2016); the next (32) would fit too: 2048.
  EXPECT_EQ(r.samples, 2048u);
  EXPECT_EQ(eager.trainer.steps_run(), 32u);
  const MemoryPlan peak = eager.memory->peak_bytes_by_category();
  EXPECT_EQ(peak[Category::activations], 4u * 96 * 148);
  EXPECT_EQ(peak[Category::data], 96u * 404);
  EXPECT_EQ(eager.memory->peak_bytes(), plan_memory(o).total());

  HostTrainer fixed(static_alloc(o));
  EXPECT_EQ(fixed.memory->bytes_by_category()[Category::activations], 2u * 4 * 96 * 74);
  EXPECT_EQ(fixed.memory->bytes_by_category()[Category::data], 96u * 404);
  const EpochResult s = fixed.trainer.train_epoch();
  EXPECT_EQ(s.loss, r.loss);
  EXPECT_EQ(seq_length_of_step(o, 0), 3u);
  EXPECT_EQ(seq_length_of_step(o, 4), 1u);
}
