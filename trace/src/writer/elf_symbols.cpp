// ELF symbol tables read from disk. Layout facts: the System V gABI (elf.h); the approach
// (.symtab first, .dynsym as fallback, load bias from the first PT_LOAD) is heaptrack's.
#include "elf_symbols.h"

#include <cxxabi.h>
#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gpumem {
namespace {

// [off, off + len) lies inside a buffer of `size` bytes (no overflow).
bool in_bounds(uint64_t off, uint64_t len, size_t size) {
  return off <= size && len <= size - off;
}

// Copies a T from data + off; false when it does not fit. memcpy: the file gives no alignment.
template <typename T>
bool read_at(const unsigned char* data, size_t size, uint64_t off, T* out) {
  if (!in_bounds(off, sizeof(T), size)) return false;
  std::memcpy(out, data + off, sizeof(T));
  return true;
}

bool read_section(const unsigned char* data, size_t size, const Elf64_Ehdr& eh, uint64_t index,
                  Elf64_Shdr* out) {
  if (index >= eh.e_shnum) return false;
  return read_at(data, size, eh.e_shoff + index * sizeof(Elf64_Shdr), out);
}

uint64_t read_first_load_vaddr(const unsigned char* data, size_t size, const Elf64_Ehdr& eh) {
  if (eh.e_phentsize != sizeof(Elf64_Phdr)) return 0;
  const uint64_t page =
      static_cast<uint64_t>(sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096);
  for (uint64_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (!read_at(data, size, eh.e_phoff + i * sizeof(Elf64_Phdr), &ph)) return 0;
    if (ph.p_type == PT_LOAD) return ph.p_vaddr & ~(page - 1);  // as the loader maps it
  }
  return 0;
}

// The first section of `type` whose symbols and linked string table lie inside the file.
bool find_symbol_table(const unsigned char* data, size_t size, const Elf64_Ehdr& eh, uint32_t type,
                       Elf64_Shdr* symtab, Elf64_Shdr* strtab) {
  for (uint64_t i = 0; i < eh.e_shnum; ++i) {
    if (!read_section(data, size, eh, i, symtab)) return false;
    if (symtab->sh_type != type) continue;
    if (symtab->sh_entsize != sizeof(Elf64_Sym)) continue;
    if (!in_bounds(symtab->sh_offset, symtab->sh_size, size)) continue;
    if (!read_section(data, size, eh, symtab->sh_link, strtab)) continue;
    if (strtab->sh_type != SHT_STRTAB || !in_bounds(strtab->sh_offset, strtab->sh_size, size))
      continue;
    return true;
  }
  return false;
}

// The GNU build id (NT_GNU_BUILD_ID note) as lowercase hex, or "" when there is none.
std::string read_build_id(const unsigned char* data, size_t size, const Elf64_Ehdr& eh) {
  for (uint64_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh;
    if (!read_section(data, size, eh, i, &sh)) return "";
    if (sh.sh_type != SHT_NOTE || !in_bounds(sh.sh_offset, sh.sh_size, size)) continue;
    uint64_t at = 0;
    while (at + sizeof(Elf64_Nhdr) <= sh.sh_size) {  // notes: header, name, desc; 4-aligned
      Elf64_Nhdr note;
      std::memcpy(&note, data + sh.sh_offset + at, sizeof(note));
      const uint64_t name_at = at + sizeof(note);
      const uint64_t desc_at = name_at + ((uint64_t{note.n_namesz} + 3) & ~uint64_t{3});
      const uint64_t next = desc_at + ((uint64_t{note.n_descsz} + 3) & ~uint64_t{3});
      if (next > sh.sh_size) break;
      if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
          std::memcmp(data + sh.sh_offset + name_at, "GNU", 4) == 0 && note.n_descsz > 0 &&
          note.n_descsz <= 64) {
        std::string hex;
        for (uint32_t b = 0; b < note.n_descsz; ++b) {
          char two[3];
          std::snprintf(two, sizeof(two), "%02x", data[sh.sh_offset + desc_at + b]);
          hex += two;
        }
        return hex;
      }
      at = next;
    }
  }
  return "";
}

ElfSymbols map_and_parse(const char* path) {
  if (path == nullptr || path[0] == '\0') return {};
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat st {};
  ElfSymbols out;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    const size_t size = static_cast<size_t>(st.st_size);
    void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      out = ElfSymbols::parse(static_cast<const unsigned char*>(map), size);
      munmap(map, size);
    }
  }
  ::close(fd);
  return out;
}

}  // namespace

ElfSymbols ElfSymbols::parse(const unsigned char* data, size_t size) {
  ElfSymbols out;
  Elf64_Ehdr eh;
  if (data == nullptr || !read_at(data, size, 0, &eh)) return out;
  // Only the process's own kind of ELF: 64-bit, native byte order, current version.
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_ident[EI_DATA] !=
          (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB) ||
      eh.e_ident[EI_VERSION] != EV_CURRENT || eh.e_shentsize != sizeof(Elf64_Shdr))
    return out;
  if (!in_bounds(eh.e_shoff, uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr), size)) return out;
  out.first_load_vaddr_ = read_first_load_vaddr(data, size, eh);
  out.build_id_ = read_build_id(data, size, eh);

  Elf64_Shdr symtab, strtab;
  out.has_symtab_ = find_symbol_table(data, size, eh, SHT_SYMTAB, &symtab, &strtab);
  if (!out.has_symtab_ && !find_symbol_table(data, size, eh, SHT_DYNSYM, &symtab, &strtab))
    return out;
  const char* strings = reinterpret_cast<const char*>(data + strtab.sh_offset);
  const uint64_t count = symtab.sh_size / sizeof(Elf64_Sym);
  for (uint64_t i = 0; i < count; ++i) {
    Elf64_Sym sym;
    std::memcpy(&sym, data + symtab.sh_offset + i * sizeof(Elf64_Sym), sizeof(sym));
    const unsigned type = ELF64_ST_TYPE(sym.st_info);
    if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF ||
        sym.st_size == 0 || sym.st_value + sym.st_size < sym.st_value || sym.st_name == 0 ||
        sym.st_name >= strtab.sh_size)
      continue;
    const size_t room = strtab.sh_size - sym.st_name;
    const char* name = strings + sym.st_name;
    const void* nul = std::memchr(name, '\0', room);
    if (nul == nullptr) continue;  // unterminated name: corrupt table
    out.functions_.push_back(
        {sym.st_value, sym.st_size, std::string(name, static_cast<const char*>(nul) - name)});
  }
  // Sorted by start; of aliases (same start and size) keep the first.
  std::stable_sort(out.functions_.begin(), out.functions_.end(),
                   [](const Function& a, const Function& b) { return a.start < b.start; });
  auto same = [](const Function& a, const Function& b) {
    return a.start == b.start && a.size == b.size;
  };
  out.functions_.erase(std::unique(out.functions_.begin(), out.functions_.end(), same),
                       out.functions_.end());
  return out;
}

ElfSymbols ElfSymbols::load(const char* path, const char* debug_root) {
  ElfSymbols out = map_and_parse(path);
  if (out.has_symtab_ || out.build_id_.size() < 4 || debug_root == nullptr) return out;
  // A stripped file: its full symbol table may be in a separate debug file found by build id
  // (what gdb and heaptrack look for; Debian's *-dbg / *-dbgsym packages install them there).
  const std::string debug_file = std::string(debug_root) + "/.build-id/" +
                                 out.build_id_.substr(0, 2) + "/" + out.build_id_.substr(2) +
                                 ".debug";
  ElfSymbols debug = map_and_parse(debug_file.c_str());
  if (debug.has_symtab_ && debug.build_id_ == out.build_id_ && !debug.empty())
    out.functions_ = std::move(debug.functions_);  // same addresses; keep the file's PT_LOAD
  return out;
}

const ElfSymbols::Function* ElfSymbols::find(uint64_t vaddr) const {
  auto it = std::upper_bound(functions_.begin(), functions_.end(), vaddr,
                             [](uint64_t a, const Function& f) { return a < f.start; });
  // The nearest start at or below vaddr usually holds it; a few steps back cover a function
  // that encloses smaller ones (e.g. a local label symbol inside it).
  for (int step = 0; step < 16 && it != functions_.begin(); ++step) {
    --it;
    if (vaddr - it->start < it->size) return &*it;
  }
  return nullptr;
}

std::string ElfSymbols::function_name(uint64_t vaddr) const {
  const Function* f = find(vaddr);
  return f != nullptr ? demangle(f->name.c_str()) : "??";
}

std::string demangle(const char* name) {
  if (name == nullptr) return "??";
  if (name[0] != '_' || name[1] != 'Z') return name;
  int status = 0;
  char* demangled = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = (status == 0 && demangled != nullptr) ? demangled : name;
  std::free(demangled);
  return out;
}

}  // namespace gpumem
