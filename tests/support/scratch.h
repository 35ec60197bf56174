// A scratch folder for one test: made under /tmp, removed at the end unless the test failed (then
// its path is printed, so the traces can be looked at).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace gpumem::test {

class ScratchDir {
 public:
  explicit ScratchDir(const char* name = "gpumem-test") {
    std::string tmpl = std::string("/tmp/") + name + "-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    if (path_.empty()) return;
    if (::testing::Test::HasFailure())
      std::fprintf(stderr, "files kept in %s\n", path_.c_str());
    else
      std::system(("rm -rf '" + path_ + "'").c_str());
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& file) const { return path_ + "/" + file; }

 private:
  std::string path_;
};

}  // namespace gpumem::test
