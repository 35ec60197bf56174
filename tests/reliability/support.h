// Shared by the reliability tests: a scratch folder per test, the long-form switch, and a trace
// loaded through the one reader.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "gpumem/trace/reader.h"

namespace reliability {

inline bool long_form() {
  const char* v = std::getenv("GPUMEM_TEST_LONG");
  return v != nullptr && std::string(v) == "1";
}

struct LoadedTrace {
  bool opened = false;
  std::string error;
  gpumem::trace::Header header{};
  std::vector<gpumem::trace::Record> records;  // every non-blob record, in file order
  gpumem::trace::ReadStats stats;
};

inline LoadedTrace load_trace(const std::string& path) {
  LoadedTrace t;
  auto reader = gpumem::trace::Reader::open(path, &t.error);
  if (!reader) return t;
  t.opened = true;
  t.header = reader->header();
  gpumem::trace::Event ev;
  while (reader->next(&ev)) {
    const auto op = static_cast<gpumem::trace::Op>(ev.rec.op);
    if (op != gpumem::trace::Op::string && op != gpumem::trace::Op::stack) t.records.push_back(ev.rec);
  }
  t.stats = reader->stats();
  return t;
}

class ScratchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpumem-reliability-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!HasFailure()) std::system(("rm -rf '" + dir_ + "'").c_str());
    else std::fprintf(stderr, "files kept in %s\n", dir_.c_str());
  }
  std::string dir_;
};

}  // namespace reliability
