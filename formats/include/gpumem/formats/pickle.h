// Python pickles without Python: a small writer (protocol 2) and a reader that accepts only the
// data opcodes a PyTorch memory snapshot is made of (dicts, lists, tuples, strings, numbers,
// booleans, None, memo). Anything that would import or call Python code (GLOBAL, STACK_GLOBAL,
// REDUCE, BUILD, INST, OBJ, NEWOBJ, EXT*, PERSID) is refused: a pickle is a program, and gpumem
// never runs one. docs/formats.md.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gpumem::formats {

// ---- Writing ----------------------------------------------------------------------------------

// Builds a protocol-2 pickle in memory: values are written in the order they are given, and
// containers are opened and closed around their items (dict: key, value, key, value...).
class PickleWriter {
 public:
  PickleWriter();
  void none();
  void boolean(bool v);
  void integer(int64_t v);
  void unsigned_integer(uint64_t v);  // addresses: up to 2^64-1, as a Python int
  void floating(double v);
  // A Python str; a byte that starts no well-formed UTF-8 sequence is written as U+FFFD, since
  // Python's unpickler refuses the whole file over one.
  void string(std::string_view utf8);
  void begin_dict();
  void end_dict();
  void begin_list();
  void end_list();
  void begin_tuple();
  void end_tuple();
  // key(k) = string(k), for readability at dict call sites.
  void key(std::string_view k) { string(k); }
  // Appends STOP and returns the pickle; the writer is spent.
  std::string finish();

 private:
  struct Open {
    size_t mark;   // offset of the container's MARK in out_
    size_t items;  // values written directly inside it
  };
  void value();  // counts one value in the innermost open container
  void begin(char empty);
  void end(char one, char many);
  void long1(const uint8_t* le, size_t n);
  std::string out_;
  std::vector<Open> open_;  // containers begun and not ended, innermost last
};

// ---- Reading ----------------------------------------------------------------------------------

enum class PickleKind : uint8_t { none, boolean, integer, floating, string, list, tuple, dict };

// One value. Containers hold indices into the document's node table (a memo reference shares a
// node rather than copying it, so a hostile pickle cannot make the reader copy exponentially).
struct PickleNode {
  PickleKind kind = PickleKind::none;
  bool boolean = false;
  __int128 integer = 0;  // LONG1/LONG4 up to 16 bytes; wider is refused
  double floating = 0;
  std::string string;
  std::vector<uint32_t> items;  // list/tuple items; dict: key, value, key, value...
  uint32_t depth = 0;           // nesting below this node when it was filled
};

class PickleDocument {
 public:
  const PickleNode& root() const { return nodes_[root_]; }
  const PickleNode& at(uint32_t index) const { return nodes_[index]; }
  // The value of `key` (a string key) in a dict node; nullptr when absent or not a dict.
  const PickleNode* find(const PickleNode& dict, std::string_view key) const;
  size_t node_count() const { return nodes_.size(); }

 private:
  friend class PickleParser;
  std::vector<PickleNode> nodes_;
  uint32_t root_ = 0;
};

struct PickleLimits {
  uint32_t max_depth = 64;             // containers inside containers
  size_t max_stack = size_t{1} << 26;  // values waiting on the stack
};

// True when the bytes start like a pickle (PROTO 2..5).
bool looks_like_pickle(std::string_view bytes);

// Parses `bytes`; false with *error saying what was refused or where the file broke (byte offset
// and opcode), e.g. "byte 17: opcode GLOBAL (0x63) imports Python code; ...".
bool read_pickle(std::string_view bytes, PickleDocument* out, std::string* error,
                 const PickleLimits& limits = {});

}  // namespace gpumem::formats
