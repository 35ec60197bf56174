// CUPTI activity records (CUDA 13 layouts) → gpumem trace records, and back through the reader.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "convert.h"
#include "cupti_api.h"
#include "gpumem/trace/reader.h"
#include "gpumem/trace/writer.h"
#include "trace_setup.h"

namespace {

using gpumem::cupti::ConvertContext;
using gpumem::trace::Api;
using gpumem::trace::MemKind;
using gpumem::trace::Op;
using gpumem::trace::Record;

CUpti_ActivityMemory4 memory(CUpti_ActivityMemoryOperationType op, CUpti_ActivityMemoryKind kind,
                             uint64_t address, uint64_t bytes) {
  CUpti_ActivityMemory4 m;
  std::memset(&m, 0, sizeof m);
  m.kind = CUPTI_ACTIVITY_KIND_MEMORY2;
  m.memoryOperationType = op;
  m.memoryKind = kind;
  m.correlationId = 77;
  m.address = address;
  m.bytes = bytes;
  m.timestamp = 1000;
  m.deviceId = 0;
  m.contextId = 1;
  m.streamId = CUPTI_INVALID_STREAM_ID;
  return m;
}

CUpti_ActivityMemoryPool3 pool(CUpti_ActivityMemoryPoolOperationType op) {
  CUpti_ActivityMemoryPool3 p;
  std::memset(&p, 0, sizeof p);
  p.kind = CUPTI_ACTIVITY_KIND_MEMORY_POOL;
  p.memoryPoolOperationType = op;
  p.memoryPoolType = CUPTI_ACTIVITY_MEMORY_POOL_TYPE_LOCAL;
  p.deviceId = 1;
  p.address = 0x7f0000000000;
  p.size = 32 << 20;
  p.minBytesToKeep = 4 << 20;
  p.timestamp = 5000;
  return p;
}

TEST(CuptiConvert, DeviceAllocationBecomesAlloc) {
  auto m = memory(CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_ALLOCATION,
                  CUPTI_ACTIVITY_MEMORY_KIND_DEVICE, 0x7f0000200000, 1 << 20);
  ConvertContext ctx;
  ctx.clock_offset_ns = 250;
  Record r;
  ASSERT_TRUE(gpumem::cupti::convert_memory(m, ctx, &r));
  EXPECT_EQ(r.op, static_cast<uint16_t>(Op::alloc));
  EXPECT_EQ(r.api, static_cast<uint16_t>(Api::cupti));
  EXPECT_EQ(r.address, 0x7f0000200000u);
  EXPECT_EQ(r.bytes, 1u << 20);
  EXPECT_EQ(r.t_ns, 1250u);
  EXPECT_EQ(r.stream, 0u);  // CUPTI_INVALID_STREAM_ID: not stream-ordered
  EXPECT_EQ(r.aux, 77u);    // correlation id
  EXPECT_EQ(r.device, 0);
  EXPECT_EQ(r.flags, static_cast<uint16_t>(MemKind::device));
  EXPECT_EQ(r.result, 0);
  EXPECT_EQ(r.commit, 0u);  // the writer commits
}

TEST(CuptiConvert, ReleaseBecomesFreeWithItsSize) {
  auto m = memory(CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_RELEASE, CUPTI_ACTIVITY_MEMORY_KIND_DEVICE,
                  0x1000, 4096);
  Record r;
  ASSERT_TRUE(gpumem::cupti::convert_memory(m, ConvertContext{}, &r));
  EXPECT_EQ(r.op, static_cast<uint16_t>(Op::free));
  EXPECT_EQ(r.bytes, 4096u);
  EXPECT_EQ(r.t_ns, 1000u);
}

TEST(CuptiConvert, AsyncAllocationKeepsStreamAndFlag) {
  auto m = memory(CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_ALLOCATION,
                  CUPTI_ACTIVITY_MEMORY_KIND_DEVICE, 0x2000, 512);
  m.isAsync = 1;
  m.streamId = 13;
  m.deviceId = 3;
  Record r;
  ASSERT_TRUE(gpumem::cupti::convert_memory(m, ConvertContext{}, &r));
  EXPECT_EQ(r.stream, 13u);
  EXPECT_EQ(r.device, 3);
  EXPECT_EQ(r.flags, static_cast<uint16_t>(MemKind::device) | gpumem::trace::kFlagAsync);
}

TEST(CuptiConvert, MemoryKinds) {
  struct Case {
    CUpti_ActivityMemoryKind cupti;
    bool kept;
    MemKind kind;
  };
  const Case cases[] = {
      {CUPTI_ACTIVITY_MEMORY_KIND_DEVICE, true, MemKind::device},
      {CUPTI_ACTIVITY_MEMORY_KIND_ARRAY, true, MemKind::device},
      {CUPTI_ACTIVITY_MEMORY_KIND_MANAGED, true, MemKind::managed},
      {CUPTI_ACTIVITY_MEMORY_KIND_PINNED, true, MemKind::pinned_host},
      {CUPTI_ACTIVITY_MEMORY_KIND_PAGEABLE, false, MemKind::device},
      {CUPTI_ACTIVITY_MEMORY_KIND_DEVICE_STATIC, false, MemKind::device},
      {CUPTI_ACTIVITY_MEMORY_KIND_MANAGED_STATIC, false, MemKind::device},
      {CUPTI_ACTIVITY_MEMORY_KIND_UNKNOWN, false, MemKind::device},
  };
  for (const Case& c : cases) {
    auto m = memory(CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_ALLOCATION, c.cupti, 0x3000, 64);
    Record r{};
    EXPECT_EQ(gpumem::cupti::convert_memory(m, ConvertContext{}, &r), c.kept) << c.cupti;
    if (c.kept) {
      EXPECT_EQ(gpumem::trace::mem_kind(r), c.kind) << c.cupti;
    }
  }
}

TEST(CuptiConvert, InvalidOperationAndOutOfRangeDevice) {
  auto m = memory(CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_INVALID, CUPTI_ACTIVITY_MEMORY_KIND_DEVICE,
                  0x3000, 64);
  Record r{};
  EXPECT_FALSE(gpumem::cupti::convert_memory(m, ConvertContext{}, &r));
  m.memoryOperationType = CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_ALLOCATION;
  m.deviceId = gpumem::trace::kMaxDevices;
  ASSERT_TRUE(gpumem::cupti::convert_memory(m, ConvertContext{}, &r));
  EXPECT_EQ(r.device, -1);
}

TEST(CuptiConvert, PoolRecords) {
  ConvertContext ctx;
  ctx.pool_marks.created = 5;
  ctx.pool_marks.destroyed = 6;
  Record r;
  ASSERT_TRUE(gpumem::cupti::convert_memory_pool(
      pool(CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_CREATED), ctx, &r));
  EXPECT_EQ(r.op, static_cast<uint16_t>(Op::mark));
  EXPECT_EQ(r.aux, 5u);
  EXPECT_EQ(r.address, 0x7f0000000000u);
  EXPECT_EQ(r.bytes, 32u << 20);
  EXPECT_EQ(r.device, 1);
  EXPECT_EQ(r.t_ns, 5000u);
  EXPECT_EQ(r.api, static_cast<uint16_t>(Api::cupti));

  ASSERT_TRUE(gpumem::cupti::convert_memory_pool(
      pool(CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_DESTROYED), ctx, &r));
  EXPECT_EQ(r.op, static_cast<uint16_t>(Op::mark));
  EXPECT_EQ(r.aux, 6u);

  ASSERT_TRUE(gpumem::cupti::convert_memory_pool(
      pool(CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_TRIMMED), ctx, &r));
  EXPECT_EQ(r.op, static_cast<uint16_t>(Op::trim));
  EXPECT_EQ(r.bytes, 4u << 20);
  EXPECT_EQ(r.aux, 32u << 20);

  auto managed = pool(CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_CREATED);
  managed.isManagedPool = 1;
  ASSERT_TRUE(gpumem::cupti::convert_memory_pool(managed, ctx, &r));
  EXPECT_EQ(gpumem::trace::mem_kind(r), MemKind::managed);

  EXPECT_FALSE(gpumem::cupti::convert_memory_pool(
      pool(CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_INVALID), ctx, &r));
}

TEST(CuptiConvert, DispatchOnKind) {
  auto m = memory(CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_ALLOCATION,
                  CUPTI_ACTIVITY_MEMORY_KIND_DEVICE, 0x4000, 8);
  auto p = pool(CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_TRIMMED);
  Record r;
  ASSERT_TRUE(
      gpumem::cupti::convert_activity(reinterpret_cast<CUpti_Activity*>(&m), ConvertContext{}, &r));
  EXPECT_EQ(r.op, static_cast<uint16_t>(Op::alloc));
  ASSERT_TRUE(
      gpumem::cupti::convert_activity(reinterpret_cast<CUpti_Activity*>(&p), ConvertContext{}, &r));
  EXPECT_EQ(r.op, static_cast<uint16_t>(Op::trim));
  m.kind = CUPTI_ACTIVITY_KIND_MEMCPY;
  EXPECT_FALSE(
      gpumem::cupti::convert_activity(reinterpret_cast<CUpti_Activity*>(&m), ConvertContext{}, &r));
  EXPECT_FALSE(gpumem::cupti::convert_activity(nullptr, ConvertContext{}, &r));
}

// The layouts this code was written against (CUDA 13.0, CUPTI API 130001).
TEST(CuptiConvert, RecordLayouts) {
  EXPECT_EQ(sizeof(CUpti_ActivityMemory4), 128u);
  EXPECT_EQ(offsetof(CUpti_ActivityMemory4, source), 120u);
  EXPECT_EQ(sizeof(CUpti_ActivityMemoryPool3), 80u);
}

// Converted records written with the real trace writer and read back with the reader.
TEST(CuptiConvert, RoundTripThroughTheTrace) {
  char path[] = "/tmp/gpumem-cupti-test-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  unlink(path);  // a unique name; the writer creates the file itself (never opens an existing one)

  auto* header = new gpumem::trace::Header{};
  gpumem::cupti::fill_header(header, -1, "gpumem-%p.trace", "/x/libcupti.so.13");
  gpumem::TraceWriter writer;
  char err[512];
  ASSERT_TRUE(writer.open(path, *header, err, sizeof err)) << err;
  delete header;
  ConvertContext ctx;
  ctx.pool_marks.created = writer.intern_string(gpumem::cupti::kPoolCreatedText);
  ctx.pool_marks.destroyed = writer.intern_string(gpumem::cupti::kPoolDestroyedText);

  std::vector<Record> in;
  Record r;
  uint64_t t = 100;
  for (uint64_t i = 0; i < 3; ++i) {
    auto a = memory(CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_ALLOCATION,
                    CUPTI_ACTIVITY_MEMORY_KIND_DEVICE, 0x10000 * (i + 1), 1000 * (i + 1));
    a.timestamp = t++;
    ASSERT_TRUE(gpumem::cupti::convert_memory(a, ctx, &r));
    writer.append(r);
  }
  auto f = memory(CUPTI_ACTIVITY_MEMORY_OPERATION_TYPE_RELEASE, CUPTI_ACTIVITY_MEMORY_KIND_DEVICE,
                  0x10000, 1000);
  f.timestamp = t++;
  ASSERT_TRUE(gpumem::cupti::convert_memory(f, ctx, &r));
  writer.append(r);
  auto p = pool(CUPTI_ACTIVITY_MEMORY_POOL_OPERATION_TYPE_CREATED);
  p.timestamp = t++;
  ASSERT_TRUE(gpumem::cupti::convert_memory_pool(p, ctx, &r));
  writer.append(r);
  writer.close();

  std::string error;
  auto reader = gpumem::trace::Reader::open(path, &error);
  ASSERT_NE(reader, nullptr) << error;
  EXPECT_NE(std::string(reader->header().config).find("GPUMEM_CAPTURE=cupti"), std::string::npos);
  EXPECT_STREQ(reader->header().pool, "none");
  int allocs = 0, frees = 0, marks = 0;
  uint64_t alloc_bytes = 0, free_bytes = 0;
  std::string created_text;
  gpumem::trace::Event ev;
  while (reader->next(&ev)) {
    auto op = static_cast<Op>(ev.rec.op);
    if (op == Op::string && ev.rec.aux == ctx.pool_marks.created) created_text = ev.payload;
    if (op == Op::string || op == Op::device_info) continue;
    EXPECT_EQ(ev.rec.api, static_cast<uint16_t>(Api::cupti));
    if (op == Op::alloc) ++allocs, alloc_bytes += ev.rec.bytes;
    if (op == Op::free) ++frees, free_bytes += ev.rec.bytes;
    if (op == Op::mark) {
      ++marks;
      EXPECT_EQ(ev.rec.aux, ctx.pool_marks.created);
      EXPECT_EQ(ev.rec.bytes, 32u << 20);
    }
  }
  EXPECT_EQ(allocs, 3);
  EXPECT_EQ(alloc_bytes, 6000u);
  EXPECT_EQ(frees, 1);
  EXPECT_EQ(free_bytes, 1000u);
  EXPECT_EQ(marks, 1);
  EXPECT_EQ(created_text, gpumem::cupti::kPoolCreatedText);
  EXPECT_EQ(reader->stats().torn, 0u);
  EXPECT_FALSE(reader->stats().truncated) << reader->stats().reason;
  unlink(path);
}

TEST(CuptiTracePath, TemplateLikeThePreload) {
  char out[256];
  ASSERT_TRUE(
      gpumem::expand_trace_template("t-%p-%h-%r-%%.trace", 42, "node1", -1, 0, out, sizeof out));
  EXPECT_STREQ(out, "t-42-node1-norank-%.trace");
  ASSERT_TRUE(gpumem::expand_trace_template("%r/%t/%x", 1, "h", 3, 1700000000ull * 1000000000ull,
                                            out, sizeof out));
  EXPECT_STREQ(out, "3/20231114-221320/%x");
  EXPECT_FALSE(gpumem::expand_trace_template("%h%h%h", 1, "0123456789", 0, 0, out, 25));
}

TEST(CuptiTracePath, RankFromEnvironment) {
  for (const char* n : {"RANK", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID", "PMI_RANK"})
    unsetenv(n);
  EXPECT_EQ(gpumem::rank_from_environment(std::getenv), -1);
  setenv("SLURM_PROCID", "7", 1);
  EXPECT_EQ(gpumem::rank_from_environment(std::getenv), 7);
  setenv("RANK", "abc", 1);  // not a number: the next variable decides
  EXPECT_EQ(gpumem::rank_from_environment(std::getenv), 7);
  setenv("RANK", "2", 1);
  EXPECT_EQ(gpumem::rank_from_environment(std::getenv), 2);
  unsetenv("RANK");
  unsetenv("SLURM_PROCID");
}

TEST(CuptiAdvice, SaysWhatToDo) {
  std::string no_driver = gpumem::cupti::unavailable_advice(CUPTI_ERROR_UNKNOWN);
  EXPECT_NE(no_driver.find("no usable NVIDIA driver"), std::string::npos);
  std::string other =
      gpumem::cupti::unavailable_advice(CUPTI_ERROR_MULTIPLE_SUBSCRIBERS_NOT_SUPPORTED);
  EXPECT_NE(other.find("another profiler already holds CUPTI"), std::string::npos);
  std::string old = gpumem::cupti::unavailable_advice(CUPTI_ERROR_NOT_INITIALIZED);
  EXPECT_NE(old.find("older than this libcupti"), std::string::npos);
}

}  // namespace
