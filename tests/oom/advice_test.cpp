// The advice of cli/oom_explain.cpp on hand-made failures: each setting appears exactly when its
// numbers hold, with those numbers in its reason, and not otherwise (docs/oom.md, "Advice").
#include <gtest/gtest.h>

#include "oom_explain.h"
#include "units.h"

namespace {

using gpumem::analyzer::Oom;
using gpumem::analyzer::OomAdvice;
using gpumem::analyzer::OomFit;
using gpumem::analyzer::OomModuleShare;
using gpumem::cli::oom_advice;

OomFit fit(const char* policy, uint64_t smallest) {
  OomFit f;
  f.policy = policy;
  f.fits_at_capacity = true;
  f.smallest_limit_bytes = smallest;
  f.safe_limit_bytes = smallest;
  return f;
}

std::vector<std::string> settings(const std::vector<OomAdvice>& advice) {
  std::vector<std::string> out;
  for (const OomAdvice& a : advice) out.push_back(a.scope + ": " + a.setting);
  return out;
}

// PyTorch's caching allocator (served by gpumem's pool through the pluggable allocator): more
// cached than asked, no block that large.
Oom fragmented_torch() {
  Oom o;
  o.api = "torch";
  o.capacity_bytes = 80 * kGiB;
  o.limit_bytes = 0;
  o.requested_bytes = 512 * kMiB;
  o.allocated_bytes = 60 * kGiB;
  o.reserved_bytes = 61 * kGiB;
  o.reserved_unallocated_bytes = 1 * kGiB;
  o.largest_free_block_bytes = 300 * kMiB;
  o.by_module = {OomModuleShare{"libc10_cuda.so", 10, 60 * kGiB}};
  return o;
}

TEST(Advice, PytorchExpandableSegmentsWhenTheCacheIsFragmented) {
  const auto advice = oom_advice(fragmented_torch(), "growth");
  ASSERT_EQ(settings(advice),
            std::vector<std::string>{"pytorch: PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"});
  EXPECT_EQ(advice[0].reason,
            "1.00 GiB were reserved but unallocated, more than the 512.00 MiB asked for, but the "
            "largest free block was 300.00 MiB: the cache is fragmented, and expandable segments "
            "grow one segment instead of needing one free block that large");
}

TEST(Advice, NoPytorchAdviceWithoutFragmentation) {
  Oom o = fragmented_torch();
  o.largest_free_block_bytes = 512 * kMiB;  // a block that large was free: not fragmentation
  EXPECT_TRUE(oom_advice(o, "growth").empty());
  o = fragmented_torch();
  o.reserved_unallocated_bytes = 511 * kMiB;  // less cached than asked: fragmentation or not,
  o.reserved_bytes = o.allocated_bytes + o.reserved_unallocated_bytes;  // it would not fit
  EXPECT_TRUE(oom_advice(o, "growth").empty());
  o = fragmented_torch();
  o.api = "cudaMalloc";
  o.by_module = {OomModuleShare{"train", 10, 60 * kGiB}};  // not PyTorch's
  EXPECT_TRUE(oom_advice(o, "growth").empty());
}

Oom preallocated(const char* framework_module) {
  Oom o;
  o.api = "cuMemAlloc_v2";
  o.capacity_bytes = 80 * kGiB;
  o.requested_bytes = 2 * kGiB;
  o.allocated_bytes = 79 * kGiB;
  o.reserved_bytes = 79 * kGiB;
  o.frames = {"cudnnCreate (libcudnn.so.9+0x1f00)", "main (python3.11+0x100)"};
  o.by_module = {OomModuleShare{framework_module, 1, 76 * kGiB},
                 OomModuleShare{"libcudnn.so.9", 3, 3 * kGiB}};
  return o;
}

TEST(Advice, TensorflowGrowthWhenItsReservationStarvesAnotherLibrary) {
  const auto advice = oom_advice(preallocated("libtensorflow_framework.so.2"), "none");
  ASSERT_EQ(settings(advice),
            (std::vector<std::string>{"tensorflow: TF_FORCE_GPU_ALLOW_GROWTH=true",
                                      "tensorflow: TF_GPU_ALLOCATOR=cuda_malloc_async"}));
  EXPECT_EQ(advice[0].reason,
            "TensorFlow's allocator held 76.00 GiB of the 79.00 GiB allocated when libcudnn.so.9 "
            "asked for 2.00 GiB: its up-front reservation took the memory another library needed");
}

TEST(Advice, JaxPreallocateAndFractionWithTheirNumbers) {
  const auto advice = oom_advice(preallocated("xla_extension.so"), "none");
  ASSERT_EQ(settings(advice),
            (std::vector<std::string>{"jax: XLA_PYTHON_CLIENT_PREALLOCATE=false",
                                      "jax: XLA_PYTHON_CLIENT_MEM_FRACTION=0.93"}));
  // (80 - 3 - 2) / 80 = 0.9375: rounded down to two digits, so JAX takes no more than is left.
  EXPECT_EQ(advice[1].reason,
            "the other libraries held 3.00 GiB and asked for 2.00 GiB more; of the device's "
            "80.00 GiB, 75.00 GiB are left for JAX");
}

TEST(Advice, NoFrameworkAdviceWhenTheFrameworkItselfFailed) {
  Oom o = preallocated("libtensorflow_framework.so.2");
  o.frames = {"tensorflow::BFCAllocator::Extend (libtensorflow_framework.so.2+0x10)"};
  EXPECT_TRUE(oom_advice(o, "none").empty());
}

TEST(Advice, GpumemPolicyThatFitsTheCap) {
  Oom o;
  o.capacity_bytes = 16 * kGiB;
  o.limit_bytes = 40 * kMiB;
  o.requested_bytes = 8 * kMiB;
  o.would_fit = {fit("none", 40 * kMiB), fit("growth", 60 * kMiB), fit("fixed", 48 * kMiB)};
  const auto advice = oom_advice(o, "growth");
  ASSERT_EQ(settings(advice),
            std::vector<std::string>{"gpumem: GPUMEM_POOL=none GPUMEM_LIMIT=40MiB"});
  EXPECT_EQ(advice[0].reason,
            "replayed up to this request, pool none needs a cap of 40.00 MiB (41943040 B), within "
            "the cap of 40.00 MiB; pool growth needs 60.00 MiB (62914560 B)");
  // The recorded policy fitting already (another thread took the room, say): no policy advice.
  o.would_fit[1] = fit("growth", 40 * kMiB);
  EXPECT_TRUE(oom_advice(o, "growth").empty());
}

// Issue 28: under a fixed pool with a cap, an unpooled kind is refused beside the pool.
TEST(Advice, FixedPoolUnderACapExplainsTheRefusalOfAnUnpooledKind) {
  Oom o;
  o.api = "cudaMallocManaged";
  o.refused_by = "gpumem";
  o.pooled = false;
  o.capacity_bytes = 256 * kMiB;
  o.limit_bytes = 64 * kMiB;
  o.requested_bytes = 1 * kMiB;
  o.reserved_bytes = 64 * kMiB;
  const auto advice = oom_advice(o, "fixed");
  ASSERT_EQ(settings(advice),
            std::vector<std::string>{"gpumem: GPUMEM_POOL=growth GPUMEM_LIMIT=64MiB"});
  EXPECT_EQ(advice[0].reason,
            "cudaMallocManaged is not served by the fixed pool, and the process held 64.00 MiB of "
            "the 64.00 MiB cap, the pool's reservation included: the cap refused its 1.00 MiB; a "
            "growth pool takes only what is used (or set GPUMEM_POOL_SIZE under the cap to leave "
            "room)");
  // Not for a pooled request, a device refusal or another pool.
  o.pooled = true;
  EXPECT_TRUE(oom_advice(o, "fixed").empty());
  o.pooled = false;
  o.refused_by = "device";
  EXPECT_TRUE(oom_advice(o, "fixed").empty());
  o.refused_by = "gpumem";
  EXPECT_TRUE(oom_advice(o, "growth").empty());
}

TEST(Advice, GpumemCapWhenNoPolicyFitsTheCap) {
  Oom o;
  o.capacity_bytes = 16 * kGiB;
  o.limit_bytes = 48 * kMiB;
  o.would_fit = {fit("none", 56 * kMiB + 512), fit("growth", 68 * kMiB)};
  const auto advice = oom_advice(o, "none");
  ASSERT_EQ(settings(advice),
            std::vector<std::string>{"gpumem: GPUMEM_POOL=none GPUMEM_LIMIT=58720768"});
}

}  // namespace
