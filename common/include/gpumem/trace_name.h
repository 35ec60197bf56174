// How a trace file is named: the GPUMEM_TRACE template (%p pid, %h host, %r rank, %t start time,
// %% a percent sign) and where the rank comes from. Header-only and allocation-free, because the
// preload library expands it at start-up; shared with the CUPTI mode and `gpumem run` (which
// predicts the child's trace name), so the three never disagree.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace gpumem {

// Launchers' global ranks first, LOCAL_RANK last (it repeats on every node: only a fallback).
inline constexpr const char* kRankVariables[] = {"RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID",
                                                 "PMI_RANK", "LOCAL_RANK"};

// The first rank variable holding a number >= 0, or -1. `get` is getenv or secure_getenv.
template <class Getenv>
int rank_from_environment(Getenv get) {
  for (const char* var : kRankVariables) {
    const char* v = get(var);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    long r = std::strtol(v, &end, 10);
    if (*end == '\0' && r >= 0 && r < (1L << 30)) return static_cast<int>(r);
  }
  return -1;
}

// Expands `tmpl` into out. %r is "norank" without a rank; %t is the UTC start time as
// YYYYMMDD-HHMMSS, or "*" when start_unix_ns is 0 (a caller predicting the name, not making it).
// Returns false when the result does not fit in outlen.
inline bool expand_trace_template(const char* tmpl, int pid, const char* host, int rank,
                                  uint64_t start_unix_ns, char* out, size_t outlen) {
  if (outlen == 0) return false;
  size_t o = 0;
  for (const char* p = tmpl; *p != '\0'; ++p) {
    char piece[128];
    const char* text = piece;  // what the character or % sequence expands to
    if (*p != '%' || p[1] == '\0') {
      piece[0] = *p;
      piece[1] = '\0';
    } else {
      switch (*++p) {
        case 'p': std::snprintf(piece, sizeof piece, "%d", pid); break;
        case 'h':  // whole, however long (a piece would cut it)
          text = host;
          break;
        case 'r':
          if (rank >= 0)
            std::snprintf(piece, sizeof piece, "%d", rank);
          else
            std::snprintf(piece, sizeof piece, "norank");
          break;
        case 't': {
          if (start_unix_ns == 0) {
            std::snprintf(piece, sizeof piece, "*");
            break;
          }
          time_t secs = static_cast<time_t>(start_unix_ns / 1000000000ull);
          struct tm tm_utc;
          gmtime_r(&secs, &tm_utc);
          std::strftime(piece, sizeof piece, "%Y%m%d-%H%M%S", &tm_utc);
          break;
        }
        case '%': std::snprintf(piece, sizeof piece, "%%"); break;
        default: std::snprintf(piece, sizeof piece, "%%%c", *p); break;
      }
    }
    size_t n = std::strlen(text);
    if (o + n >= outlen) return false;
    std::memcpy(out + o, text, n);
    o += n;
  }
  out[o] = '\0';
  return true;
}

}  // namespace gpumem
