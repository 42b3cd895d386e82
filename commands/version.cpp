#include "commands/commands.hpp"
#include "commands/output.hpp"
#include "util/build_info.hpp"

#include <CLI/CLI.hpp>
#include <iostream>

namespace mlctl::cli {

namespace {

struct VersionOptions {};

int run_version(const VersionOptions&, Context& ctx) {
  const nlohmann::json info = {
      {"version", build::version()},
      {"git_commit", build::git_commit()},
      {"build_type", build::build_type()},
      {"target_cpu", build::target_cpu()},
  };
  print_result(ctx, info, [&] {
    std::cout << "mlctl " << build::version() << " (commit " << build::git_commit() << ", "
              << build::build_type() << ", " << build::target_cpu() << ")\n";
  });
  return 0;
}

} // namespace

void register_version(CLI::App& parent, Dispatch& dispatch) {
  auto* cmd = parent.add_subcommand("version", "Print the version, git commit and build type");
  cmd->footer("Example:\n  mlctl version -o json");
  cmd->callback([&dispatch] {
    dispatch.run = [](Context& ctx) { return run_version(VersionOptions{}, ctx); };
  });
}

} // namespace mlctl::cli
