// `mlctl rollout history APP` and `mlctl rollout undo APP [--to-revision N]`: the numbered
// revisions of an application, and going back to one (which makes a new revision).
#include "commands/rollout.hpp"
#include "commands/option_checks.hpp"

#include "api/app_routes.hpp"
#include "api/names.hpp"
#include "commands/application_print.hpp"
#include "commands/commands.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "manifest/application.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <optional>

namespace mlctl::cli {

namespace {

struct RolloutHistoryOptions {
  std::string name;
};

struct RolloutUndoOptions {
  std::string name;
  std::int64_t to_revision = 0; // 0: the revision before the current one
};

// A value of a change as the table shows it: strings bare, the rest as compact JSON.
std::string change_value(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// The CHANGE column: "created" for revision 1, "-" without a revision before it in the list,
// "none" for an equal spec, else the changes: "singular.model: mnist:2 -> mnist:3",
// "+monitoring" (added), "-singular" (removed), or only the field when its values are long.
std::string changes_text(const nlohmann::json& revision_json, std::int64_t revision) {
  if (!revision_json.contains("changes")) {
    return revision == 1 ? "created" : "-";
  }
  constexpr std::size_t k_max_entry = 50;
  std::string out;
  for (const auto& c : revision_json["changes"]) {
    const auto field = c.value("field", std::string("?"));
    std::string entry;
    if (!c.contains("to")) {
      entry = "-" + field;
    } else if (!c.contains("from")) {
      entry = "+" + field;
    } else {
      entry = field + ": " + change_value(c["from"]) + " -> " + change_value(c["to"]);
      if (entry.size() > k_max_entry) {
        entry = field;
      }
    }
    out += (out.empty() ? "" : "; ") + entry;
  }
  return out.empty() ? "none" : out;
}

int run_rollout_history(const RolloutHistoryOptions& opts, Context& ctx) {
  api::validate_name(opts.name, "application name");
  auto client = api_client(ctx);
  const auto route = api::routes::application_revisions(opts.name);
  auto answer = require_list(client.call("GET", route), "revisions", client.server() + route);
  // Each revision gets the changes of its spec from the one before it, which the models alone
  // do not show (an alias for the same version, capture or monitoring settings).
  // In JSON: "changes": [{"field", "from"?, "to"?}].
  auto& revisions = answer["revisions"]; // require_list: an array
  std::optional<nlohmann::json> before;
  for (auto& r : revisions) {
    auto manifest = r.value("manifest", nlohmann::json::object());
    if (before) {
      auto& changes = r["changes"] = nlohmann::json::array();
      for (const auto& c : manifest::spec_changes(*before, manifest)) {
        auto& change = changes.emplace_back(nlohmann::json{{"field", c.field}});
        if (c.before) {
          change["from"] = *c.before;
        }
        if (c.after) {
          change["to"] = *c.after;
        }
      }
    }
    before = std::move(manifest);
  }
  print_result(ctx, answer, [&] {
    Table table({"REVISION", "TIME", "ACTOR", "CAUSE", "MODELS", "CHANGE", "CURRENT"});
    for (const auto& r : revisions) {
      const auto revision = r.value("revision", std::int64_t{0});
      table.add({std::to_string(revision), r.value("time", std::string("-")),
                 r.value("actor", std::string("-")), r.value("cause", std::string("-")),
                 models_summary(r), changes_text(r, revision),
                 r.value("current", false) ? "*" : ""});
    }
    table.print();
  });
  return 0;
}

int run_rollout_undo(const RolloutUndoOptions& opts, Context& ctx) {
  api::validate_name(opts.name, "application name");
  auto client = api_client(ctx);
  nlohmann::json body = nlohmann::json::object();
  if (opts.to_revision > 0) {
    body["revision"] = opts.to_revision;
  }
  const auto r = client.call("POST", api::routes::application_rollback(opts.name), body, false);
  print_result(ctx, r, [&] {
    std::cout << "application/" << opts.name << " rolled back to revision "
              << r.value("rolled_back_to", 0);
    if (r.value("result", std::string()) == "unchanged") {
      std::cout << " (unchanged: it is the current spec)\n";
    } else {
      std::cout << " (now revision " << r.value("revision", 0) << ")\n";
    }
  });
  return 0;
}

} // namespace

void register_rollout_history(CLI::App& rollout, Dispatch& dispatch) {
  auto opts = std::make_shared<RolloutHistoryOptions>();
  auto* cmd = rollout.add_subcommand(
      "history", "List an application's revisions: time, actor, versions, weights, what changed");
  cmd->add_option("app", opts->name, "Application name")->required()->type_name("APP");
  cmd->footer("Example:\n  mlctl rollout history mnist-app");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_rollout_history(*opts, ctx); };
  });
}

void register_rollout_undo(CLI::App& rollout, Dispatch& dispatch) {
  auto opts = std::make_shared<RolloutUndoOptions>();
  auto* cmd = rollout.add_subcommand("undo", "Go back to an earlier revision (as a new revision)");
  cmd->add_option("app", opts->name, "Application name")->required()->type_name("APP");
  cmd->add_option("--to-revision", opts->to_revision,
                  "The revision to go back to (default: the one before the current)")
      ->check(positive())
      ->type_name("N");
  cmd->footer("Example:\n  mlctl rollout undo mnist-app --to-revision 1");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_rollout_undo(*opts, ctx); };
  });
}

void register_rollout(CLI::App& parent, Dispatch& dispatch) {
  auto* rollout =
      parent.add_subcommand("rollout", "Roll out versions: canary analysis, status, history, undo");
  rollout->require_subcommand(1);
  rollout->footer("Example:\n  mlctl rollout canary mnist-app --model mnist:2 --gate 'accuracy>=0.95' --wait");
  register_rollout_canary(*rollout, dispatch);
  register_rollout_status(*rollout, dispatch);
  register_rollout_abort(*rollout, dispatch);
  register_rollout_history(*rollout, dispatch);
  register_rollout_undo(*rollout, dispatch);
}

} // namespace mlctl::cli
