// `mlctl rollout status APP [--wait]` shows (or follows) the latest canary analysis of an
// application; `mlctl rollout abort APP` rolls a running one back now.
#include "api/names.hpp"
#include "api/rollout.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "commands/rollout.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

namespace mlctl::cli {

namespace {

struct RolloutStatusOptions {
  std::string name;
  bool wait = false;
};

struct RolloutAbortOptions {
  std::string name;
};

int run_rollout_status(const RolloutStatusOptions& o, Context& ctx) {
  api::validate_name(o.name, "application name");
  auto client = api_client(ctx);
  const auto r = client.call("GET", api::routes::application_rollout(o.name));
  if (o.wait) { // the exit status tells the outcome, whether it is still running or not
    return follow_rollout(ctx, o.name, r.value("id", std::int64_t{0}));
  }
  print_result(ctx, r, [&] { print_rollout(r); });
  return 0;
}

int run_rollout_abort(const RolloutAbortOptions& o, Context& ctx) {
  api::validate_name(o.name, "application name");
  auto client = api_client(ctx);
  const auto r = client.call("POST", api::routes::application_rollout_abort(o.name),
                             nlohmann::json::object(), false);
  print_result(ctx, r, [&] { print_rollout(r); });
  return 0;
}

} // namespace

void register_rollout_status(CLI::App& rollout, Dispatch& dispatch) {
  auto opts = std::make_shared<RolloutStatusOptions>();
  auto* cmd = rollout.add_subcommand(
      "status", "Show the latest canary analysis of an application: gates, evidence, decision");
  cmd->add_option("app", opts->name, "Application name")->required()->type_name("APP");
  cmd->add_flag("--wait", opts->wait,
                "Follow a running rollout to its decision; exit 0 promoted, 3 rolled back or "
                "aborted, 1 superseded or failed");
  cmd->footer("Example:\n  mlctl rollout status mnist-app --wait");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_rollout_status(*opts, ctx); };
  });
}

void register_rollout_abort(CLI::App& rollout, Dispatch& dispatch) {
  auto opts = std::make_shared<RolloutAbortOptions>();
  auto* cmd = rollout.add_subcommand(
      "abort", "Stop a running canary analysis and go back to the revision before it");
  cmd->add_option("app", opts->name, "Application name")->required()->type_name("APP");
  cmd->footer("Example:\n  mlctl rollout abort mnist-app");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_rollout_abort(*opts, ctx); };
  });
}

} // namespace mlctl::cli
