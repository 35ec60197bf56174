// The safe pickle reader: a stack machine over the data opcodes of protocols 2-5 only. Values live
// in one node table (PickleDocument), so nothing is ever copied, freed one by one or walked
// recursively; a refused or damaged pickle is an error with its byte offset, never a crash.
#include <fmt/format.h>

#include <cstring>
#include <unordered_map>

#include "gpumem/formats/pickle.h"

namespace gpumem::formats {

bool looks_like_pickle(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x80 &&
         static_cast<uint8_t>(bytes[1]) >= 2 && static_cast<uint8_t>(bytes[1]) <= 5;
}

const PickleNode* PickleDocument::find(const PickleNode& dict, std::string_view key) const {
  if (dict.kind != PickleKind::dict) return nullptr;
  for (size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    const PickleNode& k = nodes_[dict.items[i]];
    if (k.kind == PickleKind::string && k.string == key) return &nodes_[dict.items[i + 1]];
  }
  return nullptr;
}

namespace {

const char* opcode_name(uint8_t op) {
  switch (op) {
    case 'c':
      return "GLOBAL";
    case 0x93:
      return "STACK_GLOBAL";
    case 'R':
      return "REDUCE";
    case 'b':
      return "BUILD";
    case 'i':
      return "INST";
    case 'o':
      return "OBJ";
    case 0x81:
      return "NEWOBJ";
    case 0x92:
      return "NEWOBJ_EX";
    case 0x82:
      return "EXT1";
    case 0x83:
      return "EXT2";
    case 0x84:
      return "EXT4";
    case 'P':
      return "PERSID";
    case 'Q':
      return "BINPERSID";
    case 'B':
      return "BINBYTES";
    case 'C':
      return "SHORT_BINBYTES";
    case 0x8e:
      return "BINBYTES8";
    case 0x96:
      return "BYTEARRAY8";
    case 0x97:
      return "NEXT_BUFFER";
    case 0x98:
      return "READONLY_BUFFER";
    case 0x8f:
      return "EMPTY_SET";
    case 0x90:
      return "ADDITEMS";
    case 0x91:
      return "FROZENSET";
    case 'F':
      return "FLOAT";
    case 'I':
      return "INT";
    case 'L':
      return "LONG";
    case 'S':
      return "STRING";
    case 'T':
      return "BINSTRING";
    case 'U':
      return "SHORT_BINSTRING";
    case 'V':
      return "UNICODE";
    case 'g':
      return "GET";
    case 'p':
      return "PUT";
    default:
      return nullptr;
  }
}

bool calls_code(uint8_t op) {
  switch (op) {
    case 'c':
    case 0x93:
    case 'R':
    case 'b':
    case 'i':
    case 'o':
    case 0x81:
    case 0x92:
    case 0x82:
    case 0x83:
    case 0x84:
    case 'P':
    case 'Q':
      return true;
    default:
      return false;
  }
}

}  // namespace

class PickleParser {
 public:
  PickleParser(std::string_view bytes, PickleDocument* doc, const PickleLimits& limits)
      : in_(bytes), doc_(doc), limits_(limits) {}

  bool run(std::string* error) {
    doc_->nodes_.clear();
    while (true) {
      if (pos_ >= in_.size())
        return fail(error, pos_, "the file ends before the pickle's STOP opcode (cut short?)");
      const size_t at = pos_;
      const uint8_t op = static_cast<uint8_t>(in_[pos_++]);
      if (!step(op, at, error)) return false;
      if (op == '.') break;
    }
    return true;
  }

 private:
  bool fail(std::string* error, size_t at, const std::string& what) {
    *error = fmt::format("byte {}: {}", at, what);
    return false;
  }

  // n raw bytes at the cursor, or a truncation error naming what was being read.
  bool take(size_t n, const char* what, size_t at, const char** p, std::string* error) {
    if (n > in_.size() - pos_)
      return fail(error, at,
                  fmt::format("{} of {} bytes runs past the end of the file ({} bytes left; cut "
                              "short, or a damaged length)",
                              what, n, in_.size() - pos_));
    *p = in_.data() + pos_;
    pos_ += n;
    return true;
  }
  uint64_t le(const char* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
    return v;
  }

  uint32_t add(PickleNode node) {
    doc_->nodes_.push_back(std::move(node));
    return static_cast<uint32_t>(doc_->nodes_.size() - 1);
  }
  bool push(uint32_t index, size_t at, std::string* error) {
    if (stack_.size() >= limits_.max_stack)
      return fail(error, at, fmt::format("more than {} values on the stack", limits_.max_stack));
    stack_.push_back(index);
    return true;
  }
  bool push_new(PickleNode node, size_t at, std::string* error) {
    return push(add(std::move(node)), at, error);
  }
  bool pop_mark(size_t at, std::string* error, size_t* base) {
    if (marks_.empty()) return fail(error, at, "an opcode needs a MARK and there is none");
    *base = marks_.back();
    marks_.pop_back();
    return true;
  }
  bool is_container(uint32_t i) const {
    PickleKind k = doc_->nodes_[i].kind;
    return k == PickleKind::list || k == PickleKind::dict || k == PickleKind::tuple;
  }
  // Puts items [from, to) of the stack into container `into`, keeping the depth bound.
  bool fill(uint32_t into, size_t from, size_t to, size_t at, std::string* error) {
    for (size_t i = from; i < to; ++i) {
      const uint32_t child = stack_[i];
      // depth = container levels below a node: [] and [1] are 0, [[]] is 1.
      const uint32_t d = is_container(child) ? doc_->nodes_[child].depth + 1 : 0;
      PickleNode& parent = doc_->nodes_[into];
      if (d > parent.depth) parent.depth = d;
      if (parent.depth > limits_.max_depth)
        return fail(error, at,
                    fmt::format("containers nested deeper than {} levels; a memory "
                                "snapshot is a few levels deep",
                                limits_.max_depth));
      parent.items.push_back(child);
    }
    return true;
  }
  bool top_container(PickleKind kind, size_t base, size_t at, const char* op, uint32_t* into,
                     std::string* error) {
    if (base == 0 || stack_.size() < base)
      return fail(error, at, fmt::format("{} has no container below its items", op));
    *into = stack_[base - 1];
    if (doc_->nodes_[*into].kind != kind)
      return fail(error, at,
                  fmt::format("{} applied to a value that is not a {}", op,
                              kind == PickleKind::dict ? "dict" : "list"));
    return true;
  }
  bool make_tuple(size_t base, size_t at, std::string* error) {
    PickleNode t;
    t.kind = PickleKind::tuple;
    const uint32_t idx = add(std::move(t));
    if (!fill(idx, base, stack_.size(), at, error)) return false;
    stack_.resize(base);
    return push(idx, at, error);
  }

  bool step(uint8_t op, size_t at, std::string* error) {
    const char* p = nullptr;
    PickleNode n;
    switch (op) {
      case 0x80:  // PROTO
        if (!take(1, "the protocol number", at, &p, error)) return false;
        if (static_cast<uint8_t>(*p) > 5)
          return fail(error, at,
                      fmt::format("pickle protocol {} is newer than 5", static_cast<uint8_t>(*p)));
        return true;
      case 0x95: {  // FRAME: a length hint only
        if (!take(8, "a FRAME length", at, &p, error)) return false;
        if (le(p, 8) > in_.size() - pos_)
          return fail(error, at,
                      fmt::format("a frame of {} bytes runs past the end of the file "
                                  "({} bytes left; cut short?)",
                                  le(p, 8), in_.size() - pos_));
        return true;
      }
      case '.':  // STOP
        if (stack_.size() != 1 || !marks_.empty())
          return fail(error, at,
                      fmt::format("STOP with {} values on the stack and {} open "
                                  "MARKs (expected one value, no MARK)",
                                  stack_.size(), marks_.size()));
        doc_->root_ = stack_.back();
        return true;
      case '(':  // MARK
        if (marks_.size() >= limits_.max_depth)
          return fail(error, at,
                      fmt::format("more than {} MARKs open at once; a memory snapshot "
                                  "nests a few levels",
                                  limits_.max_depth));
        marks_.push_back(stack_.size());
        return true;
      case '0':  // POP
        if (stack_.empty()) return fail(error, at, "POP on an empty stack");
        if (!marks_.empty() && marks_.back() == stack_.size()) {
          marks_.pop_back();  // POP of a MARK, as Python does
        } else {
          stack_.pop_back();
        }
        return true;
      case '1': {  // POP_MARK
        size_t base;
        if (!pop_mark(at, error, &base)) return false;
        stack_.resize(base);
        return true;
      }
      case '2':  // DUP
        if (stack_.empty()) return fail(error, at, "DUP on an empty stack");
        return push(stack_.back(), at, error);
      case 'N':
        return push_new(n, at, error);
      case 0x88:
      case 0x89:
        n.kind = PickleKind::boolean;
        n.boolean = op == 0x88;
        return push_new(std::move(n), at, error);
      case 'J':
        if (!take(4, "a BININT", at, &p, error)) return false;
        n.kind = PickleKind::integer;
        n.integer = static_cast<int32_t>(static_cast<uint32_t>(le(p, 4)));
        return push_new(std::move(n), at, error);
      case 'K':
        if (!take(1, "a BININT1", at, &p, error)) return false;
        n.kind = PickleKind::integer;
        n.integer = static_cast<uint8_t>(*p);
        return push_new(std::move(n), at, error);
      case 'M':
        if (!take(2, "a BININT2", at, &p, error)) return false;
        n.kind = PickleKind::integer;
        n.integer = static_cast<int64_t>(le(p, 2));
        return push_new(std::move(n), at, error);
      case 0x8a:
      case 0x8b: {  // LONG1, LONG4
        const int width = op == 0x8a ? 1 : 4;
        if (!take(static_cast<size_t>(width), "a LONG length", at, &p, error)) return false;
        const uint64_t len = le(p, width);
        if (len > 16)
          return fail(error, at,
                      fmt::format("an integer of {} bytes; a memory snapshot's "
                                  "numbers fit in 16",
                                  len));
        if (!take(len, "a LONG", at, &p, error)) return false;
        unsigned __int128 v = 0;
        for (size_t i = len; i-- > 0;) v = (v << 8) | static_cast<uint8_t>(p[i]);
        if (len > 0 && len < 16 && (static_cast<uint8_t>(p[len - 1]) & 0x80))
          v -= static_cast<unsigned __int128>(1) << (8 * len);  // two's complement sign
        n.kind = PickleKind::integer;
        n.integer = static_cast<__int128>(v);
        return push_new(std::move(n), at, error);
      }
      case 'G': {
        if (!take(8, "a BINFLOAT", at, &p, error)) return false;
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(p[i]);
        n.kind = PickleKind::floating;
        std::memcpy(&n.floating, &bits, sizeof bits);
        return push_new(std::move(n), at, error);
      }
      case 0x8c:
      case 'X':
      case 0x8d: {  // SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
        const int width = op == 0x8c ? 1 : op == 'X' ? 4 : 8;
        if (!take(static_cast<size_t>(width), "a string length", at, &p, error)) return false;
        const uint64_t len = le(p, width);
        if (!take(len, "a string", at, &p, error)) return false;
        n.kind = PickleKind::string;
        n.string.assign(p, len);
        return push_new(std::move(n), at, error);
      }
      case '}':
        n.kind = PickleKind::dict;
        return push_new(std::move(n), at, error);
      case ']':
        n.kind = PickleKind::list;
        return push_new(std::move(n), at, error);
      case ')':
        n.kind = PickleKind::tuple;
        return push_new(std::move(n), at, error);
      case 'd':
      case 'l': {  // DICT, LIST: a new container of the items above the MARK
        size_t base;
        if (!pop_mark(at, error, &base)) return false;
        if (op == 'd' && (stack_.size() - base) % 2 != 0)
          return fail(error, at, "DICT with an odd number of items (a key without its value)");
        n.kind = op == 'd' ? PickleKind::dict : PickleKind::list;
        const uint32_t idx = add(std::move(n));
        if (!fill(idx, base, stack_.size(), at, error)) return false;
        stack_.resize(base);
        return push(idx, at, error);
      }
      case 't': {
        size_t base;
        if (!pop_mark(at, error, &base)) return false;
        return make_tuple(base, at, error);
      }
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        const size_t k = op - 0x84u;
        if (stack_.size() < k)
          return fail(error, at, fmt::format("TUPLE{} needs {} values on the stack", k, k));
        if (!marks_.empty() && marks_.back() > stack_.size() - k)
          return fail(error, at, fmt::format("TUPLE{} would take values from below a MARK", k));
        return make_tuple(stack_.size() - k, at, error);
      }
      case 'a': {  // APPEND
        if (stack_.size() < 2 || (!marks_.empty() && marks_.back() > stack_.size() - 2))
          return fail(error, at, "APPEND needs a list and a value on the stack");
        uint32_t into;
        if (!top_container(PickleKind::list, stack_.size() - 1, at, "APPEND", &into, error))
          return false;
        if (!fill(into, stack_.size() - 1, stack_.size(), at, error)) return false;
        stack_.pop_back();
        return true;
      }
      case 'e': {  // APPENDS
        size_t base;
        if (!pop_mark(at, error, &base)) return false;
        uint32_t into;
        if (!top_container(PickleKind::list, base, at, "APPENDS", &into, error)) return false;
        if (!fill(into, base, stack_.size(), at, error)) return false;
        stack_.resize(base);
        return true;
      }
      case 's': {  // SETITEM
        if (stack_.size() < 3 || (!marks_.empty() && marks_.back() > stack_.size() - 3))
          return fail(error, at, "SETITEM needs a dict, a key and a value on the stack");
        uint32_t into;
        if (!top_container(PickleKind::dict, stack_.size() - 2, at, "SETITEM", &into, error))
          return false;
        if (!fill(into, stack_.size() - 2, stack_.size(), at, error)) return false;
        stack_.resize(stack_.size() - 2);
        return true;
      }
      case 'u': {  // SETITEMS
        size_t base;
        if (!pop_mark(at, error, &base)) return false;
        if ((stack_.size() - base) % 2 != 0)
          return fail(error, at, "SETITEMS with an odd number of items (a key without its value)");
        uint32_t into;
        if (!top_container(PickleKind::dict, base, at, "SETITEMS", &into, error)) return false;
        if (!fill(into, base, stack_.size(), at, error)) return false;
        stack_.resize(base);
        return true;
      }
      case 0x94:  // MEMOIZE
        if (stack_.empty()) return fail(error, at, "MEMOIZE on an empty stack");
        memo_[static_cast<uint64_t>(memo_.size())] = stack_.back();
        return true;
      case 'q':
      case 'r': {  // BINPUT, LONG_BINPUT
        const int width = op == 'q' ? 1 : 4;
        if (!take(static_cast<size_t>(width), "a memo index", at, &p, error)) return false;
        if (stack_.empty()) return fail(error, at, "a memo PUT on an empty stack");
        memo_[le(p, width)] = stack_.back();
        return true;
      }
      case 'h':
      case 'j': {  // BINGET, LONG_BINGET
        const int width = op == 'h' ? 1 : 4;
        if (!take(static_cast<size_t>(width), "a memo index", at, &p, error)) return false;
        auto it = memo_.find(le(p, width));
        if (it == memo_.end())
          return fail(error, at,
                      fmt::format("memo GET of index {}, which was never PUT", le(p, width)));
        return push(it->second, at, error);
      }
      default:
        break;
    }
    const char* name = opcode_name(op);
    if (calls_code(op))
      return fail(error, at,
                  fmt::format("opcode {} (0x{:02x}) imports or calls Python code; a memory "
                              "snapshot is plain data, and gpumem never runs pickled code",
                              name, op));
    if (name != nullptr)
      return fail(error, at,
                  fmt::format("opcode {} (0x{:02x}) is not one a PyTorch memory "
                              "snapshot is written with",
                              name, op));
    return fail(error, at, fmt::format("byte 0x{:02x} is not a pickle opcode (damaged file?)", op));
  }

  std::string_view in_;
  PickleDocument* doc_;
  PickleLimits limits_;
  size_t pos_ = 0;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, uint32_t> memo_;
};

bool read_pickle(std::string_view bytes, PickleDocument* out, std::string* error,
                 const PickleLimits& limits) {
  PickleParser parser(bytes, out, limits);
  return parser.run(error);
}

}  // namespace gpumem::formats
