// Environment parsing for simcuda. Runs once; bad values end the process with a clear message.
#include "config.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "gpumem/resources/shared_ledger.h"
#include "gpumem/units.h"
#include "gpumem/visible_text.h"

namespace simcuda {
namespace {

[[noreturn]] void reject(const char* name, const char* value, const char* accepted) {
  std::fprintf(stderr, "simcuda: %s='%s' is not valid; use %s (or unset it)\n", name,
               gpumem::visible(value).c_str(), accepted);
  std::exit(2);
}

uint64_t parse_count(const char* name, const char* value, uint64_t min, uint64_t max,
                     const char* accepted) {
  if (*value < '0' || *value > '9') reject(name, value, accepted);
  errno = 0;
  char* end = nullptr;
  unsigned long long n = std::strtoull(value, &end, 10);
  if (errno != 0 || *end != '\0' || n < min || n > max) reject(name, value, accepted);
  return n;
}

Config parse() {
  Config c;
  if (const char* v = std::getenv("SIMCUDA_SHARED"); v != nullptr && *v != '\0') {
    if (!gpumem::resources::valid_ledger_name(v))
      reject("SIMCUDA_SHARED", v,
             "a name of 1 to 64 of A-Z a-z 0-9 . _ - (processes naming the same one share its "
             "devices)");
    std::snprintf(c.shared, sizeof c.shared, "%s", v);
  }
  if (const char* v = std::getenv("SIMCUDA_DEVICES"))
    c.devices = static_cast<int>(
        parse_count("SIMCUDA_DEVICES", v, 1, 64, "a whole number of devices from 1 to 64"));
  if (const char* v = std::getenv("SIMCUDA_MEMORY")) {
    uint64_t bytes = 0;
    if (gpumem::parse_size(v, &bytes) != gpumem::SizeParse::ok || bytes < (2ull << 20) ||
        bytes > (1ull << 50))
      reject("SIMCUDA_MEMORY", v,
             "a size from 2MiB to 1PiB per device such as 512MiB, 16GiB or 80GiB");
    c.memory = bytes;
  }
  if (const char* v = std::getenv("SIMCUDA_FAIL_ALLOC_AFTER")) {
    c.fail_alloc_after = parse_count("SIMCUDA_FAIL_ALLOC_AFTER", v, 0, UINT64_MAX - 1,
                                     "a whole number N >= 0 (allocations after the first N fail)");
    c.fail_alloc_enabled = true;
  }
  const char* latency_forms = "a whole number of microseconds from 0 to 10000000";
  if (const char* v = std::getenv("SIMCUDA_ALLOC_LATENCY_US"))
    c.alloc_latency_us = parse_count("SIMCUDA_ALLOC_LATENCY_US", v, 0, 10000000, latency_forms);
  if (const char* v = std::getenv("SIMCUDA_FREE_LATENCY_US"))
    c.free_latency_us = parse_count("SIMCUDA_FREE_LATENCY_US", v, 0, 10000000, latency_forms);
  if (const char* v = std::getenv("SIMCUDA_VMM")) {
    if ((v[0] != '0' && v[0] != '1') || v[1] != '\0')
      reject("SIMCUDA_VMM", v, "1 (devices support the VMM calls, the default) or 0 (they do not)");
    c.vmm = v[0] == '1';
  }
  if (const char* v = std::getenv("SIMCUDA_PEER")) {
    if ((v[0] != '0' && v[0] != '1') || v[1] != '\0')
      reject("SIMCUDA_PEER", v,
             "1 (devices can access each other's memory, the default) or 0 (they cannot)");
    c.peer = v[0] == '1';
  }
  return c;
}

}  // namespace

const Config& config() {
  static const Config c = parse();
  return c;
}

}  // namespace simcuda
