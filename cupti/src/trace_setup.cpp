#include "trace_setup.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <initializer_list>

namespace gpumem::cupti {



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
