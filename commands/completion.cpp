#include "commands/cli_spec.hpp"
#include "commands/commands.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <iostream>

namespace mlctl::cli {

namespace {

struct CompletionOptions {
  std::string shell;
};

int run_completion(const CompletionOptions& opts, const CLI::App& root, Context&) {
  const auto spec = describe_cli(root);
  if (opts.shell == "bash") {
    std::cout << bash_completion(spec);
  } else if (opts.shell == "zsh") {
    std::cout << zsh_completion(spec);
  } else {
    std::cout << fish_completion(spec);
  }
  return 0;
}

} // namespace

void register_completion(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<CompletionOptions>();
  auto* cmd = parent.add_subcommand("completion", "Print a shell completion script (bash, zsh or fish)");
  cmd->add_option("shell", opts->shell, "The shell")->required()->check(CLI::IsMember({"bash", "zsh", "fish"}));
  cmd->footer("Example:\n  source <(mlctl completion bash)");
  cmd->callback([opts, &parent, &dispatch] {
    dispatch.run = [opts, &parent](Context& ctx) { return run_completion(*opts, parent, ctx); };
  });

  auto* man = parent.add_subcommand("man-page", "Print the mlctl(1) man page (troff)");
  man->group(""); // hidden: the build uses it to generate mlctl.1
  man->footer("Example:\n  mlctl man-page > mlctl.1 && man -l mlctl.1");
  man->callback([&parent, &dispatch] {
    dispatch.run = [&parent](Context&) {
      std::cout << man_page(describe_cli(parent));
      return 0;
    };
  });
}

} // namespace mlctl::cli
