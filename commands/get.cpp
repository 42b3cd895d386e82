// `mlctl get applications [NAME]`: the applications on the platform, one line each.
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

struct GetApplicationsOptions {
  std::string name;
};

int run_get_applications(const GetApplicationsOptions& opts, Context& ctx) {
  auto client = api_client(ctx);
  nlohmann::json list;
  if (opts.name.empty()) {
    const auto route = api::routes::applications();
    list = require_list(client.call("GET", route), "applications", client.server() + route);
  } else {
    api::validate_name(opts.name, "application name");
    const auto route = api::routes::application(opts.name);
    list = {{"applications", nlohmann::json::array({require_list(
                                 client.call("GET", route), "stages", client.server() + route)})}};
  }
  print_result(ctx, list, [&] {
    Table table({"NAME", "REVISION", "MODELS", "READY", "UPDATED"});
    for (const auto& a : list.value("applications", nlohmann::json::array())) {
      table.add({a.value("name", std::string("?")), std::to_string(a.value("revision", 0)),
                 models_summary(a), a.value("ready", false) ? "yes" : "no",
                 a.value("updated_at", std::string("-"))});
    }
    table.print();
    if (table.empty()) {
      ctx.log()("no applications yet: mlctl apply -f FILE, or mlctl apply application NAME "
                "--model MODEL:VERSION");
    }
  });
  return 0;
}

} // namespace

void register_get(CLI::App& parent, Dispatch& dispatch) {
  auto* cmd = parent.add_subcommand("get", "List platform objects (applications)");
  cmd->require_subcommand(1);
  cmd->footer("Example:\n  mlctl get applications -o json");
  auto opts = std::make_shared<GetApplicationsOptions>();
  auto* sub = cmd->add_subcommand("applications",
                                  "List applications: revision, versions and weights, readiness");
  sub->alias("application"); // as kubectl: either form
  sub->add_option("name", opts->name, "Only this application")->type_name("APP");
  sub->footer("Example:\n  mlctl get applications");
  sub->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_get_applications(*opts, ctx); };
  });
}

} // namespace mlctl::cli
