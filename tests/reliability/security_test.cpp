// Security, end to end through the preload: the trace is created 0600 whatever the umask, a
// symlink planted at the trace path is never followed (the trace goes beside it, the target is
// untouched), and the preload reads its settings with secure_getenv only.
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <sstream>

#include "process.h"
#include "support.h"

namespace reliability {
namespace {

using Security = ScratchTest;

TEST_F(Security, TraceIsCreated0600EvenUnderUmask0) {
  const std::string trace = dir_ + "/t.trace";
  const mode_t old = ::umask(0);
  const Outcome o = run({RELIABILITY_WORKLOAD, "one"}, child_environment(true, {"GPUMEM_TRACE=" + trace}), dir_);
  ::umask(old);
  ASSERT_EQ(o.status, 0) << o.err;
  struct stat st;
  ASSERT_EQ(::stat(trace.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(load_trace(trace).records.size() >= 2, true);
}

TEST_F(Security, SymlinkPlantedAtTracePathIsNeverFollowed) {
  const std::string target = dir_ + "/victim", trace = dir_ + "/t.trace";
  { std::ofstream(target) << "precious"; }
  ASSERT_EQ(::chmod(target.c_str(), 0644), 0);
  ASSERT_EQ(::symlink(target.c_str(), trace.c_str()), 0);
  const std::string dangling = dir_ + "/d.trace", nowhere = dir_ + "/created-through-link";
  ASSERT_EQ(::symlink(nowhere.c_str(), dangling.c_str()), 0);

  for (const std::string& path : {trace, dangling}) {
    const Outcome o = run({RELIABILITY_WORKLOAD, "one"}, child_environment(true, {"GPUMEM_TRACE=" + path}), dir_);
    ASSERT_EQ(o.status, 0) << o.err;
  }
  EXPECT_EQ(slurp(target), "precious");
  struct stat st;
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u) << "the target's mode was changed";
  EXPECT_NE(::lstat(nowhere.c_str(), &st), 0) << "a file was created through the dangling link";
  // Both links are still links; the traces went elsewhere (or nowhere), never through them.
  ASSERT_EQ(::lstat(trace.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ASSERT_EQ(::lstat(dangling.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  // Where a trace was written beside the link, it is a regular 0600 file.
  for (const std::string& beside : {trace + ".1", dangling + ".1"}) {
    if (::lstat(beside.c_str(), &st) != 0) continue;
    EXPECT_TRUE(S_ISREG(st.st_mode)) << beside;
    EXPECT_EQ(st.st_mode & 07777, 0600u) << beside;
  }
}

// A setuid program must not be steered by its caller's environment: every environment read in
// the preload library goes through secure_getenv (checked in the sources, since a setuid test
// needs root).
TEST(SecuritySource, PreloadReadsEnvironmentOnlyThroughSecureGetenv) {
  // A call of plain getenv: "getenv(" not preceded by an identifier character (secure_getenv).
  auto calls_plain_getenv = [](const std::string& code) {
    for (size_t at = code.find("getenv("); at != std::string::npos; at = code.find("getenv(", at + 1)) {
      const char before = at == 0 ? ' ' : code[at - 1];
      if (!(std::isalnum(static_cast<unsigned char>(before)) || before == '_')) return true;
    }
    return false;
  };
  int files = 0;
  for (const char* rel : GPUMEM_PRELOAD_SOURCES) {
    std::ifstream in(rel);
    ASSERT_TRUE(in) << rel;
    ++files;
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      const auto comment = line.find("//");
      const std::string code = comment == std::string::npos ? line : line.substr(0, comment);
      EXPECT_FALSE(calls_plain_getenv(code)) << rel << ":" << n << ": " << line;
    }
  }
  EXPECT_GT(files, 5);
}

}  // namespace
}  // namespace reliability
