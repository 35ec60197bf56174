// `gpumem` subcommands register themselves: each cli/cmd_*.cpp adds one with GPUMEM_COMMAND, so
// adding a command never edits main.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace gpumem::cli {

// Adds a subcommand to `app`; sets *run to what executes it (returning the process exit status).
using RegisterFn = void (*)(CLI::App& app, std::function<int()>* run);

struct CommandRegistry {
  static std::vector<RegisterFn>& all() {
    static std::vector<RegisterFn> fns;
    return fns;
  }
};

struct CommandRegistrar {
  explicit CommandRegistrar(RegisterFn fn) { CommandRegistry::all().push_back(fn); }
};

}  // namespace gpumem::cli

#define GPUMEM_COMMAND(fn) static ::gpumem::cli::CommandRegistrar gpumem_registrar_##fn(fn)
