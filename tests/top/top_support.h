// What the gpumem top tests share: waiting for a condition of a live screen or file, reading a
// file whole, and a plain-lines `gpumem top` running in the background.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "shell.h"

namespace gpumem::test::top {

// True as soon as `done` is; false after 90 s (a loaded sanitizer run is slow).
inline bool wait_for(const std::function<bool()>& done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Starts `CLI top --interval INTERVAL PATH` (0.05 s unless given) in the background with its plain
// lines (no terminal) going to `out`; returns its pid, or -1 when it did not start.
inline pid_t start_plain_top(const std::string& cli, const std::string& path,
                             const std::string& out, const std::string& pid_file,
                             const std::string& interval = "0.05") {
  if (sh(cli + " top --interval " + interval + " '" + path + "' >'" + out + "' 2>&1 & echo $! >'" +
         pid_file + "'")
          .status != 0)
    return -1;
  const std::string pid = read_file(pid_file);
  return pid.empty() ? -1 : static_cast<pid_t>(std::stoi(pid));
}

// Ends a top started above and waits until it is gone.
inline void stop_top(pid_t top) {
  ::kill(top, SIGTERM);
  wait_for([&] { return ::kill(top, 0) != 0; });
}

}  // namespace gpumem::test::top
