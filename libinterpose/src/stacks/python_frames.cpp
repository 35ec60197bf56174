// See python_frames.h; the offsets are in python_layouts.h.
#include "python_frames.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "python_layouts.h"
#include "real.h"

namespace gpumem::stacks::python {
namespace {

constexpr int kMaxWalk = 4096;  // a frame chain longer than this is not a chain

using GetThreadState = void* (*)();
using IsInitialized = int (*)();
using Addr2Line = int (*)(void* code, int byte_offset);

struct Interpreter {
  RuntimeInfo info;
  const Layout* layout = nullptr;
  GetThreadState thread_state = nullptr;
  IsInitialized is_initialized = nullptr;
  Addr2Line addr2line = nullptr;
  const void* code_type = nullptr;
  const void* unicode_type = nullptr;
};

Interpreter g_interpreter;
std::atomic<bool> g_detected{false};
constinit std::mutex g_detect_mutex;

template <class T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
const char* load_ptr(const char* p) {
  return load<const char*>(p);
}

void detect(Interpreter* in) {
  auto sym = [](const char* name) { return real_dlsym(RTLD_DEFAULT, name); };
  const auto* version = static_cast<const unsigned long*>(sym("Py_Version"));
  in->thread_state = reinterpret_cast<GetThreadState>(sym("PyGILState_GetThisThreadState"));
  if (version == nullptr || in->thread_state == nullptr) {
    in->info.state = in->thread_state == nullptr ? State::absent : State::unsupported;
    in->info.reason = in->thread_state == nullptr
                          ? "no Python interpreter in the process"
                          : "Python older than 3.11 (no Py_Version); supported: 3.11, 3.12";
    return;
  }
  in->info.major = static_cast<unsigned>((*version >> 24) & 0xff);
  in->info.minor = static_cast<unsigned>((*version >> 16) & 0xff);
  in->info.micro = static_cast<unsigned>((*version >> 8) & 0xff);
  in->info.state = State::unsupported;
  in->layout = layout_for(in->info.major, in->info.minor);
  if (in->layout == nullptr) {
    in->info.reason = "this Python version's frame layout is not known; supported: 3.11, 3.12";
    return;
  }
  in->addr2line = reinterpret_cast<Addr2Line>(sym("PyCode_Addr2Line"));
  in->is_initialized = reinterpret_cast<IsInitialized>(sym("Py_IsInitialized"));
  in->code_type = sym("PyCode_Type");
  in->unicode_type = sym("PyUnicode_Type");
  if (in->addr2line == nullptr || in->is_initialized == nullptr || in->code_type == nullptr ||
      in->unicode_type == nullptr) {
    in->info.reason =
        "the interpreter does not export PyCode_Addr2Line, Py_IsInitialized, PyCode_Type, "
        "PyUnicode_Type";
    return;
  }
  in->info.state = State::supported;
}

const Interpreter* supported() {
  const RuntimeInfo& info = runtime();
  return info.state == State::supported ? &g_interpreter : nullptr;
}

// UTF-8 of a str object, cut to fit; "?" for anything that is not a compact str.
void copy_utf8(const Interpreter& in, const char* s, char* out, size_t len) {
  if (len == 0) return;
  out[0] = '\0';
  auto put = [&](const char* text, size_t n) {
    n = n < len - 1 ? n : len - 1;
    std::memcpy(out, text, n);
    out[n] = '\0';
  };
  if (s == nullptr || load_ptr(s + kObType) != in.unicode_type) return put("?", 1);
  const Layout& l = *in.layout;
  const auto length = load<int64_t>(s + kUnicodeLength);
  const auto state = load<uint32_t>(s + kUnicodeState);
  const unsigned kind = (state >> 2) & 7;
  const bool compact = ((state >> 5) & 1) != 0;
  const bool ascii = ((state >> 6) & 1) != 0;
  if (!compact || length < 0) return put("?", 1);
  if (ascii) return put(s + l.ascii_size, static_cast<size_t>(length));
  if (const char* utf8 = load_ptr(s + l.compact_utf8); utf8 != nullptr)
    return put(utf8, static_cast<size_t>(load<int64_t>(s + l.compact_utf8_length)));
  // Encode the code points ourselves (no Python call: the GIL is not ours).
  const char* data = s + l.compact_size;
  size_t n = 0;
  for (int64_t i = 0; i < length; ++i) {
    uint32_t c = kind == 1   ? load<uint8_t>(data + i)
                 : kind == 2 ? load<uint16_t>(data + 2 * i)
                             : load<uint32_t>(data + 4 * i);
    char enc[4];
    size_t k = 0;
    if (c < 0x80) {
      enc[k++] = static_cast<char>(c);
    } else if (c < 0x800) {
      enc[k++] = static_cast<char>(0xC0 | (c >> 6));
      enc[k++] = static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      enc[k++] = static_cast<char>(0xE0 | (c >> 12));
      enc[k++] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      enc[k++] = static_cast<char>(0x80 | (c & 0x3F));
    } else {
      enc[k++] = static_cast<char>(0xF0 | ((c >> 18) & 0x07));
      enc[k++] = static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      enc[k++] = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      enc[k++] = static_cast<char>(0x80 | (c & 0x3F));
    }
    if (n + k >= len) break;
    std::memcpy(out + n, enc, k);
    n += k;
  }
  out[n] = '\0';
}

}  // namespace

const RuntimeInfo& runtime() {
  if (!g_detected.load(std::memory_order_acquire)) {
    std::lock_guard lock(g_detect_mutex);
    if (!g_detected.load(std::memory_order_relaxed)) {
      detect(&g_interpreter);
      g_detected.store(true, std::memory_order_release);
    }
  }
  return g_interpreter.info;
}

int walk(Frame* out, int max) {
  const Interpreter* in = supported();
  if (in == nullptr) return -1;
  const Layout& l = *in->layout;
  // Before the interpreter starts or once it is finalizing (an allocation from an exit handler),
  // thread states are not there to read: no frames.
  if (in->is_initialized() == 0) return 0;
  // The thread state bound to this thread, whether or not it holds the GIL (a TSS read).
  const auto* tstate = static_cast<const char*>(in->thread_state());
  if (tstate == nullptr) return 0;
  const char* cframe = load_ptr(tstate + l.tstate_cframe);
  if (cframe == nullptr) return 0;
  int n = 0;
  const char* f = load_ptr(cframe + l.cframe_current_frame);
  for (int steps = 0; f != nullptr && n < max && steps < kMaxWalk;
       ++steps, f = load_ptr(f + l.frame_previous)) {
    if (l.cstack_owner >= 0 && load<char>(f + l.frame_owner) == l.cstack_owner) continue;
    const char* code = load_ptr(f + l.frame_code);
    // Anything but a code object means the layout is not what we think: stop, record nothing.
    if (code == nullptr || load_ptr(code + kObType) != in->code_type) break;
    const char* instr = load_ptr(f + l.frame_instr);
    const ptrdiff_t offset = instr - (code + l.code_adaptive);
    out[n].code = reinterpret_cast<uintptr_t>(code);
    // A frame that has not started yet points one unit before its code: the function's first line.
    out[n].offset = offset < 0 || offset > INT32_MAX ? -1 : static_cast<int32_t>(offset);
    ++n;
  }
  return n;
}

void describe(const Frame& frame, char* buf, size_t len) {
  const Interpreter* in = supported();
  if (in == nullptr || len == 0) {
    if (len != 0) buf[0] = '\0';
    return;
  }
  const auto* code = reinterpret_cast<const char*>(frame.code);
  const int line = in->addr2line(const_cast<char*>(code), frame.offset);
  char file[1024], name[512];
  copy_utf8(*in, load_ptr(code + in->layout->code_filename), file, sizeof file);
  copy_utf8(*in, load_ptr(code + in->layout->code_qualname), name, sizeof name);
  std::snprintf(buf, len, "%s (%s:%d)", name, file, line);
}

}  // namespace gpumem::stacks::python
