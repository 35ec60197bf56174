// Detection by content and the conversion of foreign inputs into temporary gpumem traces, shared
// by `gpumem report` and `gpumem replay`.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "gpumem/formats/convert.h"
#include "gpumem/formats/pickle.h"

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

ForeignInputs::~ForeignInputs() {
  for (const std::string& p : made_) ::unlink(p.c_str());
  if (!dir_.empty()) ::rmdir(dir_.c_str());
}

bool ForeignInputs::convert(std::vector<std::string>* paths, std::string* error) {
  for (std::string& path : *paths) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    std::ifstream in(path, std::ios::binary);
    char head[256] = {};
    in.read(head, sizeof head);
    const InputFormat f = detect_format(std::string_view(head, static_cast<size_t>(in.gcount())));
    if (f != InputFormat::pytorch_snapshot && f != InputFormat::rmm_csv) continue;
    in.clear();
    in.seekg(0);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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
    path = out;
  }
  return true;
}

}  // namespace gpumem::formats
