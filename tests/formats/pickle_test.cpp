// The pickle writer read by Python's own pickle, Python's pickles (protocols 2-5) read by the
// reader, and hostile or damaged pickles refused with the byte where they broke.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "gpumem/formats/pickle.h"
#include "support.h"

namespace gpumem::formats {
namespace {

using formats_test::python_pickle;
using formats_test::read_all;
using formats_test::shell;
using formats_test::temp_file;
using formats_test::write_all;

std::string refused(const std::string& bytes) {
  PickleDocument doc;
  std::string error;
  EXPECT_FALSE(read_pickle(bytes, &doc, &error));
  return error;
}

TEST(PickleWriter, PythonReadsEveryKindOfValue) {
  PickleWriter w;
  w.begin_dict();
  w.key("ints");
  w.begin_list();
  for (int64_t v : {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{255}, int64_t{256}, int64_t{65535},
                    int64_t{65536}, int64_t{INT32_MIN}, int64_t{INT32_MAX} + 1, INT64_MAX,
                    INT64_MIN, int64_t{-129}, int64_t{128} << 24})
    w.integer(v);
  w.unsigned_integer(UINT64_MAX);
  w.unsigned_integer(uint64_t{1} << 63);
  w.end_list();
  w.key("float");
  w.floating(-1.5);
  w.key("text");
  w.string("h\xC3\xA9llo");
  w.key("tuple");
  w.begin_tuple();
  w.boolean(true);
  w.boolean(false);
  w.none();
  w.end_tuple();
  w.key("empty");
  w.begin_dict();
  w.end_dict();
  w.end_dict();
  const std::string path = temp_file("writer.pickle");
  write_all(path, w.finish());
  int status = 0;
  const std::string out = shell(
      "python3 -c \"import pickle,sys; print(repr(pickle.load(open(sys.argv[1],'rb'))))\" " + path,
      &status);
  ::unlink(path.c_str());
  ASSERT_EQ(status, 0);
  EXPECT_EQ(out,
            "{'ints': [0, 1, -1, 255, 256, 65535, 65536, -2147483648, 2147483648, "
            "9223372036854775807, -9223372036854775808, -129, 2147483648, "
            "18446744073709551615, 9223372036854775808], 'float': -1.5, 'text': 'héllo', "
            "'tuple': (True, False, None), 'empty': {}}\n");
}

// Names come from programs: a stray Latin-1 byte, a character cut in two to fit, a surrogate or an
// overlong form each become U+FFFD (one per byte), so pickle.load still reads the file; valid
// UTF-8 of every length is kept as it is.
TEST(PickleWriter, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  PickleWriter w;
  w.begin_list();
  for (const char* s : {"caf\xE9", "cut \xE2\x82", "\xED\xA0\x80", "\xC0\xAF", "\xF4\x90\x80\x80",
                        "\xC3\xA9\xE2\x82\xAC\xF0\x9D\x84\x9E", "plain"})
    w.string(s);
  w.end_list();
  const std::string path = temp_file("utf8.pickle");
  write_all(path, w.finish());
  int status = 0;
  const std::string out =
      shell("python3 -c \"import pickle,sys; print(ascii(pickle.load(open(sys.argv[1],'rb'))))\" " +
                path + " 2>&1",
            &status);
  ::unlink(path.c_str());
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(out,
            "['caf\\ufffd', 'cut \\ufffd\\ufffd', '\\ufffd\\ufffd\\ufffd', '\\ufffd\\ufffd', "
            "'\\ufffd\\ufffd\\ufffd\\ufffd', '\\xe9\\u20ac\\U0001d11e', 'plain']\n");
}

// Containers in the forms Python's pickler writes them: an empty list alone, one item with
// APPEND/SETITEM, a pair as TUPLE2, more items between MARK and APPENDS/SETITEMS.
TEST(PickleWriter, ContainersTakePythonsShortForms) {
  PickleWriter w;
  w.begin_dict();
  w.key("a");
  w.begin_list();
  w.end_list();
  w.key("b");
  w.begin_list();
  w.integer(1);
  w.end_list();
  w.key("c");
  w.begin_tuple();
  w.integer(1);
  w.integer(2);
  w.end_tuple();
  w.end_dict();
  EXPECT_EQ(w.finish(), std::string("\x80\x02}(X\x01\0\0\0a]X\x01\0\0\0b]K\x01"
                                    "aX\x01\0\0\0cK\x01K\x02\x86u.",
                                    34));
  PickleWriter one;
  one.begin_dict();
  one.key("k");
  one.begin_tuple();
  one.end_tuple();
  one.end_dict();
  EXPECT_EQ(one.finish(), std::string("\x80\x02}X\x01\0\0\0k)s.", 12));
}

// Python writes the same values under each protocol a snapshot may have been saved with.
TEST(PickleReader, ReadsPythonPicklesOfProtocols2To5) {
  for (int protocol = 2; protocol <= 5; ++protocol) {
    SCOPED_TRACE(protocol);
    const std::string bytes = python_pickle(
        "proto" + std::to_string(protocol),
        "import pickle,sys\n"
        "shared = [1, 2]\n"
        "d = {'big': 2**64 - 1, 'neg': -2**63, 'small': -5, 'f': 0.25, 's': 'x' * 300,\n"
        "     'u': 'h\\u00e9', 't': (1, None, True), 'p': shared, 'q': shared, 'e': (),\n"
        "     'many': list(range(2000))}\n"
        "pickle.dump(d, open(sys.argv[1], 'wb'), protocol=" +
            std::to_string(protocol) + ")\n");
    PickleDocument doc;
    std::string error;
    ASSERT_TRUE(read_pickle(bytes, &doc, &error)) << error;
    const PickleNode& root = doc.root();
    ASSERT_EQ(root.kind, PickleKind::dict);
    EXPECT_EQ(root.items.size(), 22u);
    EXPECT_TRUE(doc.find(root, "big")->integer == static_cast<__int128>(UINT64_MAX));
    EXPECT_TRUE(doc.find(root, "neg")->integer == static_cast<__int128>(INT64_MIN));
    EXPECT_TRUE(doc.find(root, "small")->integer == -5);
    EXPECT_EQ(doc.find(root, "f")->floating, 0.25);
    EXPECT_EQ(doc.find(root, "s")->string, std::string(300, 'x'));
    EXPECT_EQ(doc.find(root, "u")->string, "h\xC3\xA9");
    const PickleNode* t = doc.find(root, "t");
    ASSERT_EQ(t->kind, PickleKind::tuple);
    ASSERT_EQ(t->items.size(), 3u);
    EXPECT_EQ(doc.at(t->items[1]).kind, PickleKind::none);
    EXPECT_TRUE(doc.at(t->items[2]).boolean);
    // The memo shares one node: the second reference is not a copy.
    EXPECT_EQ(doc.find(root, "p"), doc.find(root, "q"));
    EXPECT_EQ(doc.find(root, "p")->items.size(), 2u);
    EXPECT_EQ(doc.find(root, "e")->kind, PickleKind::tuple);
    const PickleNode* many = doc.find(root, "many");
    ASSERT_EQ(many->items.size(), 2000u);
    EXPECT_TRUE(doc.at(many->items[1999]).integer == 1999);
    EXPECT_EQ(doc.find(root, "absent"), nullptr);
  }
}

// A pickle whose unpickling would run a shell command: refused at the opcode that reaches for
// code, and the command never runs.
TEST(PickleReader, RefusesCodeWithoutRunningIt) {
  const std::string marker = temp_file("pwned");
  ::unlink(marker.c_str());
  for (int protocol : {2, 4}) {
    SCOPED_TRACE(protocol);
    const std::string bytes =
        python_pickle("evil" + std::to_string(protocol),
                      "import pickle,sys,os\n"
                      "class Evil:\n"
                      "    def __reduce__(self):\n"
                      "        return (os.system, ('touch " +
                          marker +
                          "',))\n"
                          "pickle.dump({'segments': [Evil()]}, open(sys.argv[1], 'wb'), protocol=" +
                          std::to_string(protocol) + ")\n");
    const std::string error = refused(bytes);
    EXPECT_NE(error.find(protocol == 2 ? "opcode GLOBAL (0x63) imports or calls Python code"
                                       : "opcode STACK_GLOBAL (0x93) imports or calls Python code"),
              std::string::npos)
        << error;
    EXPECT_EQ(error.rfind("byte ", 0), 0u) << error;
    TraceImage image;
    std::string why;
    EXPECT_FALSE(snapshot_to_trace(bytes, "evil.pickle", &image, &why));
    EXPECT_EQ(why, error);
  }
  struct stat st {};
  EXPECT_NE(::stat(marker.c_str(), &st), 0) << "the pickled command ran";
}

TEST(PickleReader, RefusesEveryOpcodeThatCallsCode) {
  const std::pair<char, const char*> ops[] = {
      {'R', "REDUCE (0x52)"},         {'b', "BUILD (0x62)"},
      {'i', "INST (0x69)"},           {'o', "OBJ (0x6f)"},
      {'\x81', "NEWOBJ (0x81)"},      {'\x92', "NEWOBJ_EX (0x92)"},
      {'\x82', "EXT1 (0x82)"},        {'\x83', "EXT2 (0x83)"},
      {'\x84', "EXT4 (0x84)"},        {'P', "PERSID (0x50)"},
      {'Q', "BINPERSID (0x51)"},      {'c', "GLOBAL (0x63)"},
      {'\x93', "STACK_GLOBAL (0x93)"}};
  for (const auto& [op, name] : ops) {
    // PROTO 2, None, the opcode: refused at byte 3, before it touches the stack.
    EXPECT_EQ(refused(std::string("\x80\x02N") + op + "."),
              std::string("byte 3: opcode ") + name +
                  " imports or calls Python code; a memory snapshot is plain data, and gpumem "
                  "never runs pickled code");
  }
  EXPECT_EQ(refused(std::string("\x80\x03"
                                "C\x01xN.",
                                7)),
            "byte 2: opcode SHORT_BINBYTES (0x43) is not one a PyTorch memory snapshot is "
            "written with");
  EXPECT_EQ(refused(std::string("\x80\x02\xff.")),
            "byte 2: byte 0xff is not a pickle opcode (damaged file?)");
}

TEST(PickleReader, RefusesDeepNestingHugeLengthsAndBrokenStacks) {
  // 100 nested lists: the APPEND that makes the 65th level fails (byte 2 + 100 + 64).
  std::string deep = std::string("\x80\x02") + std::string(100, ']') + std::string(99, 'a') + ".";
  EXPECT_EQ(refused(deep),
            "byte 166: containers nested deeper than 64 levels; a memory snapshot is a few "
            "levels deep");
  EXPECT_EQ(refused(std::string("\x80\x02") + std::string(100, '(')),
            "byte 66: more than 64 MARKs open at once; a memory snapshot nests a few levels");
  EXPECT_EQ(refused(std::string("\x80\x02X\xff\xff\xff\xff"
                                "abc")),
            "byte 2: a string of 4294967295 bytes runs past the end of the file (3 bytes left; "
            "cut short, or a damaged length)");
  EXPECT_EQ(refused(std::string("\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\x7f"
                                "abc")),
            "byte 2: a string of 9223372036854775807 bytes runs past the end of the file (3 "
            "bytes left; cut short, or a damaged length)");
  EXPECT_EQ(refused(std::string("\x80\x02\x8a\x11") + std::string(17, '\x01') + "."),
            "byte 2: an integer of 17 bytes; a memory snapshot's numbers fit in 16");
  EXPECT_EQ(refused(std::string("\x80\x02h\x07.")),
            "byte 2: memo GET of index 7, which was never PUT");
  EXPECT_EQ(refused(std::string("\x80\x02NN.")),
            "byte 4: STOP with 2 values on the stack and 0 open MARKs (expected one value, no "
            "MARK)");
  EXPECT_EQ(refused(std::string("\x80\x02Na.")),
            "byte 3: APPEND needs a list and a value on the stack");
  EXPECT_EQ(refused(std::string("\x80\x02K\x01K\x02u.")),
            "byte 6: an opcode needs a MARK and there is none");
  EXPECT_EQ(refused(std::string("\x80\x02](K\x01u.")),
            "byte 6: SETITEMS with an odd number of items (a key without its value)");
  EXPECT_EQ(refused(std::string("\x80\x02](K\x01K\x02u.")),
            "byte 8: SETITEMS applied to a value that is not a dict");
  EXPECT_EQ(refused(std::string("\x80\x09N.")), "byte 0: pickle protocol 9 is newer than 5");
}

// Every cut of a real snapshot-shaped pickle is refused with the byte where it broke; the whole
// file reads.
TEST(PickleReader, EveryTruncationIsRefused) {
  const std::string bytes = python_pickle(
      "cut",
      "import pickle,sys\n"
      "f = [{'filename': 'train.py', 'line': 3, 'name': 'step'}]\n"
      "d = {'segments': [{'address': 2**40, 'total_size': 2097152, 'blocks': []}],\n"
      "     'device_traces': [[{'action': 'alloc', 'addr': 2**40, 'size': 512, 'stream': 0,\n"
      "                         'time_us': 1700000000000000, 'frames': f}]]}\n"
      "pickle.dump(d, open(sys.argv[1], 'wb'), protocol=4)\n");
  PickleDocument doc;
  std::string error;
  ASSERT_TRUE(read_pickle(bytes, &doc, &error)) << error;
  for (size_t n = 0; n < bytes.size(); ++n) {
    SCOPED_TRACE(n);
    const std::string e = refused(bytes.substr(0, n));
    EXPECT_EQ(e.rfind("byte ", 0), 0u) << e;
  }
  // Protocol 4 frames its body: the cut shows at the frame's length, byte 2.
  const size_t body = bytes.size() - 11;
  EXPECT_EQ(refused(bytes.substr(0, bytes.size() - 1)),
            "byte 2: a frame of " + std::to_string(body) +
                " bytes runs past the end of the file (" + std::to_string(body - 1) +
                " bytes left; cut short?)");
  // Without frames (protocol 2) the reader runs to the end and misses the STOP.
  const std::string p2 =
      python_pickle("cut2",
                    "import pickle,sys\n"
                    "pickle.dump({'segments': []}, open(sys.argv[1], 'wb'), 2)\n");
  EXPECT_EQ(refused(p2.substr(0, p2.size() - 1)),
            "byte " + std::to_string(p2.size() - 1) +
                ": the file ends before the pickle's STOP opcode (cut short?)");
}

TEST(PickleReader, LooksLikePickleNeedsProto2To5) {
  EXPECT_TRUE(looks_like_pickle(std::string("\x80\x04\x95", 3)));
  EXPECT_TRUE(looks_like_pickle(std::string("\x80\x02", 2)));
  EXPECT_FALSE(looks_like_pickle(std::string("\x80\x01", 2)));
  EXPECT_FALSE(looks_like_pickle(std::string("\x80\x06", 2)));
  EXPECT_FALSE(looks_like_pickle("GPUMEMTR"));
  EXPECT_FALSE(looks_like_pickle(""));
}

}  // namespace
}  // namespace gpumem::formats
