// `gpumem dump TRACE`: the trace as JSON lines, the format's reference reader for people and
// scripts. Line 1 is {"header": {...}}, then one object per record in file order, then
// {"summary": {...}}. Output format: docs/trace-format.md ("gpumem dump").
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>

#include "command.h"
#include "gpumem/formats/convert.h"
#include "gpumem/trace/reader.h"
#include "gpumem/visible_text.h"

namespace gpumem::cli {
namespace {

using json = nlohmann::ordered_json;  // keys in the documented order
namespace tr = gpumem::trace;

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
  return buf;
}

json header_json(const tr::Reader& reader) {
  const tr::Header& h = reader.header();
  json devices = json::array();
  for (int i = 0; i < tr::kMaxDevices; ++i) {
    const tr::DeviceInfo& d = h.devices[i];
    if (d.present == 0) continue;
    devices.push_back({{"device", i},
                       {"name", d.name},
                       {"capacity", d.capacity_bytes},
                       {"limit", d.limit_bytes}});
  }
  return {
      {"file", reader.path()},
      {"file_size", reader.file_size()},
      {"magic", std::string(h.magic, sizeof(h.magic))},
      {"version", h.version},
      {"header_size", h.header_size},
      {"record_size", h.record_size},
      {"pid", h.pid},
      {"parent_pid", h.parent_pid},
      {"rank", h.rank},
      {"flags", h.flags},
      {"stacks", (h.flags & tr::kHeaderStacks) != 0},
      {"simulated", (h.flags & tr::kHeaderSimulated) != 0},
      {"closed", (h.flags & tr::kHeaderClosed) != 0},
      {"clock_base_ns", h.clock_base_ns},
      {"start_unix_ns", h.start_unix_ns},
      {"end_offset", h.end_offset},
      {"records_dropped", h.records_dropped},
      {"device_count", h.device_count},
      {"host", h.host},
      {"pool", h.pool},
      {"command", h.command},
      {"config", h.config},
      {"devices", devices},
  };
}

const char* lookup_name(uint16_t flags) {
  switch ((flags & tr::kFlagLookupMask) >> tr::kFlagLookupShift) {
    case static_cast<uint16_t>(tr::Lookup::direct):
      return "direct";
    case static_cast<uint16_t>(tr::Lookup::dlsym):
      return "dlsym";
    case static_cast<uint16_t>(tr::Lookup::resolver):
      return "resolver";
  }
  return "unknown";
}

const char* anomaly_name(uint64_t kind) {
  switch (static_cast<tr::AnomalyKind>(kind)) {
    case tr::AnomalyKind::free_unknown:
      return "free_unknown";
    case tr::AnomalyKind::double_free:
      return "double_free";
    case tr::AnomalyKind::null_out_param:
      return "null_out_param";
    case tr::AnomalyKind::none:
      break;
  }
  return "unknown";
}

// Strings seen so far (the writer always writes a string before the records that name it).
using StringTable = std::unordered_map<uint64_t, std::string>;

json record_json(const tr::Event& ev, StringTable* strings) {
  const tr::Record& r = ev.rec;
  const auto op = static_cast<tr::Op>(r.op);
  json j = {
      {"op", tr::op_name(op)},
      {"api", tr::api_name(static_cast<tr::Api>(r.api))},
      {"device", r.device},
      {"stream", hex(r.stream)},
      {"tid", r.tid},
      {"t_ns", r.t_ns},
      {"address", hex(r.address)},
      {"bytes", r.bytes},
      {"result", r.result},
      {"kind", tr::mem_kind_name(tr::mem_kind(r))},
      {"lookup", lookup_name(r.flags)},
      {"async", (r.flags & tr::kFlagAsync) != 0},
      {"pooled", (r.flags & tr::kFlagPooled) != 0},
      {"site", r.site},
      {"aux", r.aux},
  };
  if (std::string(tr::op_name(op)) == "invalid") j["op_code"] = r.op;  // from a newer writer
  auto text_of = [&](uint64_t id) -> json {
    auto it = strings->find(id);
    return it != strings->end() ? json(it->second) : json(nullptr);
  };
  switch (op) {
    case tr::Op::string:
      (*strings)[r.aux] = std::string(ev.payload);
      j["text"] = std::string(ev.payload);
      break;
    case tr::Op::stack: {
      json frames = json::array();
      for (size_t i = 0; i + sizeof(uint64_t) <= ev.payload.size(); i += sizeof(uint64_t)) {
        uint64_t pc;
        std::memcpy(&pc, ev.payload.data() + i, sizeof(pc));
        frames.push_back(hex(pc));
      }
      j["frames"] = std::move(frames);
      break;
    }
    case tr::Op::mark_begin:
    case tr::Op::mark_end:
    case tr::Op::mark:
    case tr::Op::symbol:
      j["text"] = text_of(r.aux);
      break;
    case tr::Op::anomaly:
      j["anomaly"] = anomaly_name(r.aux);
      break;
    case tr::Op::oom:
      j["requested"] = r.bytes;
      j["allocated"] = r.address;
      j["reserved"] = r.stream;
      j["largest_free_block"] = r.aux;
      j["by_gpumem"] = (r.flags & tr::kFlagOomByGpumem) != 0;
      break;
    default:
      break;
  }
  return j;
}

// A bounded trace's dropped middle (null when nothing was dropped): counts per device and op of
// the records the digest did not keep, so a script can total the whole run.
json dropped_json(const tr::DroppedSpan* d) {
  if (d == nullptr) return nullptr;
  json omitted = json::array();
  for (const auto& row : d->omitted)
    omitted.push_back({{"device", row.device},
                       {"op", tr::op_name(static_cast<tr::Op>(row.op))},
                       {"aux", row.aux},
                       {"count", row.count},
                       {"bytes", row.bytes}});
  return {{"records", d->records},         {"kept", d->kept},
          {"first_t_ns", d->first_t_ns},   {"last_t_ns", d->last_t_ns},
          {"first_chunk", d->first_chunk}, {"next_chunk", d->next_chunk},
          {"omitted", std::move(omitted)}};
}

void print_line(const json& j) {
  // Payload text comes from the file: replace invalid UTF-8 rather than fail.
  const std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
}

int dump(const std::string& path) {
  std::string error;
  auto reader = tr::Reader::open(path, &error);
  if (!reader) {
    const formats::InputFormat f = formats::detect_file_format(path);
    if (f == formats::InputFormat::pytorch_snapshot || f == formats::InputFormat::rmm_csv)
      error = "'" + path + "' is a " + formats::format_name(f) +
              ", not a gpumem trace: dump prints gpumem traces; `gpumem report` and `gpumem "
              "replay` read this file as it is";
    std::fprintf(stderr, "gpumem dump: %s\n", visible(error).c_str());
    return 1;
  }
  print_line({{"header", header_json(*reader)}});
  StringTable strings;
  tr::Event ev;
  while (reader->next(&ev)) print_line(record_json(ev, &strings));
  const tr::ReadStats& stats = reader->stats();
  print_line({{"summary",
               {{"records", stats.records},
                {"torn", stats.torn},
                {"abandoned", stats.abandoned},
                {"dropped", stats.dropped},
                {"truncated", stats.truncated},
                {"reason", stats.reason},
                {"bounded", dropped_json(reader->dropped())}}}});
  if (std::fflush(stdout) != 0) {
    std::fprintf(stderr, "gpumem dump: could not write the output: %s\n", std::strerror(errno));
    return 1;
  }
  if (const tr::DroppedSpan* d = reader->dropped())
    std::fprintf(stderr,
                 "gpumem dump: note: '%s' is bounded (GPUMEM_TRACE_MAX): %llu records of its "
                 "middle were dropped; %llu of them, kept in its digest, were printed between "
                 "its beginning and its newest records\n",
                 visible(path).c_str(), static_cast<unsigned long long>(d->records),
                 static_cast<unsigned long long>(d->kept));
  if (stats.truncated)
    std::fprintf(stderr,
                 "gpumem dump: note: '%s' is truncated (%s); every complete record before the "
                 "damage was printed\n",
                 visible(path).c_str(), visible(stats.reason).c_str());
  return 0;
}

void register_dump(CLI::App& app, std::function<int()>* run) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "dump", "Print a trace as JSON lines: a header object, one object per record, a summary");
  cmd->add_option("trace", *path, "the trace file written by gpumem run")->required();
  cmd->callback([run, path] { *run = [path] { return dump(*path); }; });
}

}  // namespace

GPUMEM_COMMAND(register_dump);

}  // namespace gpumem::cli
