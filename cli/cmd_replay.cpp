// `gpumem replay TRACE [--pool none|growth|fixed|expandable] [--limit X] [--pool-size X]
//                      [--capacity X] [--json F] [--no-search]`: the recorded allocations
// through a policy's resources on a simulated device.
#include "command.h"

#include <cstdio>

#include "gpumem/formats/convert.h"
#include "gpumem/replay/replay_command.h"
#include "gpumem/visible_text.h"

namespace {

void register_replay(CLI::App& app, std::function<int()>* run) {
  auto o = std::make_shared<gpumem::replay::ReplayCommandOptions>();
  auto no_search = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "replay",
      "Replay a trace's allocations under a policy and limit: does it fit, where it fails, and "
      "the smallest limit per policy");
  cmd->add_option("trace", o->trace,
                  "a trace file written by `gpumem run`, a PyTorch memory snapshot (pickle) or an "
                  "RMM logging-adaptor CSV (recognised by content)")
      ->required();
  cmd->add_option("--pool", o->pool,
                  "policy to replay under: none, growth, fixed or expandable (default none)");
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
    *run = [o] {
      // Only the fixed pool has a size: under another policy --pool-size would be ignored.
      if (!o->pool_size.empty() && o->pool != "fixed") {
        std::fprintf(stderr,
                     "gpumem replay: --pool-size sizes the fixed pool only, and the policy "
                     "replayed is %s; add --pool fixed or drop --pool-size\n",
                     gpumem::visible(o->pool).c_str());
        return 2;
      }
      // A snapshot or an RMM log becomes a temporary trace, removed when the replay is done.
      gpumem::formats::ForeignInputs foreign;
      gpumem::replay::ReplayCommandOptions options = *o;
      std::vector<std::string> paths{options.trace};
      std::string error;
      if (!foreign.convert(&paths, &error)) {
        std::fprintf(stderr, "gpumem replay: %s\n", gpumem::visible(error).c_str());
        return 1;
      }
      options.trace = paths[0];
      options.shown_as = foreign.original(paths[0]);
      return gpumem::replay::replay_main(options);
    };
  });
}

GPUMEM_COMMAND(register_replay);

}  // namespace
