// `mlctl delete application NAME`: removes an application, its history and its pins on
// model versions (which may then be deleted from the registry).
#include "api/app_routes.hpp"
#include "api/names.hpp"
#include "commands/commands.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

namespace mlctl::cli {

namespace {

struct DeleteApplicationOptions {
  std::string name;
  bool ignore_not_found = false;
};

int run_delete_application(const DeleteApplicationOptions& opts, Context& ctx) {
  api::validate_name(opts.name, "application name");
  auto client = api_client(ctx);
  nlohmann::json result;
  try {
    result = client.call("DELETE", api::routes::application(opts.name));
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::not_found || !opts.ignore_not_found) {
      throw;
    }
    result = {{"name", opts.name}, {"deleted", false}};
  }
  print_result(ctx, result, [&] {
    std::cout << "application/" << opts.name
              << (result.value("deleted", false) ? " deleted" : " not found") << "\n";
  });
  return 0;
}

} // namespace

void register_delete(CLI::App& parent, Dispatch& dispatch) {
  auto* cmd = parent.add_subcommand("delete", "Delete a platform object (an application)");
  cmd->require_subcommand(1);
  cmd->footer("Example:\n  mlctl delete application mnist-app-staging");
  auto opts = std::make_shared<DeleteApplicationOptions>();
  auto* sub = cmd->add_subcommand(
      "application", "Delete an application (its revisions and version pins go with it)");
  sub->alias("applications"); // as kubectl: either form
  sub->add_option("name", opts->name, "Application name")->required()->type_name("APP");
  sub->add_flag("--ignore-not-found", opts->ignore_not_found,
                "Succeed when the application does not exist");
  sub->footer("Example:\n  mlctl delete application mnist-app-staging --ignore-not-found");
  sub->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_delete_application(*opts, ctx); };
  });
}

} // namespace mlctl::cli
