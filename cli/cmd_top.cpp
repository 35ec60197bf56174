// `gpumem top [TRACE_OR_DIR...] [--interval S] [--once] [--json] [--prometheus] [--bytes]`: a live
// view of the traces being written, refreshed every interval. On a terminal: a full-screen table
// (plain ANSI sequences, the terminal's size from TIOCGWINSZ, redrawn on SIGWINCH) with keys; to
// anything else: one line per process and device at each refresh. The model is top_watch.h, the
// outputs top_render.h.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "command.h"
#include "gpumem/visible_text.h"
#include "top_render.h"
#include "top_watch.h"

namespace {

using namespace gpumem::cli::top;

struct TopOptions {
  std::vector<std::string> targets;
  double interval_s = 1.0;
  bool once = false;
  bool json = false;
  bool prometheus = false;
  bool bytes = false;
  size_t iterations = 0;  // 0 = until quit
  size_t history = 120;
};

volatile sig_atomic_t g_quit = 0;
volatile sig_atomic_t g_resized = 0;

void on_quit(int) { g_quit = 1; }
void on_winch(int) { g_resized = 1; }

double monotonic_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The wall-clock time now, as `format` (strftime) in UTC or local time.
std::string time_now(const char* format, bool utc) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  if (utc) gmtime_r(&t, &tm);
  else localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}
std::string utc_now() { return time_now("%Y-%m-%dT%H:%M:%SZ", true); }
std::string clock_now() { return time_now("%H:%M:%S", false); }

void write_all(const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

void print_messages(Top& top) {
  for (const std::string& m : top.take_messages()) std::fprintf(stderr, "gpumem top: %s\n", m.c_str());
}

bool utf8_terminal() {
  for (const char* var : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* v = std::getenv(var);
    if (v == nullptr || *v == '\0') continue;
    const std::string s = v;
    return s.find("UTF-8") != std::string::npos || s.find("utf8") != std::string::npos ||
           s.find("UTF8") != std::string::npos || s.find("utf-8") != std::string::npos;
  }
  return false;
}

// The terminal in the view's mode (no echo, keys one at a time, the alternate screen, no
// cursor) for as long as it lives; restored on every way out.
class Terminal {
 public:
  Terminal() {
    if (::isatty(STDIN_FILENO) && ::tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      keys_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    write_all("\x1b[?1049h\x1b[?25l");
  }
  ~Terminal() {
    write_all("\x1b[?25h\x1b[?1049l");
    if (keys_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  bool keys() const { return keys_; }
  static void size(int* width, int* height) {
    winsize ws{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
      *width = ws.ws_col;
      *height = ws.ws_row;
    }
  }

 private:
  termios saved_{};
  bool keys_ = false;
};

int run_interactive(const TopOptions& o, Top& top) {
  Terminal term;
  ScreenOptions so;
  so.bytes = o.bytes;
  so.utf8 = utf8_terminal();
  so.interval_s = o.interval_s;
  size_t done = 0;
  double next = 0;
  bool redraw = true;
  // What the plain output prints on stderr (a target that does not exist, ...): on the screen,
  // under the keys, since stderr is hidden behind the view.
  std::vector<std::string> notes;
  while (!g_quit) {
    const double now = monotonic_s();
    if (now >= next) {
      top.refresh(now, o.history);
      for (const std::string& m : top.take_messages()) notes.push_back(gpumem::visible(m));
      if (notes.size() > 3) notes.erase(notes.begin(), notes.end() - 3);
      next = now + o.interval_s;
      so.clock = clock_now();
      redraw = true;
      ++done;
    }
    if (g_resized) g_resized = 0, redraw = true;
    if (redraw) {
      Terminal::size(&so.width, &so.height);
      const auto views = sorted(top.views(), so.sort);
      if (so.sites_of >= static_cast<int>(views.size())) so.sites_of = -1;
      std::vector<std::string> lines = screen(views, so);
      for (size_t i = 0; i < notes.size(); ++i)
        lines.insert(
            lines.begin() + static_cast<std::ptrdiff_t>(std::min<size_t>(2 + i, lines.size())),
            notes[i].substr(0, static_cast<size_t>(std::max(so.width, 20))));
      std::string frame = "\x1b[H";
      for (const std::string& line : lines) frame += line + "\x1b[K\r\n";
      frame += "\x1b[J";
      write_all(frame);
      redraw = false;
    }
    if (o.iterations > 0 && done >= o.iterations) break;
    pollfd p{STDIN_FILENO, POLLIN, 0};
    const int wait_ms = static_cast<int>(std::max(0.0, next - monotonic_s()) * 1000) + 1;
    const int ready = ::poll(&p, term.keys() ? 1 : 0, wait_ms);
    if (ready <= 0 || (p.revents & POLLIN) == 0) continue;
    char keys[32];
    const ssize_t n = ::read(STDIN_FILENO, keys, sizeof keys);
    for (ssize_t i = 0; i < n; ++i) {
      switch (keys[i]) {
        case 'q':
        case 'Q':
          g_quit = 1;
          break;
        case 's':
          so.sort = static_cast<SortKey>((static_cast<int>(so.sort) + 1) % 4);
          break;
        case '\t': {
          const int count = static_cast<int>(top.views().size());
          so.sites_of = so.sites_of + 1 < count ? so.sites_of + 1 : -1;
          break;
        }
        case 'd':
          top.dismiss_ended();
          so.sites_of = -1;
          break;
        default:
          break;
      }
      redraw = true;
    }
  }
  return 0;
}

int run_top(const TopOptions& o) {
  if (o.json && o.prometheus) {
    std::fprintf(stderr, "gpumem top: --json and --prometheus are two formats of one snapshot; "
                         "pick one\n");
    return 2;
  }
  Top top(o.targets);
  const bool snapshot = o.once || o.json || o.prometheus;
  if (snapshot) {
    top.refresh(monotonic_s(), o.history);
    print_messages(top);
    const auto views = sorted(top.views(), SortKey::pid);
    if (views.empty() && !o.json && !o.prometheus) {
      std::fprintf(stderr, "gpumem top: no trace found; name trace files or folders, or run in "
                           "the folder where `gpumem run` writes gpumem-PID.trace\n");
      return 1;
    }
    write_all(o.json ? gpumem::cli::top::json(views, utc_now())
                     : o.prometheus ? prometheus(views) : plain_lines(views, utc_now()));
    return 0;
  }
  struct sigaction sa {};
  sa.sa_handler = on_quit;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  sa.sa_handler = on_winch;
  sigaction(SIGWINCH, &sa, nullptr);  // no SA_RESTART: poll() wakes to redraw
  if (::isatty(STDOUT_FILENO)) return run_interactive(o, top);
  // Not a terminal: a block of plain lines at each refresh.
  size_t done = 0;
  while (!g_quit) {
    const double started = monotonic_s();
    top.refresh(started, o.history);
    print_messages(top);
    write_all(plain_lines(sorted(top.views(), SortKey::pid), utc_now()));
    if (o.iterations > 0 && ++done >= o.iterations) break;
    const double wait = o.interval_s - (monotonic_s() - started);
    if (wait > 0) ::poll(nullptr, 0, static_cast<int>(wait * 1000));
  }
  return 0;
}

void register_top(CLI::App& app, std::function<int()>* run) {
  auto o = std::make_shared<TopOptions>();
  CLI::App* cmd = app.add_subcommand(
      "top", "Watch memory while the job runs: per process and device, refreshed live");
  cmd->add_option("traces", o->targets,
                  "trace files or folders of *.trace files (default: the traces of `gpumem run` "
                  "programs and ./gpumem-*.trace)");
  // CLI::Range lets "nan" through (every comparison with it is false): refreshing without a
  // pause would then take a whole core.
  cmd->add_option("--interval", o->interval_s, "seconds between refreshes")
      ->check(CLI::Range(0.05, 3600.0))
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            const double seconds = std::strtod(value.c_str(), nullptr);
            return seconds >= 0.05 && seconds <= 3600.0
                       ? ""
                       : "Value " + value + " is not a number of seconds from 0.05 to 3600";
          },
          "", "a number"));
  cmd->add_flag("--once", o->once, "print one snapshot (plain lines) and exit");
  cmd->add_flag("--json", o->json, "print one snapshot as JSON (gpumem.top/1) and exit");
  cmd->add_flag("--prometheus", o->prometheus,
                "print one snapshot in the Prometheus text exposition format and exit");
  cmd->add_flag("--bytes", o->bytes, "exact byte counts instead of KiB/MiB/GiB");
  // A negative count would wrap to a huge one: refused rather than run for ever.
  cmd->add_option("--iterations", o->iterations, "stop after this many refreshes (0 = never)")
      ->check(CLI::Range(size_t{0}, size_t{1} << 40));
  cmd->add_option("--history", o->history, "refreshes kept for each device's history graph")
      ->check(CLI::Range(size_t{1}, size_t{100000}));
  cmd->callback([run, o] { *run = [o] { return run_top(*o); }; });
}

GPUMEM_COMMAND(register_top);

}  // namespace
