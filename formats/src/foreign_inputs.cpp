// Detection by content and the conversion of foreign inputs into temporary gpumem traces, shared
// by `gpumem report` and `gpumem replay`.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "gpumem/formats/convert.h"
#include "gpumem/formats/pickle.h"
#include "gpumem/regular_file.h"

namespace gpumem::formats {

InputFormat detect_format(std::string_view head) {
  if (head.size() >= sizeof trace::kMagic &&
      std::memcmp(head.data(), trace::kMagic, sizeof trace::kMagic) == 0)
    return InputFormat::gpumem_trace;
  if (looks_like_pickle(head)) return InputFormat::pytorch_snapshot;
  if (looks_like_rmm_csv(head)) return InputFormat::rmm_csv;
  return InputFormat::unknown;
}

const char* format_name(InputFormat f) {
  switch (f) {
    case InputFormat::gpumem_trace:
      return "gpumem trace";
    case InputFormat::pytorch_snapshot:
      return "PyTorch memory snapshot (pickle)";
    case InputFormat::rmm_csv:
      return "RAPIDS RMM logging_resource_adaptor CSV";
    case InputFormat::unknown:
      break;
  }
  return "unknown format";
}

InputFormat detect_file_format(const std::string& path) {
  std::string why;
  const int fd = open_regular_file(path, &why);
  if (fd < 0) return InputFormat::unknown;
  char head[256];
  ssize_t got = -1;
  do got = ::pread(fd, head, sizeof head, 0);
  while (got < 0 && errno == EINTR);
  ::close(fd);
  return got > 0 ? detect_format(std::string_view(head, static_cast<size_t>(got)))
                 : InputFormat::unknown;
}

namespace {
// The whole file (`size` from fstat, a hint: a file that grows is read to its end).
bool read_all(int fd, uint64_t size, std::string* out) {
  out->resize(static_cast<size_t>(size));
  size_t got = 0;
  for (;;) {
    if (got == out->size()) out->resize(out->size() + 65536);
    const ssize_t n = ::read(fd, out->data() + got, out->size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out->resize(got);
  return true;
}
}  // namespace

ForeignInputs::~ForeignInputs() {
  for (const std::string& p : made_) ::unlink(p.c_str());
  if (!dir_.empty()) ::rmdir(dir_.c_str());
}

std::string ForeignInputs::original(const std::string& path) const {
  for (size_t i = 0; i < made_.size(); ++i)
    if (made_[i] == path) return originals_[i];
  return path;
}

bool ForeignInputs::convert(std::vector<std::string>* paths, std::string* error) {
  for (std::string& path : *paths) {
    // Opened without blocking and only when regular: anything else (a FIFO, a directory, a
    // missing file) is left for the trace reader, which refuses it with its own message.
    std::string not_regular;
    uint64_t size = 0;
    const int fd = open_regular_file(path, &not_regular, &size);
    if (fd < 0) continue;
    // The format from the first bytes; the whole file only for the formats converted here (a
    // gpumem trace, often gigabytes, is left to the streaming reader).
    char head[256];
    ssize_t got = -1;
    do got = ::pread(fd, head, sizeof head, 0);
    while (got < 0 && errno == EINTR);
    const InputFormat f = got > 0 ? detect_format(std::string_view(head, static_cast<size_t>(got)))
                                  : InputFormat::unknown;
    std::string bytes;
    const bool foreign = f == InputFormat::pytorch_snapshot || f == InputFormat::rmm_csv;
    const bool read_ok = got >= 0 && (!foreign || read_all(fd, size, &bytes));
    ::close(fd);
    if (!read_ok) {
      *error = fmt::format("cannot read '{}': {}; check the file", path, std::strerror(errno));
      return false;
    }
    if (!foreign) continue;
    TraceImage image;
    std::string why;
    const bool ok = f == InputFormat::pytorch_snapshot
                        ? snapshot_to_trace(bytes, path, &image, &why)
                        : rmm_csv_to_trace(bytes, path, &image, &why);
    if (!ok) {
      *error = fmt::format(
          "'{}' looks like a {} but cannot be read: {}; {}", path, format_name(f), why,
          f == InputFormat::pytorch_snapshot
              ? "pass a snapshot written by torch.cuda.memory._dump_snapshot, or a gpumem trace"
              : "pass a log written by RMM's logging_resource_adaptor, or a gpumem trace");
      return false;
    }
    if (dir_.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/gpumem-input-XXXXXX";
      if (::mkdtemp(templ.data()) == nullptr) {
        *error = fmt::format(
            "cannot create a temporary directory for the converted '{}' ({}); "
            "set TMPDIR to a writable directory",
            path, std::strerror(errno));
        return false;
      }
      dir_ = templ;
    }
    const std::string out = fmt::format("{}/{}-{}.trace", dir_, made_.size(),
                                        std::filesystem::path(path).filename().string());
    if (!image.write(out, error)) return false;
    made_.push_back(out);
    originals_.push_back(path);
    path = out;
  }
  return true;
}

}  // namespace gpumem::formats
