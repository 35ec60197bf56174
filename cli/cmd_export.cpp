// `gpumem export TRACE (--pytorch-snapshot OUT.pickle | --rmm-csv OUT.csv) [--device N]`: a gpumem
// trace in the formats other tools read: PyTorch's memory_viz and RMM's replay benchmark.
// docs/formats.md.

#include <cstdio>
#include <fstream>

#include "command.h"
#include "gpumem/formats/convert.h"
#include "gpumem/same_file.h"
#include "gpumem/visible_text.h"

namespace {

struct ExportOptions {
  std::string trace;
  std::string snapshot_path;
  std::string csv_path;
  int device = -1;
};

// "-" is stdout, as for every other command's outputs (the pickle is binary: pipe it).
bool write_out(const std::string& path, const std::string& bytes) {
  if (path == "-") {
    const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), stdout) == bytes.size() &&
                    std::fflush(stdout) == 0;
    if (!ok) std::fprintf(stderr, "gpumem export: cannot write to stdout\n");
    return ok;
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  out.close();
  if (!out)
    std::fprintf(stderr,
                 "gpumem export: cannot write %s; check that its directory exists and is "
                 "writable\n",
                 gpumem::visible(path).c_str());
  return static_cast<bool>(out);
}

int export_main(const ExportOptions& o) {
  if (o.snapshot_path.empty() == o.csv_path.empty()) {
    std::fprintf(stderr,
                 "gpumem export: name one output: --pytorch-snapshot OUT.pickle or --rmm-csv "
                 "OUT.csv\n");
    return 2;
  }
  const std::string& out = o.snapshot_path.empty() ? o.csv_path : o.snapshot_path;
  if (gpumem::output_is_an_input(out, {o.trace})) {
    std::fprintf(stderr,
                 "gpumem export: the output %s is the trace itself, which writing it would "
                 "replace; choose another output path\n",
                 gpumem::visible(out).c_str());
    return 2;
  }
  std::string bytes, error, note;
  const bool ok = o.snapshot_path.empty()
                      ? gpumem::formats::trace_to_rmm_csv(o.trace, o.device, &bytes, &error, &note)
                      : gpumem::formats::trace_to_snapshot(o.trace, &bytes, &error, &note);
  if (!ok) {
    const auto f = gpumem::formats::detect_file_format(o.trace);
    if (f == gpumem::formats::InputFormat::pytorch_snapshot ||
        f == gpumem::formats::InputFormat::rmm_csv)
      error = "'" + o.trace + "' is a " + gpumem::formats::format_name(f) +
              ", not a gpumem trace: export converts gpumem traces; `gpumem report` and "
              "`gpumem replay` read this file as it is";
    std::fprintf(stderr, "gpumem export: %s\n", gpumem::visible(error).c_str());
    return 1;
  }
  if (!write_out(out, bytes)) return 1;
  if (!note.empty())
    std::fprintf(stderr, "gpumem export: note: %s\n", gpumem::visible(note).c_str());
  return 0;
}

void register_export(CLI::App& app, std::function<int()>* run) {
  auto o = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export",
      "Write a trace as a PyTorch memory snapshot (for pytorch.org/memory_viz) or an RMM "
      "logging-adaptor CSV (for RMM's REPLAY_BENCHMARK)");
  cmd->add_option("trace", o->trace, "a trace file written by `gpumem run`")->required();
  cmd->add_option("--pytorch-snapshot", o->snapshot_path,
                  "write the snapshot pickle (torch.cuda.memory._snapshot()'s dict) here; - = "
                  "stdout");
  cmd->add_option("--rmm-csv", o->csv_path,
                  "write the CSV (Thread,Time,Action,Pointer,Size,Stream) here; - = stdout");
  cmd->add_option("--device", o->device,
                  "with --rmm-csv: the device to log (RMM writes one log per device; default: "
                  "the only device with allocations)")
      ->check(CLI::Range(0, 63));
  cmd->callback([run, o] { *run = [o] { return export_main(*o); }; });
}

GPUMEM_COMMAND(register_export);

}  // namespace
