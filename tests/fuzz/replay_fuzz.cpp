// libFuzzer target: `gpumem replay` on damaged or implausible traces. The input becomes a stream of
// records (record_stream.h), written as a closed trace file and compiled into per-device programs
// (load_program), each replayed under every policy (no pool, growth, fixed, expandable) with a
// limit the input picks, and for small programs the smallest-limit search under one policy. No
// trace may crash or hang it, and the search's answer must hold: replayed at the smallest limit
// it found, the program fits.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "gpumem/replay/replay.h"
#include "record_stream.h"

using namespace gpumem::fuzz;
namespace replay = gpumem::replay;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t limit_byte = data[0];
  const uint8_t search_byte = data[1];
  Input in{data + 2, size - 2};
  const Decoded d = decode(in);
  static const std::string path = "/tmp/gpumem-fuzz-replay-" + std::to_string(getpid()) + ".trace";
  std::ofstream(path, std::ios::binary) << file_bytes(d);
  std::string error;
  const auto program = replay::load_program(path, &error);
  std::remove(path.c_str());
  if (!program) {
    if (error.empty()) __builtin_trap();  // a refusal always says why
    return 0;
  }
  const uint64_t limit = limit_byte == 0 ? 0 : uint64_t{limit_byte} << 20;
  for (const replay::DeviceProgram& device : program->devices) {
    for (const replay::Policy policy : {replay::Policy::none, replay::Policy::growth,
                                        replay::Policy::fixed, replay::Policy::expandable}) {
      replay::ReplayOptions options;
      options.policy = policy;
      options.limit = limit;
      options.capacity = uint64_t{1} << 30;
      (void)replay::replay_device(*program, device, options);
    }
    if (device.steps.size() > 300) continue;  // searches replay ~30 times: small programs only
    const auto policy = static_cast<replay::Policy>(search_byte % 4);
    const replay::LimitSearch s =
        replay::smallest_limit(*program, device, policy, uint64_t{1} << 30);
    if (s.smallest_bytes) {
      replay::ReplayOptions at;
      at.policy = policy;
      at.limit = *s.smallest_bytes;
      at.capacity = uint64_t{1} << 30;
      if (!replay::replay_device(*program, device, at).fits) __builtin_trap();
    }
  }
  return 0;
}
