// Exit-time symbolisation: turns the return addresses of the stack records already in the trace
// into Op::symbol records, so a trace is readable on another machine without the binaries.
// Runs once at exit; it allocates freely.
#include <cxxabi.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include "trace_writer.h"

namespace gpumem {
namespace {

using trace::Record;

// "function (module+0xoff)", with "??" for what dladdr cannot name.
std::string describe(uint64_t pc) {
  Dl_info info{};
  // A return address points after the call; pc - 1 is inside the calling function.
  if (pc == 0 || dladdr(reinterpret_cast<void*>(pc - 1), &info) == 0) {
    char buf[48];
    std::snprintf(buf, sizeof(buf), "?? (??+0x%llx)", static_cast<unsigned long long>(pc));
    return buf;
  }
  std::string function = "??";
  if (info.dli_sname != nullptr) {
    int status = 0;
    char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    function = (status == 0 && demangled != nullptr) ? demangled : info.dli_sname;
    std::free(demangled);
  }
  const char* module = info.dli_fname != nullptr ? info.dli_fname : "??";
  if (const char* slash = std::strrchr(module, '/')) module = slash + 1;
  const uint64_t base = reinterpret_cast<uint64_t>(info.dli_fbase);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "+0x%llx)", static_cast<unsigned long long>(pc - base));
  return function + " (" + module + buf;
}

}  // namespace

size_t TraceWriter::write_symbols() {
  const char* base = base_.load(std::memory_order_acquire);
  if (base == nullptr) return 0;
  const uint64_t end = std::min(cursor_.load(std::memory_order_acquire),
                                file_bytes_.load(std::memory_order_acquire));
  // Collect the addresses of every committed stack record, minus those already symbolised.
  std::unordered_set<uint64_t> done;
  std::vector<uint64_t> todo;
  std::unordered_set<uint64_t> pcs;
  for (uint64_t off = trace::kHeaderSize; off + trace::kRecordSize <= end;
       off += trace::kRecordSize) {
    const auto* r = reinterpret_cast<const Record*>(base + off);
    const uint32_t word =
        std::atomic_ref<const uint32_t>(r->commit).load(std::memory_order_acquire);
    if (word != trace::kCommitted) continue;
    if (r->op == static_cast<uint16_t>(trace::Op::symbol)) done.insert(r->address);
    if (r->op != static_cast<uint16_t>(trace::Op::stack)) continue;
    const uint64_t slots = r->address;
    if (r->bytes > slots * trace::kBlobBytesPerSlot || off + (1 + slots) * trace::kRecordSize > end)
      continue;
    std::vector<char> payload(slots * trace::kBlobBytesPerSlot);
    for (uint64_t i = 0; i < slots; ++i)
      std::memcpy(payload.data() + i * trace::kBlobBytesPerSlot,
                  base + off + (i + 1) * trace::kRecordSize, trace::kBlobBytesPerSlot);
    for (uint64_t i = 0; i + sizeof(uint64_t) <= r->bytes; i += sizeof(uint64_t)) {
      uint64_t pc;
      std::memcpy(&pc, payload.data() + i, sizeof(pc));
      if (pcs.insert(pc).second) todo.push_back(pc);
    }
    off += slots * trace::kRecordSize;
  }
  size_t written = 0;
  for (uint64_t pc : todo) {
    if (done.count(pc) != 0) continue;
    Record r{};
    r.op = static_cast<uint16_t>(trace::Op::symbol);
    r.api = static_cast<uint16_t>(trace::Api::gpumem);
    r.device = -1;
    r.address = pc;
    r.aux = intern_string(describe(pc).c_str());
    append(r);
    ++written;
  }
  return written;
}

}  // namespace gpumem
