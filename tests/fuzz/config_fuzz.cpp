// libFuzzer target: the preload library's environment parser (libinterpose/src/config.cpp,
// parse_config) and the size parser it uses (common/include/gpumem/units.h, parse_size).
// The input is split at NUL bytes into values for the GPUMEM_* variables in a fixed order. The
// parser must never crash, must fill an error message exactly when it refuses, and an accepted
// limit must be non-zero bytes or a percentage in (0, 100].
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "config.h"
#include "gpumem/units.h"

namespace {

const char* const kVars[] = {"GPUMEM_TRACE", "GPUMEM_STACKS", "GPUMEM_LOG", "GPUMEM_POOL",
                             "GPUMEM_LIMIT", "GPUMEM_LIMIT_0", "GPUMEM_LIMIT_63", "GPUMEM_POOL_SIZE",
                             "RANK", "LOCAL_RANK"};
constexpr size_t kVarCount = sizeof(kVars) / sizeof(kVars[0]);
std::vector<std::string> g_values;

const char* lookup(const char* name) {
  for (size_t i = 0; i < kVarCount && i < g_values.size(); ++i)
    if (std::strcmp(name, kVars[i]) == 0) return g_values[i].c_str();
  return nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  g_values.clear();
  size_t start = 0;
  while (g_values.size() < kVarCount && start <= input.size()) {
    size_t end = input.find('\0', start);
    if (end == std::string::npos) end = input.size();
    g_values.push_back(input.substr(start, end - start));
    start = end + 1;
  }

  uint64_t bytes = 0;
  double percent = 0;
  const gpumem::SizeParse sp = gpumem::parse_size(g_values[0].c_str(), &bytes, &percent);
  if (sp == gpumem::SizeParse::percent && !(percent > 0 && percent <= 100)) __builtin_trap();

  static gpumem::Config config;  // large (fixed buffers): not on the stack
  char err[512];
  err[0] = '\0';
  const bool ok = gpumem::parse_config(lookup, &config, err, sizeof err);
  if (!ok && err[0] == '\0') __builtin_trap();
  if (ok) {
    if (config.limit.set && config.limit.percent == 0 && config.limit.bytes == 0) __builtin_trap();
    if (config.limit.percent < 0 || config.limit.percent > 100) __builtin_trap();
    if (std::memchr(config.trace_template, '\0', sizeof config.trace_template) == nullptr) __builtin_trap();
  }
  return 0;
}
