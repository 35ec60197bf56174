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
    return app.exit(e);
  }
  if (!run) {
    std::fprintf(stderr, "gpumem: no command given; see `gpumem --help`\n");
    return 2;
  }
  return run();
}
