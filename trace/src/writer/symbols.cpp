// Exit-time symbolisation: turns the return addresses of the stacks interned so far (kept aside by
// remember_pcs) into Op::symbol records, so a trace is readable on another machine without the
// binaries. Runs once at exit; it allocates freely (and may read the modules' files from disk).
#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
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
  constexpr uint64_t kNamed = trace::kPythonFrameTag;  // as remember_pcs() marks a named address
  if (base_.load(std::memory_order_acquire) == nullptr || pcs_ == nullptr) return 0;
  size_t written = 0;
  Symbolizer symbolizer;
  for (size_t i = 0; i < kPcTableSize; ++i) {
    const uint64_t pc = pcs_[i].load(std::memory_order_relaxed);
    if (pc == 0 || (pc & kNamed) != 0) continue;
    Record r{};
    r.op = static_cast<uint16_t>(trace::Op::symbol);
    r.api = static_cast<uint16_t>(trace::Api::gpumem);
    r.device = -1;
    r.address = pc;
    r.aux = intern_string(symbolizer.describe(pc).c_str());
    append(r);
    pcs_[i].store(pc | kNamed, std::memory_order_relaxed);
    ++written;
  }
  return written;
}

}  // namespace gpumem
