// gpumem trace <-> RAPIDS RMM logging_resource_adaptor CSV: a header line
// "Thread,Time,Action,Pointer,Size,Stream", then one line per event, Action one of "allocate",
// "free", "allocate failure"; Time is the wall-clock time of day, HH:MM:SS.ffffff. One file per
// device (RMM names them <file>.dev<N>). docs/formats.md.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "gpumem/formats/convert.h"
#include "loaded_trace.h"

namespace gpumem::formats {

namespace {
using detail::LoadedTrace;
using trace::Op;
using trace::Record;

constexpr std::string_view kHeader = "Thread,Time,Action,Pointer,Size,Stream";
constexpr uint64_t kDayUs = 86'400'000'000ull;

std::string time_of_day(uint64_t unix_us) {
  const uint64_t us = unix_us % kDayUs;
  const uint64_t s = us / 1'000'000;
  return fmt::format("{:02}:{:02}:{:02}.{:06}", s / 3600, (s / 60) % 60, s % 60, us % 1'000'000);
}

std::string stream_text(uint64_t stream) {
  return stream == 0 ? std::string("0") : fmt::format("{:#x}", stream);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// Decimal, or hex with 0x; "(nil)" (glibc's %p of a null pointer) is 0.
bool parse_number(std::string_view s, uint64_t* v) {
  s = trim(s);
  if (s == "(nil)" || s == "nullptr") return *v = 0, true;
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v, base);
  return ec == std::errc() && end == s.data() + s.size();
}

// HH:MM:SS.ffffff (or HH:MM:SS:ffffff, an older RMM pattern) -> µs of the day.
bool parse_time(std::string_view s, uint64_t* us) {
  s = trim(s);
  uint64_t parts[4] = {};
  size_t digits[4] = {};
  int part = 0;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      if (digits[part] >= 9) return false;
      parts[part] = parts[part] * 10 + static_cast<uint64_t>(c - '0');
      ++digits[part];
    } else if ((c == ':' || c == '.') && part < 3 && digits[part] > 0) {
      ++part;
    } else {
      return false;
    }
  }
  if (part < 2 || parts[0] > 23 || parts[1] > 59 || parts[2] > 60) return false;
  uint64_t frac = 0;
  if (part == 3) {
    frac = parts[3];
    for (size_t d = digits[3]; d < 6; ++d) frac *= 10;
    for (size_t d = digits[3]; d > 6; --d) frac /= 10;
  }
  *us = ((parts[0] * 60 + parts[1]) * 60 + parts[2]) * 1'000'000 + frac;
  return true;
}

struct Row {
  uint64_t thread = 0, time_us = 0, pointer = 0, size = 0, stream = 0;
  int action = 0;  // 1 allocate, 2 free, 3 allocate failure
};

// The six fields of one line; false with *why when it is not a log line.
bool parse_row(std::string_view line, Row* row, std::string* why) {
  std::string_view f[6];
  size_t n = 0;
  while (n < 6) {
    const size_t comma = line.find(',');
    f[n++] = line.substr(0, comma);
    if (comma == std::string_view::npos) break;
    line.remove_prefix(comma + 1);
    if (n == 6) return *why = "more than six fields", false;
  }
  if (n != 6) return *why = fmt::format("{} field(s); a log line has six", n), false;
  const std::string_view action = trim(f[2]);
  row->action = action == "allocate"           ? 1
                : action == "free"             ? 2
                : action == "allocate failure" ? 3
                                               : 0;
  if (row->action == 0)
    return *why = fmt::format("action '{}' is not allocate, free or allocate failure",
                              std::string(action.substr(0, 40))),
           false;
  if (!parse_number(f[0], &row->thread)) return *why = "Thread is not a number", false;
  if (!parse_time(f[1], &row->time_us)) return *why = "Time is not HH:MM:SS.ffffff", false;
  if (!parse_number(f[3], &row->pointer)) return *why = "Pointer is not an address", false;
  if (!parse_number(f[4], &row->size)) return *why = "Size is not a number", false;
  if (!parse_number(f[5], &row->stream)) return *why = "Stream is not a number", false;
  return true;
}

}  // namespace

bool looks_like_rmm_csv(std::string_view head) {
  if (head.size() >= 3 && head.substr(0, 3) == "\xEF\xBB\xBF") head.remove_prefix(3);
  const std::string_view line = head.substr(0, head.find('\n'));
  if (trim(line).substr(0, kHeader.size()) == kHeader) return true;
  Row row;
  std::string why;
  return head.find('\n') != std::string_view::npos && parse_row(trim(line), &row, &why);
}

bool trace_to_rmm_csv(const std::string& trace_path, int device, std::string* csv,
                      std::string* error, std::string* note) {
  LoadedTrace t;
  if (!detail::load_trace(trace_path, &t, error)) return false;
  std::set<int> used, failed;
  for (const Record& r : t.records) {
    if (static_cast<Op>(r.op) == Op::alloc && detail::is_device_memory(r)) used.insert(r.device);
    if (static_cast<Op>(r.op) == Op::alloc_failed && detail::is_device_memory(r))
      failed.insert(r.device);
  }
  std::string list;
  for (int d : used) list += (list.empty() ? "" : ", ") + std::to_string(d);
  if (device < 0) {
    if (used.size() > 1) {
      *error = fmt::format(
          "'{}' has allocations on devices {}; RMM writes one log per device: "
          "choose one with --device",
          trace_path, list);
      return false;
    }
    device = used.empty() ? 0 : *used.begin();
  } else if (!used.empty() && used.count(device) == 0 && failed.count(device) == 0) {
    // An empty log would read as a device that allocated nothing, not as a wrong --device.
    *error = fmt::format(
        "'{}' has no allocation on device {}; it has allocations on device{} {}: choose "
        "{} with --device",
        trace_path, device, used.size() > 1 ? "s" : "", list,
        used.size() > 1 ? "one of them" : "it");
    return false;
  }
  if (note != nullptr) *note = detail::incomplete_note(t, trace_path, "log");
  std::set<std::pair<uint64_t, uint64_t>> cancelled;
  for (const Record& r : t.records)
    if (static_cast<Op>(r.op) == Op::free_failed) cancelled.insert({r.aux, r.address});
  std::map<uint64_t, uint64_t> live;  // address -> bytes
  std::string out(kHeader);
  out += '\n';
  for (const Record& r : t.records) {
    if (r.device != device) continue;
    const auto op = static_cast<Op>(r.op);
    if (op == Op::alloc && detail::is_device_memory(r)) {
      live[r.address] = r.bytes;
      out += fmt::format("{},{},allocate,{:#x},{},{}\n", r.tid, time_of_day(t.unix_us(r)),
                         r.address, r.bytes, stream_text(r.stream));
    } else if (op == Op::free && !cancelled.count({r.t_ns, r.address})) {
      auto it = live.find(r.address);
      if (it == live.end()) continue;
      out += fmt::format("{},{},free,{:#x},{},{}\n", r.tid, time_of_day(t.unix_us(r)), r.address,
                         it->second, stream_text(r.stream));
      live.erase(it);
    } else if (op == Op::alloc_failed && detail::is_device_memory(r)) {
      out += fmt::format("{},{},allocate failure,0x0,{},{}\n", r.tid, time_of_day(t.unix_us(r)),
                         r.bytes, stream_text(r.stream));
    }
  }
  *csv = std::move(out);
  return true;
}

bool rmm_csv_to_trace(std::string_view csv, const std::string& source, TraceImage* out,
                      std::string* error) {
  if (csv.size() >= 3 && csv.substr(0, 3) == "\xEF\xBB\xBF") csv.remove_prefix(3);
  trace::Header& h = out->header();
  std::snprintf(h.command, sizeof h.command, "converted from the RMM log %s", source.c_str());
  out->set_device(0, 0, "RMM log device");
  h.device_count = 1;
  size_t line_no = 0, offset = 0;
  bool first_row = true;
  uint64_t first_us = 0, last_us = 0, day = 0;
  while (offset < csv.size()) {
    const size_t nl = csv.find('\n', offset);
    const std::string_view raw =
        csv.substr(offset, nl == std::string_view::npos ? csv.size() - offset : nl - offset);
    const size_t at = offset;
    offset = nl == std::string_view::npos ? csv.size() : nl + 1;
    ++line_no;
    const std::string_view line = trim(raw);
    if (line.empty() || (line_no == 1 && line.substr(0, kHeader.size()) == kHeader)) continue;
    Row row;
    std::string why;
    if (!parse_row(line, &row, &why)) {
      *error = fmt::format("line {} (byte {}): {}", line_no, at, why);
      return false;
    }
    if (row.action == 1 && row.size > detail::kMaxDeviceBytes) {
      *error = fmt::format(
          "line {} (byte {}): Size {} is more than a GPU can address ({}); the "
          "line is damaged",
          line_no, at, row.size, detail::kMaxDeviceBytes);
      return false;
    }
    // Time of day only: a step back of more than 12 hours is the next day.
    if (!first_row && row.time_us + kDayUs / 2 < last_us) day += kDayUs;
    last_us = row.time_us;
    const uint64_t us = row.time_us + day;
    if (first_row) {
      first_us = us;
      first_row = false;
    }
    const uint64_t t_ns = h.clock_base_ns + (us >= first_us ? us - first_us : 0) * 1000;
    Record& r = out->add(row.action == 1   ? Op::alloc
                         : row.action == 2 ? Op::free
                                           : Op::alloc_failed,
                         t_ns, 0);
    r.api = static_cast<uint16_t>(row.action == 2 ? trace::Api::cudaFree : trace::Api::cudaMalloc);
    r.address = row.action == 3 ? 0 : row.pointer;
    r.bytes = row.size;
    r.stream = row.stream;
    r.tid = static_cast<uint32_t>(row.thread);
    if (row.action == 3) r.result = 2;  // cudaErrorMemoryAllocation
  }
  h.start_unix_ns = first_us * 1000;  // a time of day: the date is not in the log
  return true;
}

}  // namespace gpumem::formats
