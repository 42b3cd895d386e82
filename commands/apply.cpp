// `mlctl apply -f FILE|DIR|-` and `mlctl apply application NAME --model REF`: declarative
// deployment of applications, idempotent like kubectl (`application/NAME created|configured|
// unchanged`).
#include "api/app_routes.hpp"
#include "commands/commands.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "manifest/application.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

namespace mlctl::cli {

namespace {

struct ApplyOptions {
  std::vector<std::string> files;
  std::string dry_run; // "", "client" or "server"
};

struct ApplyApplicationOptions {
  std::string name;
  std::string model;
  double capture_sample = 1.0;
  bool capture_given = false; // --capture-sample on the command line
};

void print_results(const nlohmann::json& results, Context& ctx, std::string_view suffix) {
  if (ctx.format() == OutputFormat::table) {
    for (const auto& r : results) {
      std::cout << "application/" << r.value("name", std::string("?")) << " "
                << r.value("result", std::string("?")) << suffix << "\n";
    }
    std::cout << std::flush;
  } else {
    print_result(ctx, results.size() == 1 ? results[0] : nlohmann::json{{"results", results}},
                 [] {});
  }
}

// PUTs each document (with ?dry_run=true when `dry_run`) and returns the results. In a dry
// run every document is sent and the refusals are reported together (one line each); then
// nothing is applied.
nlohmann::json send(const std::vector<manifest::Document>& docs, Context& ctx, bool dry_run) {
  auto client = api_client(ctx);
  nlohmann::json results = nlohmann::json::array();
  std::size_t refused = 0;
  for (const auto& d : docs) {
    const auto target =
        api::routes::application(d.application.name) + (dry_run ? "?dry_run=true" : "");
    try {
      results.push_back(with_context(
          d.source, [&] { return client.call("PUT", target, manifest::to_json(d.application)); }));
    } catch (const Error& e) {
      if (!dry_run || e.kind() != ErrorKind::invalid_input) {
        throw;
      }
      std::cerr << "mlctl: error: " << e.what() << "\n";
      ++refused;
    }
  }
  if (refused > 0) {
    throw Error(ErrorKind::invalid_input,
                std::to_string(refused) + " of " + std::to_string(docs.size()) +
                    " application(s) refused by the server; nothing applied");
  }
  return results;
}

int run_apply(const ApplyOptions& opts, Context& ctx) {
  std::vector<manifest::Document> docs;
  for (const auto& f : opts.files) {
    std::vector<manifest::Document> part;
    if (f == "-") {
      const std::string text{std::istreambuf_iterator<char>(std::cin),
                             std::istreambuf_iterator<char>()};
      part = manifest::parse_manifests(text, "-");
    } else {
      part = manifest::load_manifests(f);
    }
    docs.insert(docs.end(), std::make_move_iterator(part.begin()),
                std::make_move_iterator(part.end()));
  }
  // The whole set is checked before anything is sent: a bad manifest changes nothing.
  manifest::check_unique_names(docs);
  if (opts.dry_run == "client") {
    nlohmann::json results = nlohmann::json::array();
    for (const auto& d : docs) {
      results.push_back({{"name", d.application.name},
                         {"result", "valid"},
                         {"dry_run", true},
                         {"manifest", manifest::to_json(d.application)}});
    }
    print_results(results, ctx, " (dry run)");
    return 0;
  }
  // What only the server knows (do the versions exist, do they load) is checked for every
  // document before the first is applied: a set with one bad document changes nothing.
  if (opts.dry_run == "server" || docs.size() > 1) {
    const auto checked = send(docs, ctx, true);
    if (opts.dry_run == "server") {
      print_results(checked, ctx, " (server dry run)");
      return 0;
    }
  }
  print_results(send(docs, ctx, false), ctx, "");
  return 0;
}

// The shortcut changes what is served and nothing else: an existing application keeps the rest
// of its manifest (capture, monitoring), so a deploy script does not turn monitoring off.
int run_apply_application(const ApplyApplicationOptions& opts, Context& ctx) {
  const auto parse = [&](const nlohmann::json& doc) {
    return with_context("application " + opts.name,
                        [&] { return manifest::application_from_json(doc); });
  };
  nlohmann::json doc = {
      {"apiVersion", manifest::k_api_version},
      {"kind", manifest::k_kind_application},
      {"metadata", {{"name", opts.name}}},
      {"spec",
       {{"singular", {{"model", opts.model}}}, {"capture", {{"sample", opts.capture_sample}}}}}};
  auto app = parse(doc); // the name and the ref are checked before the server is asked
  nlohmann::json current;
  try {
    current = api_client(ctx)
                  .call("GET", api::routes::application(opts.name))
                  .value("manifest", nlohmann::json());
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::not_found) {
      throw;
    }
  }
  if (current.is_object() && current.contains("spec")) {
    auto& spec = current["spec"];
    spec.erase("stages");
    spec["singular"] = {{"model", opts.model}};
    if (opts.capture_given) {
      spec["capture"] = {{"sample", opts.capture_sample}};
    }
    app = parse(current);
  }
  print_results(send({manifest::Document{"application " + opts.name, std::move(app)}}, ctx, false),
                ctx, "");
  return 0;
}

} // namespace

void register_apply(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<ApplyOptions>();
  auto* cmd = parent.add_subcommand(
      "apply", "Create or update applications from manifests (declarative, idempotent)");
  cmd->add_option("-f,--filename", opts->files,
                  "Manifest file, directory of *.yaml/*.yml files, or - for stdin; repeatable")
      ->type_name("FILE|DIR|-");
  cmd->add_option("--dry-run", opts->dry_run,
                  "Change nothing: --dry-run checks the manifests here, --dry-run=server also asks "
                  "the server (versions exist and load) and says what an apply would do")
      ->expected(0, 1)
      ->default_str("client")
      ->check(CLI::IsMember({"client", "server"}))
      ->option_text("[=client|server]");
  cmd->footer("A file of several documents is applied only when the server accepts all of them.\n"
              "\nExamples:\n  mlctl apply -f manifests/mnist-app.yaml\n"
              "  mlctl apply -f manifests/mnist-app.yaml --dry-run=server");

  auto app_opts = std::make_shared<ApplyApplicationOptions>();
  auto* sub = cmd->add_subcommand(
      "application", "Create or update a singular application serving one model version; an "
                     "existing one keeps its capture and monitoring settings");
  sub->add_option("name", app_opts->name, "Application name")->required()->type_name("APP");
  sub->add_option("--model", app_opts->model, "The version to serve: NAME:VERSION or NAME@ALIAS")
      ->required()
      ->type_name("REF");
  auto* capture = sub->add_option("--capture-sample", app_opts->capture_sample,
                                  "Share of requests the request store keeps (0..1; default: "
                                  "the application's, 1 for a new one)")
                      ->check(in_range(0.0, 1.0));
  sub->footer(
      "Example:\n  mlctl apply application mnist-app --model mnist:$(cat model_version.txt)");
  sub->callback([app_opts, capture, &dispatch] {
    app_opts->capture_given = capture->count() > 0;
    dispatch.run = [app_opts](Context& ctx) { return run_apply_application(*app_opts, ctx); };
  });
  cmd->callback([opts, sub, &dispatch] {
    if (sub->parsed()) {
      return;
    }
    if (opts->files.empty()) {
      throw CLI::RequiredError("apply: -f FILE|DIR|- (or the subcommand 'application')");
    }
    dispatch.run = [opts](Context& ctx) { return run_apply(*opts, ctx); };
  });
}

} // namespace mlctl::cli
