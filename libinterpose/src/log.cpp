// See log.h. Messages are capped at one 512-byte line. Control characters in a message (an
// environment value with a newline, a path with an escape sequence) are written as visible escapes
// (gpumem/visible_text.h), so a message is always exactly one line.
#include "log.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <string_view>

#include "gpumem/visible_text.h"

namespace gpumem {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::warn)};
}

void set_log_level(LogLevel level) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

bool log_enabled(LogLevel level) {
  return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed);
}

void log_message(LogLevel, const char* fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  const int m = std::vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (m < 0) return;
  const size_t text_len = std::min(static_cast<size_t>(m), sizeof text - 1);
  char buf[512];
  constexpr std::string_view kPrefix = "gpumem: ";
  size_t len = kPrefix.copy(buf, kPrefix.size());
  put_visible(std::string_view(text, text_len), [&](char c) {
    if (len < sizeof buf - 1) buf[len++] = c;  // one byte kept for the newline
  });
  buf[len++] = '\n';
  ssize_t ignored = ::write(STDERR_FILENO, buf, len);
  (void)ignored;
}

}  // namespace gpumem
