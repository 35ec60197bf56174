// Diagnostics of the preload library: one line to stderr, prefixed "gpumem: ", formatted into a
// stack buffer and written with write(2) so that logging never allocates and never touches the
// program's stdio buffers. The level comes from GPUMEM_LOG, read once at load.
#pragma once

#include "config.h"

namespace gpumem {

void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);
void log_message(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace gpumem

#define GPUMEM_LOG_AT(level, ...)                                                \
  do {                                                                           \
    if (::gpumem::log_enabled(level)) ::gpumem::log_message(level, __VA_ARGS__); \
  } while (0)
#define GPUMEM_WARN(...) GPUMEM_LOG_AT(::gpumem::LogLevel::warn, __VA_ARGS__)
#define GPUMEM_INFO(...) GPUMEM_LOG_AT(::gpumem::LogLevel::info, __VA_ARGS__)
#define GPUMEM_DEBUG(...) GPUMEM_LOG_AT(::gpumem::LogLevel::debug, __VA_ARGS__)
