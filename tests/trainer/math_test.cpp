// The host backend's arithmetic: gradients against finite differences, accumulation against one
// big batch, and learning on the default task.
#include <gtest/gtest.h>

#include <cmath>

#include "trainer_fixture.h"

using namespace gpumem::train;

namespace {

TrainOptions small_model() {
  TrainOptions o;
  o.inputs = 6;
  o.layers = 2;
  o.hidden = 5;
  o.classes = 4;
  o.samples = 64;
  o.batch = 8;
  o.seed = 3;
  return o;
}

double loss_at(HostTrainer& t, const std::vector<float>& params) {
  t.trainer.set_parameters(params);
  t.trainer.reset_metrics();
  return t.trainer.forward_backward(0);
}

}  // namespace

TEST(Math, GradientsMatchFiniteDifferences) {
  HostTrainer t(small_model());
  std::vector<float> params = t.trainer.parameters();
  ASSERT_EQ(params.size(), parameter_count(t.options));  // 35 + 30 + 24 = 89
  ASSERT_EQ(params.size(), 89u);
  // Non-zero biases, so the bias gradients of every layer are exercised too.
  for (float& p : params) p += 0.05f;
  loss_at(t, params);
  const std::vector<float> analytic = t.trainer.optimizer_gradient();
  ASSERT_EQ(analytic.size(), params.size());
  const float h = 1e-3f;
  const double base = loss_at(t, params);
  size_t nonzero = 0, kinks = 0;
  for (size_t k = 0; k < params.size(); ++k) {
    std::vector<float> plus = params, minus = params;
    plus[k] += h;
    minus[k] -= h;
    const double up = loss_at(t, plus), down = loss_at(t, minus);
    // A ReLU switching inside [-h, h] makes the one-sided slopes disagree: no derivative there.
    if (std::fabs((up - base) - (base - down)) / h > 5e-3) {
      ++kinks;
      continue;
    }
    const double numeric = (up - down) / (2.0 * h);
    EXPECT_NEAR(analytic[k], numeric, 2e-3 + 2e-2 * std::fabs(numeric)) << "parameter " << k;
    if (std::fabs(numeric) > 1e-3) ++nonzero;
  }
  EXPECT_LE(kinks, params.size() / 10);
  EXPECT_GT(nonzero, params.size() / 2);  // the comparison is not vacuous
}

TEST(Math, Fp16GradientsApproximateFp32) {
  TrainOptions o = small_model();
  HostTrainer f32(o);
  o.dtype = DType::fp16;
  HostTrainer f16(o);
  f32.trainer.forward_backward(0);
  f16.trainer.forward_backward(0);
  const auto a = f32.trainer.optimizer_gradient();
  const auto b = f16.trainer.optimizer_gradient();  // unscaled by the loss scale
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 2e-3 + 1e-2 * std::fabs(a[k]));
}

TEST(Math, AccumulationEqualsOneBigBatch) {
  // K = 4 micro-batches of B = 8 against one batch of 32, fp32: one optimizer step each.
  TrainOptions big = small_model();
  big.batch = 32;
  TrainOptions micro = small_model();
  micro.batch = 8;
  micro.accum = 4;
  HostTrainer a(big), b(micro);
  const std::vector<float> initial = a.trainer.parameters();
  ASSERT_EQ(initial, b.trainer.parameters());

  a.trainer.forward_backward(0);
  a.trainer.accumulate_gradients(0);
  for (size_t k = 0; k < 4; ++k) {
    b.trainer.forward_backward(k * 8);
    b.trainer.accumulate_gradients(k);
  }
  const auto ga = a.trainer.optimizer_gradient(), gb = b.trainer.optimizer_gradient();
  ASSERT_EQ(ga.size(), gb.size());
  for (size_t k = 0; k < ga.size(); ++k)
    EXPECT_NEAR(ga[k], gb[k], 1e-6 + 1e-5 * std::fabs(ga[k])) << "gradient " << k;

  a.trainer.optimizer_step();
  b.trainer.optimizer_step();
  const auto pa = a.trainer.parameters(), pb = b.trainer.parameters();
  size_t moved = 0;
  for (size_t k = 0; k < pa.size(); ++k) {
    EXPECT_NEAR(pa[k], pb[k], 1e-6) << "parameter " << k;
    if (std::fabs(pa[k] - initial[k]) > 5e-4) ++moved;  // Adam's first step moves by ~lr
  }
  EXPECT_GT(moved, pa.size() / 2);
  EXPECT_EQ(a.trainer.optimizer_steps(), 1u);
  EXPECT_EQ(b.trainer.optimizer_steps(), 1u);
}

TEST(Math, AccumulationEqualsOneBigBatchOverAnEpoch) {
  TrainOptions big = small_model();
  big.batch = 16;
  TrainOptions micro = big;
  micro.batch = 4;
  micro.accum = 4;
  HostTrainer a(big), b(micro);
  const EpochResult ra = a.trainer.train_epoch(), rb = b.trainer.train_epoch();
  EXPECT_EQ(a.trainer.optimizer_steps(), 4u);  // 64 samples / 16 per step
  EXPECT_EQ(b.trainer.optimizer_steps(), 4u);
  EXPECT_EQ(ra.samples, 64u);
  EXPECT_EQ(rb.samples, 64u);
  const auto pa = a.trainer.parameters(), pb = b.trainer.parameters();
  for (size_t k = 0; k < pa.size(); ++k) EXPECT_NEAR(pa[k], pb[k], 1e-5) << "parameter " << k;
}

TEST(Math, DefaultTaskLearns) {
  TrainOptions o;  // the defaults: 2048 samples, batch 32
  HostTrainer t(o);
  const EpochResult first = t.trainer.train_epoch();
  EpochResult last = first;
  for (int e = 1; e < 5; ++e) last = t.trainer.train_epoch();
  EXPECT_LT(last.loss, first.loss * 0.7);
  EXPECT_GT(last.accuracy, 0.6);  // chance is 0.1
  EXPECT_GT(last.accuracy, first.accuracy);
}

TEST(Math, Fp16WithAccumulationLearns) {
  TrainOptions o;
  o.dtype = DType::fp16;
  o.batch = 16;
  o.accum = 2;
  o.data = DataMode::stream;
  HostTrainer t(o);
  const EpochResult first = t.trainer.train_epoch();
  EpochResult last = first;
  for (int e = 1; e < 5; ++e) last = t.trainer.train_epoch();
  EXPECT_LT(last.loss, first.loss * 0.7);
  EXPECT_GT(last.accuracy, 0.6);
}

TEST(Math, Fp16OverflowSkipsTheStepAndHalvesTheScale) {
  TrainOptions o = small_model();
  o.dtype = DType::fp16;
  o.loss_scale = 65536;
  HostTrainer t(o);
  std::vector<float> params = t.trainer.parameters();
  for (float& p : params) p *= 400;  // huge logits: scaled fp16 gradients overflow
  t.trainer.set_parameters(params);
  t.trainer.forward_backward(0);
  t.trainer.optimizer_step();
  EXPECT_EQ(t.trainer.skipped_steps(), 1u);
  EXPECT_EQ(t.trainer.optimizer_steps(), 0u);
  EXPECT_EQ(t.trainer.loss_scale(), 32768);
  EXPECT_EQ(t.trainer.parameters(), params);  // untouched
}
