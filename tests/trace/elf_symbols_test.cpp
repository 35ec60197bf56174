// Symbols for what dladdr cannot name (functions of an executable, static functions of a
// library), read from the module's ELF symbol table; and corrupt files that must give "??".
#include <dlfcn.h>
#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <random>

#include "elf_symbols.h"
#include "trace_test_util.h"

extern "C" void* gpumem_test_library_hidden_function();

namespace gpumem {
namespace {

using namespace gpumem::test;
using trace::Op;

// Static: in the test executable's .symtab, not in its .dynsym (no -rdynamic).
__attribute__((noinline)) int executable_hidden_function(int x) {
  volatile int y = x * 7;
  return y + 2;
}

uint64_t address_of_executable_hidden() {
  int (*volatile fn)(int) = &executable_hidden_function;  // volatile: keeps the function
  return reinterpret_cast<uint64_t>(fn);
}

uint64_t module_base(uint64_t address) {
  Dl_info info{};
  EXPECT_NE(dladdr(reinterpret_cast<void*>(address), &info), 0);
  return reinterpret_cast<uint64_t>(info.dli_fbase);
}

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// The symbol names write_symbols() gives the return addresses `pcs`, by address.
std::map<uint64_t, std::string> symbolise(const std::vector<uint64_t>& pcs) {
  ScratchDir dir;
  TraceWriter w;
  EXPECT_TRUE(open_writer(w, dir.file("sym.trace")));
  w.intern_stack(pcs.data(), static_cast<int>(pcs.size()));
  w.write_symbols();
  w.close();
  ReadResult got = read_trace(dir.file("sym.trace"));
  std::map<uint64_t, std::string> strings, symbols;
  for (const OwnedEvent& e : got.events) {
    if (e.rec.op == static_cast<uint16_t>(Op::string)) strings[e.rec.aux] = e.payload;
    if (e.rec.op == static_cast<uint16_t>(Op::symbol)) symbols[e.rec.address] = strings[e.rec.aux];
  }
  return symbols;
}

TEST(ElfSymbols, WriterNamesStaticFunctionOfTheExecutable) {
  const uint64_t fn = address_of_executable_hidden();
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(fn), &info), 0);
  ASSERT_EQ(info.dli_sname, nullptr) << "dladdr already names it; the test would prove nothing";
  const uint64_t pc = fn + 4;  // a return address inside the function
  auto symbols = symbolise({pc});
  ASSERT_EQ(symbols.size(), 1u);
  EXPECT_EQ(symbols[pc],
            "gpumem::(anonymous namespace)::executable_hidden_function(int) "
            "(trace_tests+" +
                hex(pc - module_base(fn)) + ")");
}

TEST(ElfSymbols, WriterNamesStaticFunctionOfASharedLibrary) {
  const uint64_t fn = reinterpret_cast<uint64_t>(gpumem_test_library_hidden_function());
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(fn), &info), 0);
  ASSERT_TRUE(info.dli_sname == nullptr ||
              std::strstr(info.dli_sname, "library_hidden_function") == nullptr)
      << "dladdr already names it: " << info.dli_sname;
  const uint64_t pc = fn + 1;  // pc - 1 is the function's first byte
  auto symbols = symbolise({pc});
  ASSERT_EQ(symbols.size(), 1u);
  EXPECT_EQ(symbols[pc],
            "(anonymous namespace)::library_hidden_function(int) "
            "(libtrace_hidden_function.so+" +
                hex(pc - module_base(fn)) + ")");
}

TEST(ElfSymbols, WriterKeepsDynamicSymbolsAndUnknownAddresses) {
  const uint64_t in_getpid = reinterpret_cast<uint64_t>(&getpid) + 1;
  const uint64_t nowhere = 0x10;  // no module is mapped there
  auto symbols = symbolise({in_getpid, nowhere});
  ASSERT_EQ(symbols.size(), 2u);
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(in_getpid - 1), &info), 0);
  ASSERT_NE(info.dli_sname, nullptr);
  // dladdr's own name (an exported symbol holding the address) is kept as it was.
  EXPECT_EQ(symbols[in_getpid].rfind(std::string(info.dli_sname) + " (libc.so", 0), 0u)
      << symbols[in_getpid];
  EXPECT_EQ(symbols[nowhere], "?? (??+0x10)");
}

TEST(ElfSymbols, LoadFindsTheFunctionInItsOwnFile) {
  const uint64_t fn = address_of_executable_hidden();
  const ElfSymbols table = ElfSymbols::load("/proc/self/exe");
  ASSERT_FALSE(table.empty());
  const ElfSymbols::Function* f = table.find_runtime(fn, module_base(fn));
  ASSERT_NE(f, nullptr);
  // The symbol starts exactly at the function, and every byte of it maps back to it.
  EXPECT_EQ(f->start - table.first_load_vaddr() + module_base(fn), fn);
  EXPECT_EQ(table.find_runtime(fn + f->size - 1, module_base(fn)), f);
  EXPECT_NE(table.find_runtime(fn + f->size, module_base(fn)), f);
  EXPECT_EQ(table.function_name(f->start),
            "gpumem::(anonymous namespace)::executable_hidden_function(int)");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(ElfSymbols, StrippedFileTakesItsFunctionsFromTheBuildIdDebugFile) {
  const uint64_t fn = reinterpret_cast<uint64_t>(gpumem_test_library_hidden_function());
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(fn), &info), 0);
  const std::string library = read_file(info.dli_fname);
  const auto* data = reinterpret_cast<const unsigned char*>(library.data());
  const ElfSymbols original = ElfSymbols::parse(data, library.size());
  ASSERT_TRUE(original.has_symtab());
  ASSERT_EQ(original.build_id().size(), 40u) << "the test library needs a GNU build id (sha1)";
  const uint64_t vaddr =
      fn - reinterpret_cast<uint64_t>(info.dli_fbase) + original.first_load_vaddr();
  const std::string name = "(anonymous namespace)::library_hidden_function(int)";
  ASSERT_EQ(original.function_name(vaddr), name);

  // "Strip" a copy: its .symtab section header becomes SHT_NULL, leaving only .dynsym.
  std::string stripped = library;
  Elf64_Ehdr eh;
  std::memcpy(&eh, stripped.data(), sizeof(eh));
  for (uint64_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh;
    const uint64_t at = eh.e_shoff + i * sizeof(sh);
    std::memcpy(&sh, stripped.data() + at, sizeof(sh));
    if (sh.sh_type != SHT_SYMTAB) continue;
    sh.sh_type = SHT_NULL;
    std::memcpy(stripped.data() + at, &sh, sizeof(sh));
  }
  ScratchDir dir;
  write_file(dir.file("lib.so"), stripped);
  const ElfSymbols alone = ElfSymbols::load(dir.file("lib.so").c_str(), nullptr);
  EXPECT_FALSE(alone.has_symtab());
  EXPECT_EQ(alone.function_name(vaddr), "??");

  const std::string& id = original.build_id();
  const std::string debug_file =
      dir.file("debug/.build-id/" + id.substr(0, 2) + "/" + id.substr(2) + ".debug");
  write_file(debug_file, library);
  const std::string root = dir.file("debug");
  const ElfSymbols with_debug = ElfSymbols::load(dir.file("lib.so").c_str(), root.c_str());
  EXPECT_EQ(with_debug.function_name(vaddr), name);
  EXPECT_EQ(with_debug.size(), original.size());

  // A debug file whose build id differs (another build of the library) is not trusted.
  std::string other = library;
  const size_t id_at = other.find(std::string("GNU\0", 4));
  ASSERT_NE(id_at, std::string::npos);
  other[id_at + 4] = static_cast<char>(other[id_at + 4] ^ 0xff);  // first byte of the id
  write_file(debug_file, other);
  EXPECT_EQ(ElfSymbols::load(dir.file("lib.so").c_str(), root.c_str()).function_name(vaddr), "??");
}

// A copy of bytes that ends exactly at an inaccessible page: a parser reading one byte past the
// end faults here instead of silently reading neighbouring heap.
class GuardedBytes {
 public:
  explicit GuardedBytes(const std::string& bytes) : size_(bytes.size()) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t body = (size_ + page - 1) / page * page;
    total_ = body + page;
    map_ = static_cast<unsigned char*>(
        mmap(nullptr, total_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    EXPECT_NE(map_, MAP_FAILED);
    EXPECT_EQ(mprotect(map_ + body, page, PROT_NONE), 0);
    data_ = map_ + body - size_;
    std::memcpy(data_, bytes.data(), size_);
  }
  ~GuardedBytes() { munmap(map_, total_); }
  unsigned char* data() { return data_; }
  size_t size() const { return size_; }

 private:
  size_t size_, total_;
  unsigned char* map_;
  unsigned char* data_;
};

TEST(ElfSymbols, MissingOrGarbageFilesGiveAnEmptyTable) {
  ScratchDir dir;
  EXPECT_TRUE(ElfSymbols::load(dir.file("missing").c_str()).empty());
  EXPECT_TRUE(ElfSymbols::load(dir.path().c_str()).empty());  // a directory
  EXPECT_TRUE(ElfSymbols::load("").empty());
  EXPECT_TRUE(ElfSymbols::load(nullptr).empty());
  std::ofstream(dir.file("empty")).close();
  EXPECT_TRUE(ElfSymbols::load(dir.file("empty").c_str()).empty());
  std::ofstream(dir.file("text")) << "not an ELF file at all, just some text\n";
  const ElfSymbols text = ElfSymbols::load(dir.file("text").c_str());
  EXPECT_TRUE(text.empty());
  EXPECT_EQ(text.function_name(0), "??");
  // An ELF header with nothing behind it.
  std::string exe = read_file("/proc/self/exe");
  ASSERT_GT(exe.size(), sizeof(Elf64_Ehdr));
  std::ofstream(dir.file("header-only"), std::ios::binary) << exe.substr(0, sizeof(Elf64_Ehdr));
  const ElfSymbols header_only = ElfSymbols::load(dir.file("header-only").c_str());
  EXPECT_TRUE(header_only.empty());
  EXPECT_EQ(header_only.function_name(address_of_executable_hidden()), "??");
}

TEST(ElfSymbols, TruncatedFilesNeverReadPastTheEnd) {
  const std::string exe = read_file("/proc/self/exe");
  ASSERT_GT(exe.size(), 8192u);
  const size_t full =
      ElfSymbols::parse(reinterpret_cast<const unsigned char*>(exe.data()), exe.size()).size();
  ASSERT_GT(full, 0u);
  // The section headers sit at the end of the file: any cut loses them, so the table is empty.
  for (size_t len : {size_t{0}, size_t{1}, size_t{4}, size_t{63}, size_t{64}, size_t{4096},
                     exe.size() / 2, exe.size() - 65, exe.size() - 1}) {
    GuardedBytes bytes(exe.substr(0, len));
    EXPECT_TRUE(ElfSymbols::parse(bytes.data(), bytes.size()).empty()) << "length " << len;
  }
}

TEST(ElfSymbols, CorruptHeadersAndTablesNeverCrash) {
  const std::string exe = read_file("/proc/self/exe");
  GuardedBytes bytes(exe);
  Elf64_Ehdr eh;
  std::memcpy(&eh, bytes.data(), sizeof(eh));
  ASSERT_GT(eh.e_shnum, 0);
  ASSERT_LE(eh.e_shoff + eh.e_shnum * sizeof(Elf64_Shdr), bytes.size());
  // Where to corrupt: the ELF header, the section headers, the symbols and the notes (build id).
  struct Region {
    uint64_t base, span;
  };
  std::vector<Region> regions = {{0, sizeof(Elf64_Ehdr)},
                                 {eh.e_shoff, eh.e_shnum * sizeof(Elf64_Shdr)}};
  bool has_symtab = false;
  for (uint64_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, bytes.data() + eh.e_shoff + i * sizeof(sh), sizeof(sh));
    if ((sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_NOTE) && sh.sh_size > 16)
      regions.push_back({sh.sh_offset, sh.sh_size});
    has_symtab |= sh.sh_type == SHT_SYMTAB;
  }
  ASSERT_TRUE(has_symtab) << "the test binary must not be stripped";
  std::mt19937_64 rng(12345);
  for (int round = 0; round < 400; ++round) {
    // Overwrite 8 bytes of one region with garbage or a huge value, parse, then restore.
    const Region& region = regions[round % regions.size()];
    const uint64_t at = region.base + rng() % (region.span - 8);
    unsigned char saved[8];
    std::memcpy(saved, bytes.data() + at, 8);
    const uint64_t garbage = round % 2 == 0 ? rng() : ~uint64_t{0} - (rng() % 4096);
    std::memcpy(bytes.data() + at, &garbage, 8);
    const ElfSymbols table = ElfSymbols::parse(bytes.data(), bytes.size());
    for (int probe = 0; probe < 8; ++probe) (void)table.function_name(rng());
    std::memcpy(bytes.data() + at, saved, 8);
  }
  EXPECT_FALSE(ElfSymbols::parse(bytes.data(), bytes.size()).empty());  // restored intact
}

}  // namespace
}  // namespace gpumem
