// `mlctl describe application NAME`: one application in detail (stages, versions, weights,
// endpoints, counters; health when the monitors report it).
#include "api/app_routes.hpp"
#include "api/names.hpp"
#include "commands/application_print.hpp"
#include "commands/commands.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"

#include <CLI/CLI.hpp>
#include <memory>

namespace mlctl::cli {

namespace {

struct DescribeApplicationOptions {
  std::string name;
};

int run_describe_application(const DescribeApplicationOptions& opts, Context& ctx) {
  api::validate_name(opts.name, "application name");
  auto client = api_client(ctx);
  const auto route = api::routes::application(opts.name);
  const auto a = require_list(client.call("GET", route), "stages", client.server() + route);
  print_result(ctx, a, [&] { print_application_details(a, client.server()); });
  return 0;
}

} // namespace

void register_describe(CLI::App& parent, Dispatch& dispatch) {
  auto* cmd =
      parent.add_subcommand("describe", "Show one platform object in detail (an application)");
  cmd->require_subcommand(1);
  cmd->footer("Example:\n  mlctl describe application mnist-app");
  auto opts = std::make_shared<DescribeApplicationOptions>();
  auto* sub = cmd->add_subcommand(
      "application", "Show an application: stages, versions, weights, endpoints, health");
  sub->alias("applications"); // as kubectl: either form
  sub->add_option("name", opts->name, "Application name")->required()->type_name("APP");
  sub->footer("Example:\n  mlctl describe application mnist-app -o yaml");
  sub->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_describe_application(*opts, ctx); };
  });
}

} // namespace mlctl::cli
