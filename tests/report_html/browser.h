// Headless Chromium for the page tests: load a local file, let its scripts run, and return the
// DOM as it is then (or save a screenshot). No network: every flag that would reach out is off.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace gpumem::analyzer::testing {

// The browser, or "" when there is none (the caller skips with the reason).
inline std::string chromium_path() {
  if (const char* env = std::getenv("GPUMEM_CHROMIUM"); env && *env)
    return access(env, X_OK) == 0 ? env : "";
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

struct BrowserRun {
  int status = -1;
  std::string dom;  // --dump-dom output
  std::string stderr_text;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// mode_flag: "--dump-dom" or "--screenshot=<png>"; work_dir holds the profile and the outputs.
inline BrowserRun run_chromium(const std::string& page, const std::string& mode_flag,
                               const std::filesystem::path& work_dir,
                               const std::string& extra = "") {
  namespace fs = std::filesystem;
  static int run = 0;
  fs::path profile = work_dir / ("profile-" + std::to_string(++run));
  fs::create_directories(profile);
  fs::path out = work_dir / ("stdout-" + std::to_string(run)),
           err = work_dir / ("stderr-" + std::to_string(run));
  std::string cmd = "timeout 60 '" + chromium_path() +
                    "' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
                    "--disable-background-networking --disable-component-update --disable-sync "
                    "--disable-extensions --disable-default-apps --mute-audio "
                    "--enable-logging=stderr --v=0 --virtual-time-budget=2000 "
                    "--user-data-dir='" +
                    profile.string() + "' " + extra + " " + mode_flag + " 'file://" +
                    fs::absolute(page).string() + "' >'" + out.string() + "' 2>'" + err.string() +
                    "' </dev/null";
  BrowserRun r;
  r.status = std::system(cmd.c_str());
  r.dom = slurp(out);
  r.stderr_text = slurp(err);
  fs::remove_all(profile);
  return r;
}

}  // namespace gpumem::analyzer::testing
