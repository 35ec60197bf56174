// Hostile input for the report renderers: names that are not UTF-8 or hold markup, times that go
// anywhere, counts near 2^64, one timeline point. Every output must still be whole.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "events.h"
#include "gpumem/analyzer/render_json.h"
#include "gpumem/analyzer/render_text.h"
#include "render_html.h"
#include "render_perfetto.h"

namespace gpumem::analyzer {
namespace {

using testing::Events;
using testing::make_header;

void render_all(const Report& r) {
  EXPECT_TRUE(nlohmann::json::accept(render_json(r)));
  EXPECT_TRUE(nlohmann::json::accept(render_perfetto(r)));
  EXPECT_FALSE(render_html(r).empty());
  EXPECT_FALSE(render_text(r).empty());
}

// --points 1 over a span of 2^63 ns or more (a corrupt trace's times): the box width doubled
// until it wrapped to 0 and the next division killed the report (SIGFPE).
TEST(Hostile, OnePointOverTheWidestSpan) {
  Events e;
  trace::Record first = Events::rec(0, trace::Op::alloc, 0xA000, 100, 0, 0);
  first.t_ns = 0;  // 1 s before the clock base
  trace::Record last = first;
  last.address = 0xB000;
  last.t_ns = testing::kBase + static_cast<uint64_t>(INT64_MAX);
  e.add(first).add(last);
  AnalysisOptions o;
  o.max_points = 1;
  Report r = e.analyze(make_header(), o);
  ASSERT_EQ(r.devices.size(), 1u);
  const Timeline& t = r.devices[0].timeline;
  ASSERT_EQ(t.t_ns.size(), 1u);
  EXPECT_EQ(t.t_ns[0], INT64_MAX);
  EXPECT_EQ(t.allocated[0], 200u);
  render_all(r);
}

}  // namespace
}  // namespace gpumem::analyzer
