// libFuzzer target: `gpumem export` and the import of its outputs (formats/) on any trace. The
// input's records (record_stream.h) are written as a trace, exported as a PyTorch snapshot and as
// an RMM CSV of device 0, and each output is imported and exported again, twice. The first export
// may drop what its format cannot hold (docs/formats.md), and a refusal must say why; after that
// a round trip must change nothing: the second and third exports are equal to the byte. An
// export whose import differs (a field written one way and read another) shows here.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>

#include "gpumem/formats/convert.h"
#include "record_stream.h"

using namespace gpumem::fuzz;
namespace formats = gpumem::formats;

namespace {

void trap_unless(bool ok) {
  if (!ok) __builtin_trap();
}

const std::string& scratch(const char* what) {
  static std::string paths[2] = {
      "/tmp/gpumem-fuzz-roundtrip-" + std::to_string(getpid()) + "-a.trace",
      "/tmp/gpumem-fuzz-roundtrip-" + std::to_string(getpid()) + "-b.trace"};
  return paths[what[0] == 'b'];
}

// Imports `exported` (with `import`) into a trace at `path`, then exports that (with `out`).
bool again(
    const std::string& exported, const std::string& path,
    const std::function<bool(const std::string&, formats::TraceImage*, std::string*)>& import,
    const std::function<bool(const std::string&, std::string*, std::string*)>& out,
    std::string* result) {
  formats::TraceImage image;
  std::string error;
  if (!import(exported, &image, &error)) {
    trap_unless(!error.empty());
    return false;
  }
  std::remove(path.c_str());
  trap_unless(image.write(path, &error));
  const bool ok = out(path, result, &error);
  std::remove(path.c_str());
  trap_unless(ok || !error.empty());
  return ok;
}

void round_trips(
    const std::string& trace_path,
    const std::function<bool(const std::string&, formats::TraceImage*, std::string*)>& import,
    const std::function<bool(const std::string&, std::string*, std::string*)>& out) {
  std::string first, error;
  if (!out(trace_path, &first, &error)) {
    trap_unless(!error.empty());  // a refusal says why
    return;
  }
  std::string second, third;
  if (!again(first, scratch("a"), import, out, &second)) return;
  trap_unless(again(second, scratch("b"), import, out, &third));
  if (const char* dump = std::getenv("GPUMEM_FUZZ_DUMP")) {  // a failing input's three exports
    std::ofstream(std::string(dump) + ".1") << first;
    std::ofstream(std::string(dump) + ".2") << second;
    std::ofstream(std::string(dump) + ".3") << third;
  }
  trap_unless(second == third);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in{data, size};
  const Decoded d = decode(in);
  static const std::string path =
      "/tmp/gpumem-fuzz-roundtrip-" + std::to_string(getpid()) + ".trace";
  std::ofstream(path, std::ios::binary | std::ios::trunc) << file_bytes(d);
  round_trips(
      path,
      [](const std::string& p, formats::TraceImage* image, std::string* error) {
        return formats::snapshot_to_trace(p, "fuzz.pickle", image, error);
      },
      [](const std::string& t, std::string* pickle, std::string* error) {
        return formats::trace_to_snapshot(t, pickle, error);
      });
  round_trips(
      path,
      [](const std::string& c, formats::TraceImage* image, std::string* error) {
        return formats::rmm_csv_to_trace(c, "fuzz.csv", image, error);
      },
      [](const std::string& t, std::string* csv, std::string* error) {
        return formats::trace_to_rmm_csv(t, 0, csv, error);
      });
  std::remove(path.c_str());
  return 0;
}
