// `mlctl rollout canary APP --model M [--gate ...] [--wait]`: automated canary analysis. The
// server moves a share of the traffic to the candidate and judges it (lib/server/rollouts.hpp);
// this command starts it and, with --wait, follows it to the decision: exit 0 promoted, 3 rolled
// back. Also the follow-and-print code `rollout status` shares.
#include "api/names.hpp"
#include "api/rollout.hpp"
#include "api/time.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "commands/rollout.hpp"
#include "util/error.hpp"
#include "util/interrupt.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

namespace mlctl::cli {

namespace {

struct RolloutCanaryOptions {
  std::string name;
  std::string model;
  int weight = 10;
  std::vector<std::string> gates;
  std::int64_t min_requests = 500;
  std::int64_t min_labelled = 100;
  double confidence = 0.95;
  std::string timeout = "10m";
  bool wait = false;
};

std::string number_or_dash(const nlohmann::json& v, int decimals) {
  return v.is_number() ? format_fixed(v.get<double>(), decimals) : "-";
}

std::string decision_line(const nlohmann::json& r) {
  const auto status = r.value("status", std::string());
  const auto id = std::to_string(r.value("id", 0));
  const auto app = r.value("application", std::string());
  const auto model = r.value("model", std::string());
  const auto revision = [&] {
    return r["final_revision"].is_number()
               ? " (revision " + std::to_string(r["final_revision"].get<std::int64_t>()) + ")"
               : std::string();
  };
  if (status == "running") {
    return "rollout " + id + " of " + app + ": canary " + model + " at " +
           std::to_string(r.value("weight", 0)) + "% next to " + r.value("primary", std::string()) +
           ", running until " + r.value("deadline", std::string("?"));
  }
  if (status == "promoted") {
    return "rollout " + id + " of " + app + ": promoted " + model + revision();
  }
  if (status == "rolled_back" || status == "aborted") {
    return "rollout " + id + " of " + app + ": " + (status == "aborted" ? "aborted" : "rolled back") +
           " " + model + "; back on " + r.value("primary", std::string()) + revision();
  }
  return "rollout " + id + " of " + app + ": " + status;
}

// Where ground truth comes from, when the analysis waits for it (or timed out waiting): a canary
// started without labels in mind waits its whole --timeout and is rolled back.
std::optional<std::string> labels_hint(const nlohmann::json& r) {
  const auto verdict = r.value("verdict", nlohmann::json::object());
  const auto comparison = verdict.value("comparison", nlohmann::json::object());
  const auto min_labelled =
      r.value("spec", nlohmann::json::object()).value("min_labelled", std::int64_t{0});
  const bool waiting = r.value("status", std::string()) == "running" ||
                       r.value("reason", std::string()).starts_with("timed out");
  if (!waiting || min_labelled <= 0 || comparison.value("status", std::string()) != "pending") {
    return std::nullopt;
  }
  const auto app = r.value("application", std::string("APP"));
  return "the accuracy comparison needs " + std::to_string(min_labelled) +
         " labelled images per variant: send labels with `mlctl feedback --app " + app +
         " --file labels.csv` or `mlctl predict --app " + app +
         " --data DIR --feedback`; without ground truth, start the canary with --min-labelled 0";
}

} // namespace

void print_rollout(const nlohmann::json& r) {
  std::cout << decision_line(r) << "\n";
  if (r["reason"].is_string()) {
    std::cout << "  reason: " << r["reason"].get<std::string>() << "\n";
  }
  if (const auto hint = labels_hint(r)) {
    std::cout << "  hint: " << *hint << "\n";
  }
  const auto& verdict = r["verdict"];
  if (!verdict.is_object()) {
    return;
  }
  std::cout << "\n";
  Table gates({"GATE", "STATUS", "VALUE", "LIMIT", "DETAIL"});
  for (const auto& g : verdict.value("gates", nlohmann::json::array())) {
    gates.add({g.value("gate", std::string()), g.value("status", std::string()),
               number_or_dash(g["value"], 4), number_or_dash(g["limit"], 4),
               g.value("detail", std::string())});
  }
  const auto c = verdict.value("comparison", nlohmann::json::object());
  gates.add({"canary vs primary accuracy", c.value("status", std::string()),
             c["z"].is_number() ? "z=" + format_fixed(c["z"].get<double>(), 2) : "-",
             c["z_critical"].is_number() ? "z>=" + format_fixed(-c["z_critical"].get<double>(), 3)
                                         : "-",
             c.value("detail", std::string())});
  gates.print();
  std::cout << "\n";
  Table variants({"VARIANT", "MODEL", "REQUESTS", "ERRORS", "P50_MS", "P99_MS", "RECONSTRUCTION",
                  "THRESHOLD", "LABELLED", "ACCURACY"});
  const auto evidence = verdict.value("evidence", nlohmann::json::object());
  for (const auto* role : {"canary", "primary"}) {
    const auto e = evidence.value(role, nlohmann::json::object());
    variants.add({role, e.value("model", std::string()), std::to_string(e.value("requests", 0)),
                  std::to_string(e.value("errors", 0)), number_or_dash(e["p50_ms"], 2),
                  number_or_dash(e["p99_ms"], 2), number_or_dash(e["reconstruction"], 4),
                  number_or_dash(e["threshold"], 4), std::to_string(e.value("labelled", 0)),
                  number_or_dash(e["accuracy"], 4)});
  }
  variants.print();
}

int follow_rollout(Context& ctx, std::string_view app, std::int64_t id) {
  auto client = api_client(ctx);
  const auto log = ctx.log();
  std::string last_reason;
  bool hinted = false;
  auto last_note = std::chrono::steady_clock::now() - std::chrono::hours(1);
  while (true) {
    const auto r = client.call("GET", api::routes::application_rollout(app));
    if (r.value("id", std::int64_t{0}) != id) {
      throw Error(ErrorKind::conflict, "rollout " + std::to_string(id) + " of " + std::string(app) +
                                           " is no longer the latest (rollout " +
                                           std::to_string(r.value("id", 0)) + " is)");
    }
    const auto status = r.value("status", std::string());
    if (status != "running") {
      print_result(ctx, r, [&] { print_rollout(r); });
      if (status == "promoted") {
        return 0;
      }
      if (status == "rolled_back" || status == "aborted") {
        return k_exit_check_failed;
      }
      throw Error(ErrorKind::conflict, "rollout " + std::to_string(id) + " of " +
                                           std::string(app) + " ended " + status + ": " +
                                           r.value("reason", std::string("?")));
    }
    const auto reason = r["reason"].is_string() ? r["reason"].get<std::string>() : "starting";
    const auto now = std::chrono::steady_clock::now();
    if (reason != last_reason && now - last_note >= std::chrono::seconds(2)) {
      log("rollout " + std::to_string(id) + ": " + reason);
      last_reason = reason;
      last_note = now;
    }
    // Once the gates have their requests, labels are what the decision still waits for.
    const auto gates =
        r.value("verdict", nlohmann::json::object()).value("gates", nlohmann::json::array());
    const bool gates_judged = std::none_of(gates.begin(), gates.end(), [](const auto& g) {
      return g.value("status", std::string()) == "pending";
    });
    if (const auto hint = labels_hint(r); hint && gates_judged && !hinted) {
      log(*hint);
      hinted = true;
    }
    for (int i = 0; i < 10; ++i) {
      if (util::interrupted()) {
        throw Error(ErrorKind::interrupted,
                    "stopped following; rollout " + std::to_string(id) +
                        " goes on on the server: mlctl rollout status " + std::string(app));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

namespace {

// The gate of a canary started without --gate.
constexpr const char* k_default_gate = "error_rate<=0.01";

int run_rollout_canary(const RolloutCanaryOptions& o, Context& ctx) {
  api::validate_name(o.name, "application name");
  const auto timeout = api::parse_duration(o.timeout, true);
  if (!timeout || timeout->count() < 1) {
    throw Error(ErrorKind::invalid_input,
                "--timeout '" + o.timeout +
                    "': expected a duration like 90s, 10m or 1h (a bare number is seconds)");
  }
  // The server's checks, before anything is sent.
  with_context("--model", [&] { api::parse_model_ref(o.model); });
  nlohmann::json gates = nlohmann::json::array();
  // Without a gate a canary would be promoted on its request count alone, failing or not.
  const auto given = o.gates.empty() ? std::vector<std::string>{k_default_gate} : o.gates;
  for (const auto& g : given) {
    gates.push_back(with_context("--gate", [&] { return api::parse_gate(g).text(); }));
    if (o.min_labelled == 0 && api::parse_gate(g).metric == "accuracy") {
      throw Error(ErrorKind::invalid_input,
                  "--gate '" + g + "': accuracy needs ground truth, but --min-labelled is 0");
    }
  }
  const nlohmann::json spec = {{"model", o.model},
                               {"weight", o.weight},
                               {"gates", gates},
                               {"min_requests", o.min_requests},
                               {"min_labelled", o.min_labelled},
                               {"confidence", o.confidence},
                               {"timeout_seconds", timeout->count()}};
  auto client = api_client(ctx);
  const auto r = client.call("POST", api::routes::application_rollouts(o.name), spec, false);
  const auto id = r.value("id", std::int64_t{0});
  if (!o.wait) {
    print_result(ctx, r, [&] {
      std::cout << decision_line(r) << "\nfollow it: mlctl rollout status " << o.name
                << " --wait\n";
    });
    return 0;
  }
  ctx.log()(decision_line(r));
  return follow_rollout(ctx, o.name, id);
}

} // namespace

void register_rollout_canary(CLI::App& rollout, Dispatch& dispatch) {
  auto opts = std::make_shared<RolloutCanaryOptions>();
  auto* cmd = rollout.add_subcommand(
      "canary", "Move a share of the traffic to a new version, judge it, promote or roll back");
  cmd->add_option("app", opts->name, "Application name")->required()->type_name("APP");
  cmd->add_option("--model", opts->model, "The candidate: NAME:VERSION or NAME@ALIAS")
      ->required()
      ->type_name("REF");
  cmd->add_option("--weight", opts->weight, "Percent of the traffic the canary gets")
      ->check(in_range(1, 50))
      ->capture_default_str();
  cmd->add_option("--gate", opts->gates,
                  "A condition on the canary's metrics, repeatable: METRIC OP VALUE with METRIC "
                  "one of " +
                      api::gate_metrics() + ", e.g. 'p99_ms<=20', 'reconstruction<=threshold' " +
                      "(none given: '" + k_default_gate + "')")
      ->type_name("GATE");
  cmd->add_option("--min-requests", opts->min_requests,
                  "Canary requests before its gates are judged")
      ->check(positive())
      ->capture_default_str();
  cmd->add_option("--min-labelled", opts->min_labelled,
                  "Labelled images (mlctl feedback) per variant before accuracy is judged and the "
                  "canary compared with the primary; 0 when there is no ground truth")
      ->check(non_negative())
      ->capture_default_str();
  cmd->add_option("--confidence", opts->confidence,
                  "Confidence of the two-proportion test: roll back when the canary is less "
                  "accurate than the primary at this level")
      ->check(in_range(0.5, 0.9999))
      ->capture_default_str();
  cmd->add_option(
         "--timeout", opts->timeout,
         "Roll back when the evidence is still incomplete after this long (90s, 10m, 1h; a "
         "bare number is seconds)")
      ->capture_default_str();
  cmd->add_flag("--wait", opts->wait,
                "Follow it to the decision: exit 0 promoted, 3 rolled back (without: start it "
                "and return; the server decides either way)");
  cmd->footer("Example:\n  mlctl rollout canary mnist-app --model mnist:2 --weight 10 --gate "
              "'accuracy>=0.95' --gate 'p99_ms<=20' --gate 'error_rate<=0.01' --min-requests 500 "
              "--timeout 10m --wait");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_rollout_canary(*opts, ctx); };
  });
}

} // namespace mlctl::cli
