// Running a child program for the reliability tests: a chosen environment (ours minus every
// GPUMEM_*/SIMCUDA_*/LD_* variable, plus simcuda first and, when asked, the preload), captured
// stdout and stderr, exit status or signal.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

extern char** environ;

namespace reliability {

struct Outcome {
  int status = -1;  // exit status, or 128 + signal number
  bool signaled = false;
  std::string out, err;
};

inline std::vector<std::string> child_environment(bool preload, const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv = *e;
    if (kv.rfind("GPUMEM_", 0) == 0 || kv.rfind("SIMCUDA_", 0) == 0 || kv.rfind("LD_PRELOAD=", 0) == 0 ||
        kv.rfind("LD_LIBRARY_PATH=", 0) == 0)
      continue;
    env.push_back(kv);
  }
  env.push_back(std::string("LD_LIBRARY_PATH=") + GPUMEM_SIMCUDA_DIR);
  if (preload) env.push_back(std::string("LD_PRELOAD=") + GPUMEM_PRELOAD_PATH);
  for (const auto& kv : extra) env.push_back(kv);
  return env;
}

// closed: the child starts with no fd 2, as under a daemon that closed it.
enum class Stderr { to_file, closed };

// Starts argv with env; stdout/stderr go to the files (or /dev/null when empty). Returns the pid,
// or -1 when it could not start.
inline pid_t start(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   const std::string& out_file = "", const std::string& err_file = "",
                   Stderr err_mode = Stderr::to_file) {
  std::vector<char*> a, e;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  for (const auto& s : env) e.push_back(const_cast<char*>(s.c_str()));
  e.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_file.empty() ? "/dev/null" : out_file.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (err_mode == Stderr::closed)
    posix_spawn_file_actions_addclose(&fa, 2);
  else
    posix_spawn_file_actions_addopen(&fa, 2, err_file.empty() ? "/dev/null" : err_file.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  if (posix_spawn(&pid, a[0], &fa, nullptr, a.data(), e.data()) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

inline std::string slurp(const std::string& path) {
  std::string s;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return s;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return s;
}

inline Outcome wait_for(pid_t pid, const std::string& out_file, const std::string& err_file) {
  Outcome o;
  int st = 0;
  if (pid <= 0 || waitpid(pid, &st, 0) != pid) return o;
  o.signaled = WIFSIGNALED(st);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  o.out = slurp(out_file);
  o.err = slurp(err_file);
  return o;
}

// Runs to completion; `scratch` is a folder for the captured output.
inline Outcome run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   const std::string& scratch) {
  const std::string out = scratch + "/stdout", err = scratch + "/stderr";
  return wait_for(start(argv, env, out, err), out, err);
}

}  // namespace reliability
