// gpumem: run a program under the profiler, read traces, report, replay and fit.
#include <cstdio>

#include "command.h"

int main(int argc, char** argv) {
  CLI::App app{"gpumem: find out where GPU memory goes, and keep it inside a budget"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "gpumem 0.1.0");
  std::function<int()> run;
  for (auto fn : gpumem::cli::CommandRegistry::all()) fn(app, &run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and version exit 0; every usage error exits 2, whatever CLI11's own code for it.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!run) {
    std::fprintf(stderr, "gpumem: no command given; see `gpumem --help`\n");
    return 2;
  }
  return run();
}
