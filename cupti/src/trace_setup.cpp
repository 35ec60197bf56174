#include "trace_setup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <initializer_list>

namespace gpumem::cupti {

int rank_from_environment() {
  for (const char* name :
       {"RANK", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID", "PMI_RANK"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    long r = std::strtol(v, &end, 10);
    if (*end == '\0' && r >= 0 && r <= 0x7fffffff) return static_cast<int>(r);
  }
  return -1;
}

bool expand_trace_template(const char* tmpl, int pid, const char* host, int rank,
                           uint64_t start_unix_ns, char* out, size_t outlen) {
  size_t o = 0;
  for (const char* p = tmpl; *p != '\0'; ++p) {
    char piece[128];
    if (*p != '%' || p[1] == '\0') {
      piece[0] = *p;
      piece[1] = '\0';
    } else {
      switch (*++p) {
        case 'p':
          std::snprintf(piece, sizeof piece, "%d", pid);
          break;
        case 'h':
          std::snprintf(piece, sizeof piece, "%s", host);
          break;
        case 'r':
          if (rank >= 0)
            std::snprintf(piece, sizeof piece, "%d", rank);
          else
            std::snprintf(piece, sizeof piece, "norank");
          break;
        case 't': {
          time_t secs = static_cast<time_t>(start_unix_ns / 1000000000ull);
          struct tm tm_utc;
          gmtime_r(&secs, &tm_utc);
          std::strftime(piece, sizeof piece, "%Y%m%d-%H%M%S", &tm_utc);
          break;
        }
        case '%':
          std::snprintf(piece, sizeof piece, "%%");
          break;
        default:
          std::snprintf(piece, sizeof piece, "%%%c", *p);
          break;
      }
    }
    size_t n = std::strlen(piece);
    if (o + n >= outlen) return false;
    std::memcpy(out + o, piece, n);
    o += n;
  }
  out[o] = '\0';
  return true;
}

void fill_header(trace::Header* h, int rank, const char* trace_template, const char* cupti_path) {
  h->rank = rank;
  gethostname(h->host, sizeof h->host - 1);
  std::snprintf(h->pool, sizeof h->pool, "none");
  // argv from /proc/self/cmdline, NUL separators turned into spaces.
  int fd = ::open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = ::read(fd, h->command, sizeof h->command - 1);
    ::close(fd);
    if (n > 0) {
      for (ssize_t i = 0; i < n; ++i)
        if (h->command[i] == '\0') h->command[i] = ' ';
      while (n > 0 && h->command[n - 1] == ' ') --n;
      h->command[n] = '\0';
    }
  }
  std::snprintf(h->config, sizeof h->config,
                "GPUMEM_CAPTURE=cupti\nGPUMEM_TRACE=%s\nGPUMEM_CUPTI_LIB=%s\n", trace_template,
                cupti_path);
}

}  // namespace gpumem::cupti
