// Exit-time symbolisation: turns the return addresses of the stack records already in the trace
// into Op::symbol records, so a trace is readable on another machine without the binaries.
// Runs once at exit; it allocates freely (and may read the modules' files from disk).
#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "elf_symbols.h"
#include "gpumem/trace/writer.h"

namespace gpumem {
namespace {

using trace::Record;

// Names code addresses: dladdr first (cheap, knows exported symbols), then the module's own ELF
// symbol table from disk for what dladdr cannot name, parsed once per module and cached.
class Symbolizer {
 public:
  // "function (module+0xoff)", with "??" for what neither can name.
  std::string describe(uint64_t pc) {
    // A return address points after the call; pc - 1 is inside the calling function.
    const uint64_t addr = pc - 1;
    Dl_info info{};
    void* dynamic_entry = nullptr;  // the dynamic symbol dladdr chose (an Elf64_Sym), if any
    if (pc == 0 ||
        dladdr1(reinterpret_cast<void*>(addr), &info, &dynamic_entry, RTLD_DL_SYMENT) == 0) {
      char buf[48];
      std::snprintf(buf, sizeof(buf), "?? (??+0x%llx)", static_cast<unsigned long long>(pc));
      return buf;
    }
    const auto* dynamic = static_cast<const Elf64_Sym*>(dynamic_entry);
    const uint64_t base = reinterpret_cast<uint64_t>(info.dli_fbase);
    std::string function = "??";
    const uint64_t saddr = reinterpret_cast<uint64_t>(info.dli_saddr);
    // dladdr may name the nearest exported symbol below a static function: trust it only when
    // the address lies inside that symbol's size.
    if (info.dli_sname != nullptr && dynamic != nullptr && addr - saddr < dynamic->st_size) {
      function = demangle(info.dli_sname);
    } else if (const ElfSymbols::Function* f = table_for(addr).find_runtime(addr, base)) {
      function = demangle(f->name.c_str());
    } else if (info.dli_sname != nullptr) {
      function = demangle(info.dli_sname);  // better than nothing
    }
    const char* module = info.dli_fname != nullptr ? info.dli_fname : "??";
    if (const char* slash = std::strrchr(module, '/')) module = slash + 1;
    char buf[64];
    std::snprintf(buf, sizeof(buf), "+0x%llx)", static_cast<unsigned long long>(pc - base));
    return function + " (" + module + buf;
  }

 private:
  // The symbol table of the module holding `addr`: the file from the loader's link map, or
  // /proc/self/exe for the main program (whose dli_fname is only argv[0]).
  const ElfSymbols& table_for(uint64_t addr) {
    Dl_info info{};
    link_map* map = nullptr;
    if (dladdr1(reinterpret_cast<void*>(addr), &info, reinterpret_cast<void**>(&map),
                RTLD_DL_LINKMAP) == 0 ||
        map == nullptr)
      return none_;
    const std::string file =
        (map->l_name == nullptr || map->l_name[0] == '\0') ? "/proc/self/exe" : map->l_name;
    auto it = tables_.find(file);
    if (it == tables_.end()) it = tables_.emplace(file, ElfSymbols::load(file.c_str())).first;
    return it->second;
  }

  std::unordered_map<std::string, ElfSymbols> tables_;
  ElfSymbols none_;
};

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
  Symbolizer symbolizer;
  for (uint64_t pc : todo) {
    if (done.count(pc) != 0) continue;
    Record r{};
    r.op = static_cast<uint16_t>(trace::Op::symbol);
    r.api = static_cast<uint16_t>(trace::Api::gpumem);
    r.device = -1;
    r.address = pc;
    r.aux = intern_string(symbolizer.describe(pc).c_str());
    append(r);
    ++written;
  }
  return written;
}

}  // namespace gpumem
