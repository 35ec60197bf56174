// `gpumem export`, and `gpumem report` / `replay` given snapshots and RMM logs: recognised by
// content, same numbers as the trace, and clear refusals.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"
#include "trace_file.h"
#include "units.h"

namespace gpumem::formats {
namespace {

using formats_test::read_all;
using formats_test::shell;
using formats_test::temp_file;
using formats_test::write_all;

std::string make_trace(const std::string& name) {
  replay_test::TraceFile t(80ull << 30);
  t.alloc(0x7f0000000000, 3 * kMiB);
  t.alloc(0x7f0000400000, kMiB);
  t.free(0x7f0000000000, 3 * kMiB);
  const std::string path = temp_file(name + ".trace");
  t.write(path);
  return path;
}

std::string cli(const std::string& args, int* status) {
  return shell(std::string(GPUMEM_CLI) + " " + args + " 2>&1", status);
}

TEST(Command, ExportThenReportGivesTheTracesNumbers) {
  const std::string trace = make_trace("cmd");
  const std::string snap = temp_file("cmd.pickle"), csv = temp_file("cmd-log.trace");
  int status = 0;
  cli("export " + trace + " --pytorch-snapshot " + snap, &status);
  ASSERT_EQ(status, 0);
  // A CSV under a .trace name: the content decides.
  cli("export " + trace + " --rmm-csv " + csv, &status);
  ASSERT_EQ(status, 0);
  EXPECT_EQ(read_all(csv).substr(0, 39), "Thread,Time,Action,Pointer,Size,Stream\n");
  for (const std::string& input : {trace, snap, csv}) {
    SCOPED_TRACE(input);
    const std::string json = temp_file("cmd.json");
    cli("report " + input + " --json " + json, &status);
    ASSERT_EQ(status, 0);
    const std::string text = read_all(json);
    EXPECT_NE(text.find("\"allocated_bytes\": 4194304"), std::string::npos) << text.substr(0, 2000);
    EXPECT_NE(text.find("\"leaked_bytes\": 1048576"), std::string::npos);
    // The report names the file given, not the temporary trace a snapshot or log became (gone
    // once the report is written).
    EXPECT_NE(text.find("\"path\": \"" + input + "\""), std::string::npos) << text.substr(0, 2000);
    EXPECT_EQ(text.find("gpumem-input-"), std::string::npos);
    ::unlink(json.c_str());
  }
  // The terminal summary too, with nothing said of the pid and host a snapshot does not have.
  const std::string summary = cli("report " + snap, &status);
  EXPECT_EQ(status, 0) << summary;
  EXPECT_NE(summary.find("trace " + snap + ": 3 events"), std::string::npos) << summary;
  const std::string out = cli("replay " + snap + " --no-search", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("peak allocated 4.00 MiB"), std::string::npos) << out;
  EXPECT_NE(out.find("gpumem replay " + snap + ": policy none"), std::string::npos) << out;
  for (const auto& p : {trace, snap, csv}) ::unlink(p.c_str());
}

TEST(Command, HostileOrDamagedInputIsRefusedWithWhereItBroke) {
  const std::string evil = temp_file("evil.pickle");
  write_all(evil, std::string("\x80\x02}(X\x08\x00\x00\x00segmentscos\nsystem\n.", 29));
  int status = 0;
  std::string out = cli("report " + evil, &status);
  EXPECT_EQ(status, 1);
  EXPECT_EQ(out, "gpumem report: '" + evil +
                     "' looks like a PyTorch memory snapshot (pickle) but cannot be read: byte 17: "
                     "opcode GLOBAL (0x63) imports or calls Python code; a memory snapshot is "
                     "plain data, and gpumem never runs pickled code; pass a snapshot written by "
                     "torch.cuda.memory._dump_snapshot, or a gpumem trace\n");
  const std::string bad_csv = temp_file("bad.csv");
  write_all(bad_csv,
            "Thread,Time,Action,Pointer,Size,Stream\n1,10:00:00.000001,allocate,0x10,"
            "5,0\n1,10:00:00.000002,resize,0x10,5,0\n");
  out = cli("replay " + bad_csv, &status);
  EXPECT_EQ(status, 1);
  EXPECT_EQ(out,
            "gpumem replay: '" + bad_csv +
                "' looks like a RAPIDS RMM logging_resource_adaptor CSV but cannot be read: "
                "line 3 (byte 75): action 'resize' is not allocate, free or allocate failure; pass "
                "a log written by RMM's logging_resource_adaptor, or a gpumem trace\n");
  out = cli("export " + evil, &status);
  EXPECT_EQ(status, 2);
  EXPECT_EQ(out,
            "gpumem export: name one output: --pytorch-snapshot OUT.pickle or --rmm-csv "
            "OUT.csv\n");
  ::unlink(evil.c_str());
  ::unlink(bad_csv.c_str());
}

// 6 KB naming one segment 3000 times and its block 3000 times: refused at the first repeat (it
// took 20 s and 2 GB when each repeat was read as a new allocation).
TEST(Command, SnapshotRepeatingOneDictIsRefused) {
  const std::string bomb = temp_file("bomb.pickle");
  write_all(bomb, formats_test::repeated_dict_snapshot(3000, 3000));
  for (const char* command : {"report --json - ", "replay "}) {
    SCOPED_TRACE(command);
    int status = 0;
    const std::string out = cli(command + bomb, &status);
    EXPECT_EQ(status, 1);
    EXPECT_EQ(out, "gpumem " + std::string(command).substr(0, 6) + ": '" + bomb +
                       "' looks like a PyTorch memory snapshot (pickle) but cannot be read: "
                       "segments[0].blocks[1]: is the dict of an earlier segment, block or trace "
                       "entry again (a pickle memo reference or DUP); "
                       "torch.cuda.memory._dump_snapshot gives each its own dict; pass a snapshot "
                       "written by torch.cuda.memory._dump_snapshot, or a gpumem trace\n");
  }
  ::unlink(bomb.c_str());
}

TEST(Command, CsvOfATwoDeviceTraceNeedsADevice) {
  replay_test::TraceFile t(80ull << 30, "none", 0, 2);
  t.alloc(0x1000, 100, 0);
  t.alloc(0x2000, 200, 1);
  const std::string path = temp_file("two.trace"), csv = temp_file("two.csv");
  t.write(path);
  int status = 0;
  std::string out = cli("export " + path + " --rmm-csv " + csv, &status);
  EXPECT_EQ(status, 1);
  EXPECT_EQ(out, "gpumem export: '" + path +
                     "' has allocations on devices 0, 1; RMM writes one log per device: choose "
                     "one with --device\n");
  cli("export " + path + " --rmm-csv " + csv + " --device 1", &status);
  EXPECT_EQ(status, 0);
  const std::string text = read_all(csv);
  EXPECT_NE(text.find(",allocate,0x2000,200,0\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("0x1000"), std::string::npos) << text;
  ::unlink(path.c_str());
  ::unlink(csv.c_str());
}

// A trace that is not whole still exports, and the note says what the output lacks; a whole one
// exports without a word.
TEST(Command, ExportOfAnIncompleteTraceSaysWhatTheOutputLacks) {
  replay_test::TraceFile t(80ull << 30);
  t.alloc(0x1000, 100);
  t.header().flags &= ~trace::kHeaderClosed;  // killed: no clean close
  const std::string path = temp_file("killed.trace"), snap = temp_file("killed.pickle"),
                    csv = temp_file("killed.csv");
  t.write(path);
  int status = 0;
  std::string out = cli("export " + path + " --pytorch-snapshot " + snap, &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "gpumem export: note: '" + path +
                     "' is incomplete (not closed cleanly (process killed or crashed?)); the "
                     "snapshot holds every record that could be read\n");
  EXPECT_NE(cli("report " + snap, &status).find("1 events"), std::string::npos);
  out = cli("export " + path + " --rmm-csv " + csv, &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "gpumem export: note: '" + path +
                     "' is incomplete (not closed cleanly (process killed or crashed?)); the log "
                     "holds every record that could be read\n");
  EXPECT_NE(read_all(csv).find(",allocate,0x1000,100,0\n"), std::string::npos);
  for (const auto& p : {snap, csv}) ::unlink(p.c_str());

  // A bounded trace (GPUMEM_TRACE_MAX) whose middle was dropped.
  out = cli(std::string("export ") + GPUMEM_BOUNDED_TRACE + " --pytorch-snapshot " + snap, &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, std::string("gpumem export: note: '") + GPUMEM_BOUNDED_TRACE +
                     "' is bounded (GPUMEM_TRACE_MAX): 90112 records of its middle were dropped, "
                     "and the snapshot has only what its digest kept of them; for all of them, "
                     "record again with a larger GPUMEM_TRACE_MAX\n");
  ::unlink(snap.c_str());

  const std::string whole = make_trace("whole");
  EXPECT_EQ(cli("export " + whole + " --pytorch-snapshot " + snap, &status), "");
  EXPECT_EQ(status, 0);
  for (const auto& p : {path, whole, snap}) ::unlink(p.c_str());
}

// A snapshot or a log given where a trace is expected: said what it is and which commands read it.
TEST(Command, ExportOfASnapshotOrLogSaysWhichCommandsReadIt) {
  const std::string trace = make_trace("foreign");
  const std::string snap = temp_file("foreign.pickle"), csv = temp_file("foreign.csv"),
                    out = temp_file("foreign-out.pickle");
  int status = 0;
  cli("export " + trace + " --pytorch-snapshot " + snap, &status);
  ASSERT_EQ(status, 0);
  cli("export " + trace + " --rmm-csv " + csv, &status);
  ASSERT_EQ(status, 0);
  EXPECT_EQ(cli("export " + snap + " --pytorch-snapshot " + out, &status),
            "gpumem export: '" + snap +
                "' is a PyTorch memory snapshot (pickle), not a gpumem trace: export converts "
                "gpumem traces; `gpumem report` and `gpumem replay` read this file as it is\n");
  EXPECT_EQ(status, 1);
  EXPECT_EQ(cli("export " + csv + " --pytorch-snapshot " + out, &status),
            "gpumem export: '" + csv +
                "' is a RAPIDS RMM logging_resource_adaptor CSV, not a gpumem trace: export "
                "converts gpumem traces; `gpumem report` and `gpumem replay` read this file as it "
                "is\n");
  EXPECT_EQ(status, 1);
  EXPECT_NE(
      cli("dump " + snap, &status)
          .find("gpumem dump: '" + snap +
                "' is a PyTorch memory snapshot (pickle), not a gpumem trace: dump prints "
                "gpumem traces; `gpumem report` and `gpumem replay` read this file as it is\n"),
      std::string::npos);
  EXPECT_EQ(status, 1);
  for (const auto& p : {trace, snap, csv, out}) ::unlink(p.c_str());
}

// `export T --pytorch-snapshot T` (a slip of the shell) would replace the trace with its snapshot.
TEST(Command, ExportNeverWritesOverItsTrace) {
  const std::string path = make_trace("self");
  const std::string before = read_all(path);
  for (const char* option : {" --pytorch-snapshot ", " --rmm-csv "}) {
    int status = 0;
    const std::string out = cli("export " + path + option + path, &status);
    EXPECT_EQ(status, 2);
    EXPECT_EQ(out, "gpumem export: the output " + path +
                       " is the trace itself, which writing it would replace; choose another "
                       "output path\n");
    EXPECT_EQ(read_all(path), before);
  }
  ::unlink(path.c_str());
}

// A report's output naming the snapshot or RMM log it reads is refused like one naming a trace:
// the check saw only the temporary trace converted from it, and the input was written over.
TEST(Command, ReportNeverWritesOverASnapshotOrLogItReads) {
  const std::string trace = make_trace("over");
  const std::string snap = temp_file("over.pickle"), csv = temp_file("over.csv");
  int status = 0;
  cli("export " + trace + " --pytorch-snapshot " + snap, &status);
  ASSERT_EQ(status, 0);
  cli("export " + trace + " --rmm-csv " + csv, &status);
  ASSERT_EQ(status, 0);
  for (const std::string& input : {snap, csv}) {
    const std::string before = read_all(input);
    for (const char* option : {" --json ", " --html ", " --perfetto "}) {
      const std::string out = cli("report " + input + option + input, &status);
      EXPECT_EQ(status, 1) << out;
      EXPECT_NE(out.find("names a file this report reads; writing there would destroy it"),
                std::string::npos)
          << out;
      EXPECT_EQ(read_all(input), before);
    }
  }
  for (const std::string& f : {trace, snap, csv}) ::unlink(f.c_str());
}

// "-" is stdout, as for report and replay (a file named "-" was written in the current folder).
TEST(Command, ExportToDashWritesStdout) {
  const std::string trace = make_trace("dash");
  const std::string snap = temp_file("dash.pickle"), csv = temp_file("dash.csv");
  int status = 0;
  cli("export " + trace + " --pytorch-snapshot " + snap, &status);
  ASSERT_EQ(status, 0);
  cli("export " + trace + " --rmm-csv " + csv, &status);
  ASSERT_EQ(status, 0);
  const std::string folder = temp_file("dash-cwd");
  ASSERT_EQ(::mkdir(folder.c_str(), 0700), 0);
  EXPECT_EQ(shell("cd " + folder + " && " + GPUMEM_CLI + " export " + trace +
                      " --pytorch-snapshot - 2>/dev/null",
                  &status),
            read_all(snap));
  EXPECT_EQ(status, 0);
  EXPECT_EQ(
      shell("cd " + folder + " && " + GPUMEM_CLI + " export " + trace + " --rmm-csv - 2>/dev/null",
            &status),
      read_all(csv));
  EXPECT_EQ(status, 0);
  struct stat st;
  EXPECT_NE(::stat((folder + "/-").c_str(), &st), 0) << "a file named - was written";
  ::rmdir(folder.c_str());
  for (const std::string& f : {trace, snap, csv}) ::unlink(f.c_str());
}

TEST(Command, CsvOfADeviceWithoutAllocationsIsRefused) {
  replay_test::TraceFile t(80ull << 30, "none", 0, 4);
  t.alloc(0x1000, 100, 0);
  t.alloc(0x2000, 200, 1);
  t.failed(1 << 20, 0, 2);  // device 2 only failed: its log has the failure
  const std::string path = temp_file("devices.trace"), csv = temp_file("devices.csv");
  t.write(path);
  int status = 0;
  std::string out = cli("export " + path + " --rmm-csv " + csv + " --device 3", &status);
  EXPECT_EQ(status, 1);
  EXPECT_EQ(out, "gpumem export: '" + path +
                     "' has no allocation on device 3; it has allocations on devices 0, 1: choose "
                     "one of them with --device\n");
  out = cli("export " + path + " --rmm-csv " + csv + " --device 2", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(read_all(csv).find(",allocate failure,0x0,1048576,0\n"), std::string::npos);
  ::unlink(path.c_str());
  ::unlink(csv.c_str());
}

}  // namespace
}  // namespace gpumem::formats
