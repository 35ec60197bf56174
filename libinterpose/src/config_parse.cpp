// parse_config (config.h) and check_settings (gpumem/preload_settings.h): the one parser of the
// GPUMEM_* variables, linked into libgpumem.so and into `gpumem run`, which checks the settings it
// is about to give the program before starting it. Allocation-free (fixed buffers) because it runs
// inside a library constructor, before the program's own allocator may be ready.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>

#include "config.h"
#include "gpumem/preload_settings.h"
#include "gpumem/resources/block.h"
#include "gpumem/resources/shared_ledger.h"
#include "gpumem/trace/format_v2.h"
#include "gpumem/trace_name.h"
#include "gpumem/units.h"
#include "gpumem/visible_text.h"

namespace gpumem {
namespace {

static_assert(kPoolGranuleBytes == resources::kBlockAlign, "units.h's pool granule is the pools'");

// GPUMEM_LIMIT_GROUP: a numeric group id, or a name looked up in the first 64 KiB of /etc/group
// (read directly: no NSS and no malloc at library load); -1 when neither.
long group_id(const char* v) {
  if (*v >= '0' && *v <= '9') {
    char* end = nullptr;
    const unsigned long n = std::strtoul(v, &end, 10);
    return *end == '\0' && std::strlen(v) <= 10 && n <= 0x7fffffffUL ? static_cast<long>(n) : -1;
  }
  const int fd = ::open("/etc/group", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char text[65536];
  size_t used = 0;
  for (ssize_t n = 1; n > 0 && used < sizeof text - 1; used += static_cast<size_t>(n))
    if ((n = ::read(fd, text + used, sizeof text - 1 - used)) < 0) n = 0;
  ::close(fd);
  text[used] = '\0';
  const size_t len = std::strlen(v);
  for (const char* line = text; *line != '\0';) {
    // name:password:gid:members
    const char* next = std::strchr(line, '\n');
    if (std::strncmp(line, v, len) == 0 && line[len] == ':') {
      const char* colon = std::strchr(line + len + 1, ':');
      if (colon != nullptr && (next == nullptr || colon < next) && colon[1] >= '0' &&
          colon[1] <= '9')
        return std::strtol(colon + 1, nullptr, 10);
    }
    if (next == nullptr) break;
    line = next + 1;
  }
  return -1;
}

// "VAR='value' is not valid[: reason]; accepted: .... Fix or unset VAR." The value is shown with
// its control characters escaped, so the message stays one line whatever bytes it holds.
bool fail(char* err, size_t errlen, const char* var, const char* value, const char* accepted,
          const char* reason = nullptr) {
  char shown[160];
  size_t len = 0;
  bool cut = false;
  put_visible(value, [&](char ch) {
    if (len < sizeof shown - 4)
      shown[len++] = ch;
    else
      cut = true;
  });
  if (cut) {
    std::memcpy(shown + len, "...", 3);  // room kept above
    len += 3;
  }
  shown[len] = '\0';
  std::snprintf(err, errlen, "%s='%s' is not valid%s%s; accepted: %s. Fix or unset %s.", var, shown,
                reason != nullptr ? ": " : "", reason != nullptr ? reason : "", accepted, var);
  return false;
}

constexpr const char* kLimitForms =
    "a size such as 512MiB, 8GiB, 1.5GiB, 1073741824, or a percentage such as 60%";

bool parse_limit(const char* var, const char* text, bool sizes_fixed_pool, LimitSpec* out,
                 char* err, size_t errlen) {
  uint64_t bytes = 0;
  double percent = 0;
  if (const char* why = limit_problem(text, sizes_fixed_pool, &bytes, &percent)) {
    // "not a size" says too little where the value reads as a percentage or a huge number.
    uint64_t ignored = 0;
    if (std::strchr(text, '%') != nullptr && parse_size(text, &ignored) == SizeParse::bad_number)
      why = "a percentage is above 0% and at most 100% of the device";
    else if (parse_size(text, &ignored) == SizeParse::overflow)
      why = "it is more bytes than 64 bits hold, far above any device";
    return fail(err, errlen, var, text, kLimitForms, why);
  }
  out->set = true;
  out->bytes = bytes;
  out->percent = percent;
  return true;
}

// Appends "KEY=VALUE\n" to the summary, silently truncating (the summary is informational).
void note(Config* c, const char* key, const char* value) {
  size_t used = std::strlen(c->summary);
  if (used + 1 >= sizeof c->summary) return;
  int n = std::snprintf(c->summary + used, sizeof c->summary - used, "%s=%s\n", key, value);
  if (n < 0) c->summary[used] = '\0';
}

}  // namespace

bool parse_config(EnvLookup env, Config* c, char* err, size_t errlen) {
  *c = Config{};
  const char* trace = env("GPUMEM_TRACE");
  if (trace != nullptr && std::strcmp(trace, "off") == 0) {
    c->trace_off = true;
  } else if (trace != nullptr && *trace != '\0') {
    if (std::strlen(trace) >= sizeof c->trace_template)
      return fail(err, errlen, "GPUMEM_TRACE", "(too long)",
                  "a path template shorter than 4096 bytes, or off");
    std::strcpy(c->trace_template, trace);
  } else {
    std::strcpy(c->trace_template, "gpumem-%p.trace");
  }
  note(c, "GPUMEM_TRACE", c->trace_off ? "off" : c->trace_template);

  // A bounded trace (the writer reads the value when it opens the file; checked here so that a
  // bad one stops the program as every other bad setting does).
  if (const char* v = env("GPUMEM_TRACE_MAX"); v != nullptr && *v != '\0') {
    uint64_t bytes = 0;
    const SizeParse parsed = parse_size(v, &bytes);
    const char* why = parsed != SizeParse::ok       ? "it is not a size in bytes"
                      : bytes < trace::kMinTraceMax ? "it is below 4 MiB, the ring and the least window"
                                                    : nullptr;
    if (why != nullptr)
      return fail(err, errlen, "GPUMEM_TRACE_MAX", v,
                  "a size of at least 4MiB such as 512MiB or 2GiB (not a percentage)", why);
    note(c, "GPUMEM_TRACE_MAX", v);
  }

  if (const char* v = env("GPUMEM_STACKS"); v != nullptr && *v != '\0') {
    static constexpr struct {
      const char* name;
      stacks::Mode mode;
    } kModes[] = {{"0", stacks::Mode::off},         {"off", stacks::Mode::off},
                  {"1", stacks::Mode::native},      {"native", stacks::Mode::native},
                  {"python", stacks::Mode::python}, {"mixed", stacks::Mode::mixed}};
    bool found = false;
    for (const auto& m : kModes) {
      if (std::strcmp(v, m.name) != 0) continue;
      c->stack_mode = m.mode;
      found = true;
    }
    if (!found)
      return fail(err, errlen, "GPUMEM_STACKS", v,
                  "0 (off), 1 or native (native call stacks), python (Python source lines), "
                  "mixed (both)");
    c->stacks = c->stack_mode != stacks::Mode::off;
  }
  static constexpr const char* kModeNames[] = {"0", "1", "python", "mixed"};
  note(c, "GPUMEM_STACKS", kModeNames[static_cast<int>(c->stack_mode)]);

  // What `gpumem run --tensors` did to the frameworks' allocator settings: recorded in the
  // header so that the report can say whether a framework's cache still hides tensors.
  if (const char* v = env("GPUMEM_TENSORS"); v != nullptr && *v != '\0') {
    std::snprintf(c->tensors, sizeof c->tensors, "%s", v);
    note(c, "GPUMEM_TENSORS", c->tensors);
  }

  if (const char* v = env("GPUMEM_LOG"); v != nullptr && *v != '\0') {
    static const char* const kLevels[] = {"error", "warn", "info", "debug"};
    bool found = false;
    for (int i = 0; i < 4; ++i) {
      if (std::strcmp(v, kLevels[i]) == 0) {
        c->log = static_cast<LogLevel>(i);
        found = true;
      }
    }
    if (!found) return fail(err, errlen, "GPUMEM_LOG", v, "error, warn, info or debug");
    note(c, "GPUMEM_LOG", v);
  }

  if (const char* v = env("GPUMEM_POOL"); v != nullptr && *v != '\0') {
    if (!resources::parse_pool_kind(v, &c->pool))
      return fail(err, errlen, "GPUMEM_POOL", v, "none, growth, fixed or expandable");
  }
  note(c, "GPUMEM_POOL", pool_kind_name(c->pool));

  // The pool size first: without it a fixed pool takes the limit as its size, which then must
  // hold one pool block.
  if (const char* v = env("GPUMEM_POOL_SIZE"); v != nullptr && *v != '\0') {
    uint64_t bytes = 0;
    if (const char* why = pool_size_problem(v, &bytes))
      return fail(err, errlen, "GPUMEM_POOL_SIZE", v,
                  "a size of at least 512 B such as 512MiB or 8GiB (not a percentage)", why);
    c->pool_size = bytes;
  }
  const bool limit_sizes_pool = c->pool == PoolKind::fixed && c->pool_size == 0;

  if (const char* v = env("GPUMEM_LIMIT"); v != nullptr && *v != '\0') {
    if (!parse_limit("GPUMEM_LIMIT", v, limit_sizes_pool, &c->limit, err, errlen)) return false;
    note(c, "GPUMEM_LIMIT", v);
  }
  for (int d = 0; d < trace::kMaxDevices; ++d) {
    char name[32];
    std::snprintf(name, sizeof name, "GPUMEM_LIMIT_%d", d);
    const char* v = env(name);
    if (v == nullptr || *v == '\0') continue;
    if (!parse_limit(name, v, limit_sizes_pool, &c->device_limit[d], err, errlen)) return false;
    note(c, name, v);
  }
  if (c->pool_size != 0) note(c, "GPUMEM_POOL_SIZE", env("GPUMEM_POOL_SIZE"));
  if (c->pool_size != 0 && c->pool != PoolKind::fixed)  // runs (scripts set it for every pool)
    std::snprintf(c->warning, sizeof c->warning,
                  "GPUMEM_POOL_SIZE is ignored: it sizes the fixed pool only, and GPUMEM_POOL is "
                  "%s; set GPUMEM_POOL=fixed or unset GPUMEM_POOL_SIZE",
                  pool_kind_name(c->pool));

  if (c->pool == PoolKind::fixed && c->pool_size == 0 && !c->limit.set) {
    // A per-device limit alone caps its device but would leave the others' pools without a size.
    const bool device_limit =
        std::any_of(std::begin(c->device_limit), std::end(c->device_limit),
                    [](const LimitSpec& l) { return l.set; });
    return fail(err, errlen, "GPUMEM_POOL", "fixed",
                "fixed together with GPUMEM_POOL_SIZE or GPUMEM_LIMIT (the pool's size), or "
                "growth, or none",
                device_limit ? "GPUMEM_LIMIT_<n> caps one device and does not size the pool"
                             : nullptr);
  }

  // A limit shared by every process naming the same budget (docs/policies.md "Shared budget").
  const char* scope = env("GPUMEM_LIMIT_SCOPE");
  const char* budget = env("GPUMEM_LIMIT_NAME");
  if (scope != nullptr && *scope != '\0') {
    if (std::strcmp(scope, "shared") == 0)
      c->limit_shared = true;
    else if (std::strcmp(scope, "process") != 0)
      return fail(err, errlen, "GPUMEM_LIMIT_SCOPE", scope,
                  "process (each process has its own cap) or shared (one cap for every process "
                  "naming the same GPUMEM_LIMIT_NAME)");
  }
  if (c->limit_shared) {
    if (budget == nullptr || !resources::valid_ledger_name(budget))
      return fail(err, errlen, "GPUMEM_LIMIT_NAME", budget != nullptr ? budget : "",
                  "the shared budget's name, 1 to 64 of A-Z a-z 0-9 . _ - (needed by "
                  "GPUMEM_LIMIT_SCOPE=shared)");
    bool any_limit = c->limit.set;
    for (const auto& d : c->device_limit) any_limit = any_limit || d.set;
    if (!any_limit)
      return fail(err, errlen, "GPUMEM_LIMIT_SCOPE", scope,
                  "shared together with GPUMEM_LIMIT (the budget's size), or process");
    std::snprintf(c->limit_name, sizeof c->limit_name, "%s", budget);
    note(c, "GPUMEM_LIMIT_SCOPE", "shared");
    note(c, "GPUMEM_LIMIT_NAME", c->limit_name);
  } else if (budget != nullptr && *budget != '\0') {
    return fail(err, errlen, "GPUMEM_LIMIT_NAME", budget,
                "a name only together with GPUMEM_LIMIT_SCOPE=shared");
  }
  // The budget's ledger is 0600 (this user's processes); a group makes it 0660 for that group.
  if (const char* group = env("GPUMEM_LIMIT_GROUP"); group != nullptr && *group != '\0') {
    if (!c->limit_shared)
      return fail(err, errlen, "GPUMEM_LIMIT_GROUP", group,
                  "a group only together with GPUMEM_LIMIT_SCOPE=shared");
    c->limit_group = group_id(group);
    if (c->limit_group < 0)
      return fail(err, errlen, "GPUMEM_LIMIT_GROUP", group,
                  "a group name from /etc/group or a numeric group id (the shared budget's "
                  "ledger is then created 0660 for that group)");
    note(c, "GPUMEM_LIMIT_GROUP", group);
  }

  // Set by `gpumem run` (its own pid) and inherited by the whole process tree: recorded in the
  // header, so the command finds the traces of descendants whose parents wrote none.
  if (const char* v = env("GPUMEM_RUN"); v != nullptr && *v != '\0') {
    bool digits = std::strlen(v) <= 10;
    for (const char* p = v; digits && *p != '\0'; ++p) digits = *p >= '0' && *p <= '9';
    if (!digits)
      return fail(err, errlen, "GPUMEM_RUN", v,
                  "the process id of the `gpumem run` that started the program (it sets it)");
    note(c, "GPUMEM_RUN", v);
  }

  c->rank = rank_from_environment(env);
  return true;
}

bool check_limit_names(const char* const* envp, char* err, size_t errlen) {
  static constexpr char kPrefix[] = "GPUMEM_LIMIT_";
  constexpr size_t kPrefixLen = sizeof kPrefix - 1;
  for (const char* const* e = envp; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, kPrefix, kPrefixLen) != 0) continue;
    const char* suffix = *e + kPrefixLen;
    const char* eq = std::strchr(suffix, '=');
    if (eq == nullptr || eq[1] == '\0') continue;
    const size_t len = static_cast<size_t>(eq - suffix);
    bool digits = len > 0;
    for (size_t i = 0; i < len; ++i) digits = digits && suffix[i] >= '0' && suffix[i] <= '9';
    const bool device = digits && (len == 1 || suffix[0] != '0') && len <= 2 &&
                        std::strtol(suffix, nullptr, 10) < trace::kMaxDevices;
    const bool known = device || (len == 5 && std::strncmp(suffix, "SCOPE", 5) == 0) ||
                       (len == 4 && std::strncmp(suffix, "NAME", 4) == 0) ||
                       (len == 5 && std::strncmp(suffix, "GROUP", 5) == 0);
    if (known) continue;
    char name[64];
    std::snprintf(name, sizeof name, "%.*s", static_cast<int>(std::min<size_t>(eq - *e, 63)), *e);
    return fail(err, errlen, name, eq + 1,
                "GPUMEM_LIMIT_<n> for device n from 0 to 63 (no leading zero), GPUMEM_LIMIT_SCOPE, "
                "GPUMEM_LIMIT_NAME or GPUMEM_LIMIT_GROUP",
                digits ? "it names no device gpumem reads, so the cap would be ignored"
                       : "gpumem reads no variable of that name, so it would be ignored");
  }
  return true;
}

bool check_settings(const char* (*env)(const char* name), SettingsProblem* problem) {
  static_assert(sizeof(SettingsProblem::variable) >= 32, "GPUMEM_LIMIT_<n> fits");
  *problem = SettingsProblem{};
  Config scratch;
  if (parse_config(env, &scratch, problem->message, sizeof problem->message)) return true;
  // Every message starts "VAR='value' is not valid" (fail() above): VAR is the variable.
  const char* eq = std::strchr(problem->message, '=');
  const size_t n = eq != nullptr ? static_cast<size_t>(eq - problem->message) : 0;
  if (n < sizeof problem->variable) std::memcpy(problem->variable, problem->message, n);
  return false;
}

}  // namespace gpumem
