// trace_read_rss TRACE: reads every record and prints "records maxrss_before_kib maxrss_after_kib"
// (a fresh process, so its peak RSS is the reader's own). Used by the memory-bound test.
#include <sys/resource.h>

#include <cstdio>

#include "gpumem/trace/reader.h"

static long maxrss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: trace_read_rss TRACE\n");
    return 2;
  }
  const long before = maxrss_kib();
  std::string error;
  auto reader = gpumem::trace::Reader::open(argv[1], &error);
  if (!reader) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  gpumem::trace::Event ev;
  unsigned long long n = 0;
  while (reader->next(&ev)) ++n;
  std::printf("%llu %ld %ld\n", n, before, maxrss_kib());
  return 0;
}
