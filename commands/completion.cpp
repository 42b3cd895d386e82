#include "api/app_routes.hpp"
#include "client/api_client.hpp"
#include "commands/cli_spec.hpp"
#include "commands/commands.hpp"
#include "commands/remote.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <chrono>
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

int run_complete_names(const std::string& what, Context& ctx) {
  try {
    auto options = api_client_options(ctx);
    options.timeout = std::chrono::milliseconds(2000);
    options.connect_timeout = std::chrono::milliseconds(500);
    options.retries = 0;
    options.log = {};
    options.progress = {};
    client::ApiClient client(options);
    if (what == "applications") {
      for (const auto& app : client.call("GET", api::routes::applications())
                                 .value("applications", nlohmann::json::array())) {
        std::cout << app.value("name", std::string()) << "\n";
      }
    } else {
      client::ModelListFilter filter;
      filter.limit = 1000;
      for (const auto& m : client.list_models(filter).models) {
        std::cout << m.name << "\n";
      }
    }
  } catch (const std::exception&) {
    // No server, no names: the shell completes nothing rather than printing an error.
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

  // Hidden: what the completion scripts call for application and model names. Quick and
  // silent: one try with a short timeout, nothing printed when the server is unreachable.
  auto names = std::make_shared<std::string>();
  auto* complete = parent.add_subcommand("__complete", "Print application or model names (for completions)");
  complete->group("");
  complete->add_option("what", *names, "applications or models")
      ->required()
      ->check(CLI::IsMember({"applications", "models"}));
  complete->callback([names, &dispatch] {
    dispatch.run = [names](Context& ctx) { return run_complete_names(*names, ctx); };
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
