// ooms[] from Op::oom records (docs/oom.md): the recorded state, what the replay has live at the
// record, retried vs final, and the same report whether records come one at a time or in runs.
#include <gtest/gtest.h>

#include <random>

#include "events.h"
#include "gpumem/analyzer/render_json.h"

namespace gpumem::analyzer {
namespace {

using testing::Events;
using testing::make_header;

// The preload's pair: alloc_failed, then oom with the state (allocated, reserved, largest free).
void oom_pair(Events& e, int64_t t, uint64_t bytes, uint64_t allocated, uint64_t reserved,
              uint64_t largest_free, uint32_t site = 0, uint32_t tid = 7) {
  trace::Record f = Events::rec(t, trace::Op::alloc_failed, 0, bytes, allocated, 0, site);
  f.result = 2;
  f.tid = tid;
  e.add(f);
  trace::Record o = Events::rec(t + 1, trace::Op::oom, allocated, bytes, largest_free, 0, site);
  o.stream = reserved;
  o.result = 2;
  o.tid = tid;
  o.flags = trace::kFlagOomByGpumem;
  e.add(o);
}

TEST(Oom, RecordedStateLiveRowsAndTheRetry) {
  Events e;
  e.stack(3, {0x401000});
  e.alloc(10, 0x1000, 100, 0).alloc(20, 0x2000, 50, 3);
  oom_pair(e, 30, 200, 150, 400, 60, 3);
  e.free(40, 0x1000);
  e.alloc(50, 0x3000, 200, 3);  // the same thread asks the same bytes: retried
  oom_pair(e, 60, 999, 250, 400, 0);
  e.alloc(70, 0x4000, 998, 0);  // other bytes: that failure is final
  const Report r = e.analyze();
  ASSERT_EQ(r.ooms.size(), 2u);
  EXPECT_EQ(r.ooms_retried, 1u);
  EXPECT_EQ(r.ooms_final, 1u);
  const Oom& a = r.ooms[0];
  EXPECT_EQ(a.requested_bytes, 200u);
  EXPECT_EQ(a.allocated_bytes, 150u);
  EXPECT_EQ(a.reserved_bytes, 400u);
  EXPECT_EQ(a.reserved_unallocated_bytes, 250u);
  EXPECT_EQ(a.largest_free_block_bytes, 60u);
  EXPECT_EQ(a.refused_by, "gpumem");
  EXPECT_EQ(a.capacity_bytes, 16ull << 30);
  EXPECT_TRUE(a.retried);
  EXPECT_EQ(a.retry_t_ns.value_or(-1), 50);
  EXPECT_EQ(a.freed_before_retry_bytes, 100u);
  EXPECT_EQ(a.live_bytes, 150u);
  EXPECT_EQ(a.grouped_by, "site");
  ASSERT_EQ(a.live.size(), 2u);
  EXPECT_EQ(a.live[0].site, 0u);
  EXPECT_EQ(a.live[0].bytes, 100u);
  EXPECT_EQ(a.live[1].site, 3u);
  EXPECT_EQ(a.live[1].bytes, 50u);
  ASSERT_EQ(a.by_module.size(), 2u);  // site 0 has no stack; site 3's address has no symbol
  EXPECT_EQ(a.by_module[0].module, "[no stack recorded]");
  EXPECT_EQ(a.by_module[1].module, "[unknown module]");
  const Oom& b = r.ooms[1];
  EXPECT_FALSE(b.retried);
  EXPECT_FALSE(b.retry_t_ns.has_value());
  EXPECT_EQ(b.freed_before_retry_bytes, 0u);
  EXPECT_EQ(b.live_bytes, 250u);
}

TEST(Oom, AFailedRetryAndTheEndOfTheTraceAreFinal) {
  Events e;
  e.alloc(10, 0x1000, 100);
  oom_pair(e, 20, 500, 100, 100, 0);
  oom_pair(e, 30, 500, 100, 100, 0);  // its retry failed too
  const Report r = e.analyze();
  ASSERT_EQ(r.ooms.size(), 2u);
  EXPECT_EQ(r.ooms_final, 2u);
  EXPECT_EQ(r.ooms_retried, 0u);
  EXPECT_EQ(r.ooms[0].refused_by, "gpumem");
  EXPECT_EQ(r.ooms[0].grouped_by, "size_class");
}

TEST(Oom, AnotherThreadsAllocationDoesNotResolveIt) {
  Events e;
  oom_pair(e, 10, 64, 0, 0, 0, 0, 7);
  trace::Record other = Events::rec(20, trace::Op::alloc, 0x1000, 64, 0, 0);
  other.tid = 8;  // the same bytes, another thread: not the retry
  e.add(other);
  const Report r = e.analyze();
  ASSERT_EQ(r.ooms.size(), 1u);
  EXPECT_FALSE(r.ooms[0].retried);
  EXPECT_EQ(r.ooms_final, 1u);
}

// Runs of records (the fast path) and one record at a time give the same report, ooms[] included:
// a pending failure keeps the runs on the general path until its thread allocates again.
TEST(Oom, RunsGiveTheReportOfOneRecordAtATime) {
  for (uint32_t seed = 1; seed <= 10; ++seed) {
    std::mt19937_64 rng(seed);
    auto pick = [&](uint64_t below) { return rng() % below; };
    Events e;
    int64_t t = 0;
    for (int i = 0; i < 4000; ++i) {
      t += 1 + static_cast<int64_t>(pick(100));
      const uint64_t address = 0x100000 + pick(64) * 0x1000;
      const uint64_t roll = pick(100);
      if (roll < 48) {
        e.alloc(t, address, 1 + pick(4096));
      } else if (roll < 96) {
        e.free(t, address);
      } else {
        const uint64_t bytes = 1 + pick(1 << 20);
        oom_pair(e, t, bytes, pick(1 << 20), pick(1 << 21), pick(4096));
        t += 2;
        if (pick(2) == 0) e.alloc(t, 0x900000 + pick(64) * 0x1000, bytes);  // the retry
      }
    }
    const Report one = e.analyze();
    ASSERT_GT(one.ooms_retried, 0u) << "seed " << seed;
    ASSERT_GT(one.ooms_final, 0u) << "seed " << seed;
    Analysis a;
    a.begin_trace(make_header(), "test.trace");
    const std::vector<trace::Record>& recs = e.records();
    for (size_t i = 0; i < recs.size();) {
      trace::Batch b;
      b.records = recs.data() + i;
      b.count = std::min<size_t>(recs.size() - i, 1 + rng() % 300);
      a.feed(b);
      i += b.count;
    }
    a.end_trace(trace::ReadStats{});
    ASSERT_EQ(render_json(a.finish()), render_json(one)) << "seed " << seed;
  }
}

}  // namespace
}  // namespace gpumem::analyzer
