// libgpumem_cupti.so on a machine without an NVIDIA driver: InitializeInjection must say clearly
// that CUPTI is unavailable, write no trace, and return to the program. Each case runs in a forked
// child (InitializeInjection runs once per process) whose stderr is captured through a pipe.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#ifndef GPUMEM_CUPTI_LIBRARY
#error "GPUMEM_CUPTI_LIBRARY must name libgpumem_cupti.so"
#endif

namespace {

struct Outcome {
  int exit_code = -1;    // InitializeInjection's return value (or 100+ on a loading problem)
  bool crashed = false;  // killed by a signal
  std::string err;       // everything the child wrote to stderr
};

// In a child: sets `env` (NAME=VALUE, VALUE "" unsets), loads the library, calls
// InitializeInjection `calls` times and exits with its last answer.
Outcome run_injection(const std::vector<std::pair<std::string, std::string>>& env, int calls = 1) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    for (const auto& [name, value] : env) {
      if (value.empty())
        unsetenv(name.c_str());
      else
        setenv(name.c_str(), value.c_str(), 1);
    }
    void* lib = dlopen(GPUMEM_CUPTI_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) _exit(101);
    auto init = reinterpret_cast<int (*)()>(dlsym(lib, "InitializeInjection"));
    if (init == nullptr) _exit(102);
    int r = -1;
    for (int i = 0; i < calls; ++i) r = init();
    std::exit(r);  // exit(), not _exit(): atexit handlers must not crash either
  }
  close(fds[1]);
  Outcome o;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) o.err.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  o.crashed = WIFSIGNALED(status);
  if (WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
  return o;
}

bool driver_present() {
  void* h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h != nullptr) dlclose(h);
  return h != nullptr;
}

std::string trace_path(const char* name) {
  return std::string(::testing::TempDir()) + "/gpumem-cupti-" + name + "-" +
         std::to_string(getpid()) + ".trace";
}

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(CuptiUnavailable, LibcuptiMissing) {
  std::string trace = trace_path("missing");
  Outcome o =
      run_injection({{"GPUMEM_CUPTI_LIB", "/nonexistent/libcupti.so.13"}, {"GPUMEM_TRACE", trace}});
  EXPECT_FALSE(o.crashed);
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_NE(o.err.find("gpumem-cupti: CUPTI unavailable: cannot load libcupti from "
                       "GPUMEM_CUPTI_LIB=/nonexistent/libcupti.so.13"),
            std::string::npos)
      << o.err;
  EXPECT_NE(o.err.find("the program runs on"), std::string::npos) << o.err;
  EXPECT_FALSE(exists(trace));
}

TEST(CuptiUnavailable, NotCupti) {
  Outcome o = run_injection({{"GPUMEM_CUPTI_LIB", "libc.so.6"}, {"GPUMEM_TRACE", trace_path("x")}});
  EXPECT_FALSE(o.crashed);
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_NE(o.err.find("lacks cuptiGetVersion"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("it is not CUPTI 13"), std::string::npos) << o.err;
}

// The real libcupti with no driver: cuptiSubscribe answers CUPTI_ERROR_UNKNOWN (999).
void expect_no_driver_message(const std::string& cupti_lib) {
  if (driver_present()) GTEST_SKIP() << "an NVIDIA driver is present; scripts/gpu-check covers it";
  std::string trace = trace_path("nodriver");
  Outcome o = run_injection({{"GPUMEM_CUPTI_LIB", cupti_lib}, {"GPUMEM_TRACE", trace}}, 2);
  EXPECT_FALSE(o.crashed);
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_NE(o.err.find("gpumem-cupti: CUPTI unavailable: cuptiSubscribe failed with CUPTI error "
                       "999 (CUPTI_ERROR_UNKNOWN"),
            std::string::npos)
      << o.err;
  EXPECT_NE(o.err.find("no usable NVIDIA driver or GPU here"), std::string::npos) << o.err;
  EXPECT_EQ(count(o.err, "CUPTI unavailable"), 1u) << "said once however often it is called";
  EXPECT_FALSE(exists(trace));
}

TEST(CuptiUnavailable, NoDriverExplicitLibrary) {
#ifdef GPUMEM_TOOLKIT_CUPTI
  expect_no_driver_message(GPUMEM_TOOLKIT_CUPTI);
#else
  GTEST_SKIP() << "the CUDA toolkit here has no libcupti.so.13";
#endif
}

TEST(CuptiUnavailable, NoDriverDefaultSearch) {
#ifdef GPUMEM_TOOLKIT_CUPTI
  expect_no_driver_message("");  // "" unsets GPUMEM_CUPTI_LIB: the library searches itself
#else
  GTEST_SKIP() << "the CUDA toolkit here has no libcupti.so.13";
#endif
}

TEST(CuptiUnavailable, TraceOffStartsNothing) {
  Outcome o =
      run_injection({{"GPUMEM_CUPTI_LIB", "/nonexistent/libcupti.so.13"}, {"GPUMEM_TRACE", "off"}});
  EXPECT_FALSE(o.crashed);
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.err, "");
}

}  // namespace
