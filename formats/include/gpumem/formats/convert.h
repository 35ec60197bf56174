// gpumem traces <-> the formats users already have: PyTorch memory snapshots (the pickle of
// torch.cuda.memory._snapshot()) and RAPIDS RMM logging_resource_adaptor CSV. What maps to what,
// and what is lost either way: docs/formats.md.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "gpumem/trace/format.h"

namespace gpumem::formats {

enum class InputFormat { gpumem_trace, pytorch_snapshot, rmm_csv, unknown };

// By content, from the file's first bytes (64 are enough), never by its name.
InputFormat detect_format(std::string_view head);
const char* format_name(InputFormat f);  // "gpumem trace", "PyTorch memory snapshot", ...
// The format of the regular file at `path` from its first bytes; unknown when it cannot be read.
InputFormat detect_file_format(const std::string& path);
// The header line, or a first line that parses as a log line (logs written without the header).
bool looks_like_rmm_csv(std::string_view head);

// A gpumem trace built in memory (header + records, blobs as the format lays them out), written
// as a cleanly closed trace file.
class TraceImage {
 public:
  TraceImage();
  trace::Header& header() { return header_; }
  const std::vector<trace::Record>& records() const { return records_; }
  trace::Record& add(trace::Op op, uint64_t t_ns, int device);
  uint64_t intern_string(const std::string& text);  // Op::string the first time; id >= 1
  // A stack of Python frames "name (file:line)", innermost first; 0 for none. Symbols for its
  // frames are written by write() at the end, as the preload writes them at exit.
  uint32_t intern_python_stack(const std::vector<std::string>& frames);
  void set_device(int device, uint64_t capacity, const std::string& name);
  // Writes the file (which must not exist: O_EXCL). False with *error on failure.
  bool write(const std::string& path, std::string* error);

 private:
  void blob(trace::Op op, uint64_t id, const void* data, size_t len);
  trace::Header header_;
  std::vector<trace::Record> records_;
  std::map<std::string, uint64_t> strings_;
  std::map<std::vector<uint64_t>, uint32_t> stacks_;
  std::map<std::string, uint64_t> frames_;  // frame text -> tagged pc
};

// Trace -> formats. *note (when given) says, for the user, what the output lacks when the trace
// is not whole (killed, damaged, records dropped, a bounded trace's middle); empty otherwise.
bool trace_to_snapshot(const std::string& trace_path, std::string* pickle, std::string* error,
                       std::string* note = nullptr);
// RMM writes one log per device; device -1 = the only device that has allocations (an error
// naming them when there are several). A device with no allocation and no failed one is an error
// naming those that have them.
bool trace_to_rmm_csv(const std::string& trace_path, int device, std::string* csv,
                      std::string* error, std::string* note = nullptr);

// Formats -> trace. `source` (the file name) goes into the header's command line.
bool snapshot_to_trace(std::string_view pickle, const std::string& source, TraceImage* out,
                       std::string* error);
bool rmm_csv_to_trace(std::string_view csv, const std::string& source, TraceImage* out,
                      std::string* error);

// The one place `gpumem report|replay` meet foreign files: every path that is a file holding a
// PyTorch snapshot or an RMM CSV is converted into a gpumem trace in a temporary folder and the
// path replaced by that trace's; gpumem traces, directories and anything else are left as they
// are. The temporary traces go when this object does.
class ForeignInputs {
 public:
  ForeignInputs() = default;
  ~ForeignInputs();
  ForeignInputs(const ForeignInputs&) = delete;
  ForeignInputs& operator=(const ForeignInputs&) = delete;
  // False with *error (one line: the file, the format it looked like, where it broke, what to do)
  // when a foreign file cannot be read.
  bool convert(std::vector<std::string>* paths, std::string* error);
  // The file the user named, for a trace convert() made from it; any other path as it is. Reports
  // name the snapshot or log, not the temporary trace, which is gone once they are written.
  std::string original(const std::string& path) const;

 private:
  std::string dir_;
  std::vector<std::string> made_;
  std::vector<std::string> originals_;  // made_[i] is the trace of originals_[i]
};

}  // namespace gpumem::formats
