// simcuda across fork and exit, as the real driver survives them: runs process_model (path in
// SIMCUDA_PROCESS_MODEL) with a deadline and checks how each run ends.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace {

struct Outcome {
  bool timed_out = false;
  int status = 0;  // waitpid status
};

// This environment, with ThreadSanitizer's pause at exit (1 s by default, in every forked child
// too) cut to 50 ms; other builds ignore TSAN_OPTIONS.
std::vector<std::string> model_environment() {
  std::vector<std::string> env;
  std::string tsan = "TSAN_OPTIONS=";
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).starts_with("TSAN_OPTIONS="))
      tsan = std::string(*e) + ":";
    else
      env.emplace_back(*e);
  }
  env.push_back(tsan + "atexit_sleep_ms=50");
  return env;
}

// Runs process_model with `args`, killing it after `seconds`.
Outcome run_model(std::vector<std::string> args, int seconds) {
  args.insert(args.begin(), SIMCUDA_PROCESS_MODEL);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = model_environment();
  std::vector<char*> env;
  for (auto& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);
  pid_t pid = 0;
  Outcome out;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), env.data()) != 0) {
    ADD_FAILURE() << "cannot start " << argv[0];
    return out;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (waitpid(pid, &out.status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &out.status, 0);
      out.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return out;
}

std::string describe(const Outcome& o) {
  if (o.timed_out) return "hung (killed at the deadline)";
  if (WIFSIGNALED(o.status)) return "killed by signal " + std::to_string(WTERMSIG(o.status));
  return "exit status " + std::to_string(WEXITSTATUS(o.status));
}

// 50 forks while 4 threads allocate and free: a fork taken while a thread holds simcuda's lock
// must leave the child a usable, consistent device (each child allocates, frees and exits 0).
TEST(ProcessModel, ForkWhileThreadsAllocate) {
  Outcome o = run_model({"fork", "50"}, 120);
  EXPECT_TRUE(!o.timed_out && WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) << describe(o);
}

// The same through the driver API alone: cuInit comes before any runtime call, so the driver's
// own fork handlers (registered at cuInit) are the ones at work.
TEST(ProcessModel, DriverForkWhileThreadsAllocate) {
  Outcome o = run_model({"driver-fork", "50"}, 120);
  EXPECT_TRUE(!o.timed_out && WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0) << describe(o);
}

// exit() from one thread while 4 others are inside simcuda: the process ends with exit's status,
// never a crash in simcuda's destroyed state. 20 runs, each with a different status.
TEST(ProcessModel, ExitFromThreadWhileOthersAllocate) {
  for (int run = 0; run < 20; ++run) {
    int code = 20 + run;
    Outcome o = run_model({"thread-exit", std::to_string(code)}, 30);
    EXPECT_TRUE(!o.timed_out && WIFEXITED(o.status) && WEXITSTATUS(o.status) == code)
        << "run " << run << ": expected exit status " << code << ", got " << describe(o);
  }
}

}  // namespace
