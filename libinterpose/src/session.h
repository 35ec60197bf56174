// The process's trace, from load to exit: opened lazily at the first recorded event (a program
// that never touches CUDA leaves no file), filled with the header (pid, host, rank, command
// line, configuration, devices), re-opened under the child's own pid after fork, closed at exit.
#pragma once

#include <cstdint>

namespace gpumem {

class TraceWriter;

namespace session {

// Library constructor: configuration, fork handlers, exit handler, stack warm-up.
void init();
// The open trace, opening it on first use; nullptr when tracing is off, failed or closed.
// Hot path after the first call: one atomic load.
TraceWriter* writer();
// Records the device's name and capacity in the header the first time it is seen with CUDA
// initialised (an event before cuInit is asked about again at the next); a device CUDA does not
// have gets no header entry.
void note_device(int device);
// Exit: symbols (GPUMEM_STACKS=1), then a clean close. Later events are dropped.
void shutdown();
// _exit/_Exit called by the program (a forked worker's normal end, hooks/exit.cpp): the trace is
// closed as at exit, so it does not read as a crash. Only in the process that opened it: a vfork
// child (other pid, the parent's memory) leaves it alone.
void shutdown_at_exit_call();
// exec* called by the program (hooks/exec.cpp): the image ends, so the trace is closed as at exit
// (the new image, under the same pid, opens NAME.1). Only in the process that opened it. If the
// exec fails, the process's later events are not recorded, and the first of them says so.
void close_for_exec();
bool simulated();

}  // namespace session
}  // namespace gpumem
