// See config.h. The settings of this process; parse_config (config_parse.cpp) reads them.
#include "config.h"

#include "gpumem/trace_name.h"

#include <sys/auxv.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "gpumem/units.h"
#include "log.h"

namespace gpumem {
namespace {

Config g_config;

}  // namespace

void check_resolved_limit(const char* var, const LimitSpec& spec, int device, uint64_t capacity,
                          uint64_t bytes) {
  const Config& c = config();
  const uint64_t least = c.pool == PoolKind::fixed && c.pool_size == 0 ? kPoolGranuleBytes : 1;
  if (!spec.set || spec.percent <= 0 || bytes >= least) return;
  char cap[32], min[32];
  log_message(LogLevel::error,
              "%s=%g%% is not valid: it is %llu bytes of device %d's capacity (%s)%s; accepted: a "
              "percentage giving at least %s there (%.3g%% or more), or a size such as 512MiB. "
              "Raise the limit or unset it.",
              var, spec.percent, static_cast<unsigned long long>(bytes), device,
              format_bytes(capacity, cap, sizeof cap),
              least > 1 ? ", and it sizes the fixed pool" : "",
              format_bytes(least, min, sizeof min),
              100.0 * static_cast<double>(least) / static_cast<double>(capacity));
  std::_Exit(2);  // as build_stack's other limit errors: before the first request is served
}

const Config& config() {
  return g_config;
}

void load_config() {
  char err[512];
  // A setuid program reads no setting from its caller (secure_getenv), so none is checked either.
  const bool secure = getauxval(AT_SECURE) != 0;
  if (!parse_config(
          +[](const char* n) -> const char* { return secure_getenv(n); }, &g_config, err,
          sizeof err) ||
      (!secure && !check_limit_names(environ, err, sizeof err))) {
    log_message(LogLevel::error, "%s", err);
    std::_Exit(2);  // before any CUDA work; _Exit so no half-initialised destructor runs
  }
  set_log_level(g_config.log);
  if (g_config.warning[0] != '\0') GPUMEM_WARN("%s", g_config.warning);
}

}  // namespace gpumem
