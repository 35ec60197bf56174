// libFuzzer target: arbitrary bytes as a trace file, opened with the one reader and read to the
// end twice (through rewind): one record at a time, then in batches. The reader must never
// crash, hang or read out of bounds, whatever the header or records say.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "gpumem/trace/reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/gpumem-fuzz-reader-" + std::to_string(getpid()) + ".trace";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return 0;
  if (size > 0) std::fwrite(data, 1, size, f);
  std::fclose(f);
  std::string error;
  auto reader = gpumem::trace::Reader::open(path, &error);
  if (reader) {
    gpumem::trace::Event ev;
    uint64_t records = 0;
    while (reader->next(&ev)) ++records;
    reader->rewind();
    uint64_t again = 0;
    gpumem::trace::Batch batch;  // the second pass in place, many records per call
    while (reader->next_batch(&batch)) {
      if (batch.count == 0 || (batch.count > 1 && !batch.payload.empty())) __builtin_trap();
      again += batch.count;
    }
    if (records != again) __builtin_trap();  // the same file reads the same both ways
  } else if (error.empty()) {
    __builtin_trap();  // a refusal always says why
  }
  reader.reset();
  std::remove(path.c_str());  // nothing left in /tmp once the run ends (a crash keeps its input)
  return 0;
}
