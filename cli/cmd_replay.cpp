// `gpumem replay TRACE [--pool none|growth|fixed] [--limit X] [--pool-size X] [--capacity X]
// [--json F] [--no-search]`: the recorded allocations through a policy's resources on a simulated
// device.
#include "command.h"

#include "gpumem/replay/replay_command.h"

namespace {

void register_replay(CLI::App& app, std::function<int()>* run) {
  auto o = std::make_shared<gpumem::replay::ReplayCommandOptions>();
  auto no_search = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "replay",
      "Replay a trace's allocations under a policy and limit: does it fit, where it fails, and "
      "the smallest limit per policy");
  cmd->add_option("trace", o->trace, "a trace file written by `gpumem run`")->required();
  cmd->add_option("--pool", o->pool,
                  "policy to replay under: none, growth or fixed (default none)");
  cmd->add_option("--limit", o->limit,
                  "cap per device: 512MiB, 8GiB, 60% of capacity (default: the recorded limit, "
                  "else none)");
  cmd->add_option("--pool-size", o->pool_size,
                  "fixed pool's size: 512MiB, 8GiB (default: the recorded GPUMEM_POOL_SIZE, else "
                  "the limit)");
  cmd->add_option("--capacity", o->capacity,
                  "simulated device size (default: the capacity recorded in the trace)");
  cmd->add_option("--json", o->json_path, "write the JSON result (gpumem.replay/1); - = stdout");
  cmd->add_flag("--no-search", *no_search, "skip the smallest-limit search (faster on big traces)");
  cmd->callback([run, o, no_search] {
    o->search = !*no_search;
    *run = [o] { return gpumem::replay::replay_main(*o); };
  });
}

GPUMEM_COMMAND(register_replay);

}  // namespace
