// Function names from an ELF file's own symbol table, for the addresses dladdr cannot name:
// dladdr sees only the dynamic symbols, so functions of an executable and static functions of a
// library come out as "??". Like heaptrack, read .symtab (falling back to .dynsym) from the file
// on disk. Exit path only: allocates freely; never used on the allocation hot path.
//
// Robustness: the file is untrusted input. A missing, stripped, truncated or corrupt file gives
// an empty table, never a crash: every offset and size is checked against the file size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gpumem {

class ElfSymbols {
 public:
  struct Function {
    uint64_t start;    // st_value: link-time virtual address
    uint64_t size;     // st_size, > 0
    std::string name;  // mangled, as in the string table
  };

  // Maps `path` read-only and parses it; an empty table when it cannot. When the file has no
  // .symtab (stripped) but a GNU build id, the functions come from
  // <debug_root>/.build-id/xx/yyyy.debug if that file exists with the same build id.
  static ElfSymbols load(const char* path, const char* debug_root = "/usr/lib/debug");
  // Parses an ELF image held in memory (what load() does after mapping the file).
  static ElfSymbols parse(const unsigned char* data, size_t size);

  bool empty() const { return functions_.empty(); }
  bool has_symtab() const { return has_symtab_; }  // false: stripped, only .dynsym (if any)
  const std::string& build_id() const { return build_id_; }  // lowercase hex, "" when none
  size_t size() const { return functions_.size(); }
  // Link-time address of the first PT_LOAD segment, rounded down to the page: the address that
  // dladdr's dli_fbase (the start of the module's mapping) corresponds to. 0 for a usual PIE or
  // shared object, 0x400000 for a classic non-PIE executable.
  uint64_t first_load_vaddr() const { return first_load_vaddr_; }

  // The function whose [start, start + size) holds `vaddr` (a link-time address), or nullptr.
  const Function* find(uint64_t vaddr) const;
  // Same, for a run-time address inside a module mapped at `module_base` (dli_fbase).
  const Function* find_runtime(uint64_t address, uint64_t module_base) const {
    return find(address - module_base + first_load_vaddr_);
  }
  // The demangled name of the function holding `vaddr` (link-time), or "??".
  std::string function_name(uint64_t vaddr) const;

 private:
  std::vector<Function> functions_;  // sorted by start
  uint64_t first_load_vaddr_ = 0;
  bool has_symtab_ = false;
  std::string build_id_;
};

// "name" demangled with abi::__cxa_demangle, or unchanged when it is not a C++ mangled name.
std::string demangle(const char* name);

}  // namespace gpumem
