// libFuzzer target: arbitrary bytes as a PyTorch memory snapshot and as an RMM log. The pickle
// reader must refuse code and damage with a message, never crash, hang or run anything, and the
// converters must turn whatever it accepts into a trace image or a message.
#include <cstdint>
#include <string>
#include <string_view>

#include "gpumem/formats/convert.h"
#include "gpumem/formats/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)gpumem::formats::detect_format(bytes.substr(0, 256));
  std::string error;
  gpumem::formats::PickleDocument doc;
  if (gpumem::formats::read_pickle(bytes, &doc, &error) && doc.node_count() == 0) __builtin_trap();
  if (!error.empty() && error.rfind("byte ", 0) != 0) __builtin_trap();  // says where it broke
  gpumem::formats::TraceImage snapshot;
  (void)gpumem::formats::snapshot_to_trace(bytes, "fuzz.pickle", &snapshot, &error);
  gpumem::formats::TraceImage csv;
  (void)gpumem::formats::rmm_csv_to_trace(bytes, "fuzz.csv", &csv, &error);
  return 0;
}
