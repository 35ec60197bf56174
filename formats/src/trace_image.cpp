// TraceImage: a trace assembled in memory by the converters and written in one go, laid out
// exactly as the preload's writer lays it out (docs/trace-format.md).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "gpumem/formats/convert.h"

namespace gpumem::formats {

TraceImage::TraceImage() {
  std::memset(&header_, 0, sizeof header_);
  std::memcpy(header_.magic, trace::kMagic, sizeof header_.magic);
  header_.version = trace::kVersion;
  header_.header_size = trace::kHeaderSize;
  header_.record_size = trace::kRecordSize;
  header_.rank = -1;
  header_.flags = trace::kHeaderClosed;
  header_.clock_base_ns = 1'000'000'000;  // any base: times are kept relative to it
  std::snprintf(header_.pool, sizeof header_.pool, "none");
}

trace::Record& TraceImage::add(trace::Op op, uint64_t t_ns, int device) {
  trace::Record r{};
  r.t_ns = t_ns;
  r.op = static_cast<uint16_t>(op);
  r.device = static_cast<int16_t>(device);
  r.commit = trace::kCommitted;
  records_.push_back(r);
  return records_.back();
}

void TraceImage::blob(trace::Op op, uint64_t id, const void* data, size_t len) {
  const size_t slots = (len + trace::kBlobBytesPerSlot - 1) / trace::kBlobBytesPerSlot;
  const uint64_t t = records_.empty() ? header_.clock_base_ns : records_.back().t_ns;
  trace::Record& head = add(op, t, -1);
  head.api = static_cast<uint16_t>(trace::Api::gpumem);
  head.address = slots;
  head.bytes = len;
  head.aux = id;
  for (size_t i = 0; i < slots; ++i) {
    trace::Record c{};
    std::memcpy(&c, static_cast<const char*>(data) + i * trace::kBlobBytesPerSlot,
                std::min(trace::kBlobBytesPerSlot, len - i * trace::kBlobBytesPerSlot));
    c.commit = trace::kContinuation;
    records_.push_back(c);
  }
}

uint64_t TraceImage::intern_string(const std::string& text) {
  auto it = strings_.find(text);
  if (it != strings_.end()) return it->second;
  const uint64_t id = strings_.size() + 1;
  const std::string cut = text.substr(0, 65536);  // the writer's kMaxStringBytes
  blob(trace::Op::string, id, cut.data(), cut.size());
  strings_.emplace(text, id);
  return id;
}

uint32_t TraceImage::intern_python_stack(const std::vector<std::string>& frames) {
  if (frames.empty()) return 0;
  std::vector<uint64_t> pcs;
  pcs.reserve(frames.size());
  for (const std::string& f : frames) {
    auto it = frames_.find(f);
    if (it == frames_.end())
      it = frames_.emplace(f, trace::kPythonFrameTag | (frames_.size() + 1)).first;
    pcs.push_back(it->second);
  }
  auto it = stacks_.find(pcs);
  if (it != stacks_.end()) return it->second;
  const auto id = static_cast<uint32_t>(stacks_.size() + 1);
  blob(trace::Op::stack, id, pcs.data(), pcs.size() * sizeof(uint64_t));
  stacks_.emplace(std::move(pcs), id);
  header_.flags |= trace::kHeaderStacks;
  return id;
}

void TraceImage::set_device(int device, uint64_t capacity, const std::string& name) {
  if (device < 0 || device >= trace::kMaxDevices) return;
  trace::DeviceInfo& d = header_.devices[device];
  if (d.present) return;
  d.capacity_bytes = capacity;
  std::snprintf(d.name, sizeof d.name, "%s", name.c_str());
  d.present = 1;
  header_.device_count =
      std::max<uint32_t>(header_.device_count, static_cast<uint32_t>(device + 1));
}

bool TraceImage::write(const std::string& path, std::string* error) {
  // Symbols last, as the preload writes them at exit.
  const uint64_t t = records_.empty() ? header_.clock_base_ns : records_.back().t_ns;
  for (const auto& [text, pc] : frames_) {
    const uint64_t id = intern_string(text);
    trace::Record& s = add(trace::Op::symbol, t, -1);
    s.api = static_cast<uint16_t>(trace::Api::gpumem);
    s.address = pc;
    s.aux = id;
  }
  frames_.clear();
  header_.end_offset = trace::kHeaderSize + records_.size() * trace::kRecordSize;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = fmt::format(
        "cannot create '{}' ({}); choose a path that does not exist yet in a "
        "writable directory",
        path, std::strerror(errno));
    return false;
  }
  std::string head(trace::kHeaderSize, '\0');
  std::memcpy(head.data(), &header_, sizeof header_);
  auto put = [&](const void* data, size_t len) {
    const char* p = static_cast<const char*>(data);
    while (len > 0) {
      const ssize_t n = ::write(fd, p, len);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      p += n;
      len -= static_cast<size_t>(n);
    }
    return true;
  };
  const bool ok = put(head.data(), head.size()) &&
                  put(records_.data(), records_.size() * sizeof(trace::Record));
  const int saved = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    *error = fmt::format("cannot write '{}' ({}); free disk space or set TMPDIR to a larger volume",
                         path, std::strerror(saved));
  }
  return ok;
}

}  // namespace gpumem::formats
