// Bytes by category follow the formulas of docs/trainer.md, written out here as numbers.
#include <gtest/gtest.h>

#include "trainer_fixture.h"

using namespace gpumem::train;

namespace {
MemoryPlan held(const TrainOptions& o) {
  return HostTrainer(o).memory->bytes_by_category();
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
  EXPECT_EQ(m.total(), plan_memory(o).total());
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
  HostTrainer t(four);
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

TEST(Memory, PlanMatchesAllocationsForDeeperModels) {
  TrainOptions o;
  o.layers = 3;
  o.hidden = 48;
  o.inputs = 30;
  o.classes = 5;
  o.samples = 300;
  o.batch = 20;
  o.accum = 3;
  for (DType t : {DType::fp32, DType::fp16})
    for (DataMode d : {DataMode::resident, DataMode::stream}) {
      o.dtype = t;
      o.data = d;
      const MemoryPlan m = held(o);
      const MemoryPlan p = plan_memory(o);
      EXPECT_EQ(m.bytes, p.bytes);
      // P = 30*48+48 + 2*(48*48+48) + 48*5+5 = 1488 + 4704 + 245
      EXPECT_EQ(parameter_count(o), 6437u);
      EXPECT_EQ(m[Category::activations], 2u * dtype_bytes(t) * 20 * (3 * 48 + 5));
    }
}

TEST(Memory, EachBufferIsNamed) {
  HostTrainer t(TrainOptions{});
  const auto& b = t.memory->buffers();
  ASSERT_EQ(b.size(),
            23u);  // 2 layers x (w, b, 2 grads, 4 adam) + 2 data + 4 activations + metrics
  EXPECT_EQ(b[0].name, "dense1.weight");
  EXPECT_EQ(b[0].bytes, 25600u);
  EXPECT_EQ(b[16].name, "dataset.inputs");
}
