// Runs a shell command for an end-to-end test and keeps what it printed (stdout and stderr
// together) and its exit status: the one helper the CLI-level tests share.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace gpumem::test {

struct Output {
  int status;       // exit status, or -1 when the command did not exit normally
  std::string out;  // stdout and stderr, interleaved as printed
};

inline Output sh(const std::string& cmd) {
  Output o{-1, {}};
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return o;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) o.out.append(buf, n);
  const int st = ::pclose(p);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}

}  // namespace gpumem::test
