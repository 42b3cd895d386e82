// `mlctl apply -f FILE|DIR|-` and `mlctl apply application NAME --model REF`: declarative
// deployment of applications, idempotent like kubectl (`application/NAME created|configured|
// unchanged`).
#include "api/app_routes.hpp"
#include "commands/commands.hpp"
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
  bool dry_run = false;
};

struct ApplyApplicationOptions {
  std::string name;
  std::string model;
  double capture_sample = 1.0;
};

// Sends each document and prints one line per application (or the results as JSON/YAML).
int send(const std::vector<manifest::Document>& docs, Context& ctx) {
  auto client = api_client(ctx);
  nlohmann::json results = nlohmann::json::array();
  for (const auto& d : docs) {
    const auto& name = d.application.name;
    const auto result = with_context(d.source, [&] {
      return client.call("PUT", api::routes::application(name), manifest::to_json(d.application));
    });
    if (ctx.format() == OutputFormat::table) {
      std::cout << "application/" << name << " " << result.value("result", std::string("?")) << "\n"
                << std::flush;
    }
    results.push_back(result);
  }
  if (ctx.format() != OutputFormat::table) {
    print_result(ctx, results.size() == 1 ? results[0] : nlohmann::json{{"results", results}},
                 [] {});
  }
  return 0;
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
  if (opts.dry_run) {
    for (const auto& d : docs) {
      if (ctx.format() == OutputFormat::table) {
        std::cout << "application/" << d.application.name << " valid (dry run)\n";
      }
    }
    if (ctx.format() != OutputFormat::table) {
      nlohmann::json list = nlohmann::json::array();
      for (const auto& d : docs) {
        list.push_back(manifest::to_json(d.application));
      }
      print_result(ctx, {{"documents", list}}, [] {});
    }
    return 0;
  }
  return send(docs, ctx);
}

int run_apply_application(const ApplyApplicationOptions& opts, Context& ctx) {
  nlohmann::json doc = {
      {"apiVersion", manifest::k_api_version},
      {"kind", manifest::k_kind_application},
      {"metadata", {{"name", opts.name}}},
      {"spec",
       {{"singular", {{"model", opts.model}}}, {"capture", {{"sample", opts.capture_sample}}}}}};
  auto app = with_context("application " + opts.name,
                          [&] { return manifest::application_from_json(doc); });
  return send({manifest::Document{"application " + opts.name, std::move(app)}}, ctx);
}

} // namespace

void register_apply(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<ApplyOptions>();
  auto* cmd = parent.add_subcommand(
      "apply", "Create or update applications from manifests (declarative, idempotent)");
  cmd->add_option("-f,--filename", opts->files,
                  "Manifest file, directory of *.yaml/*.yml files, or - for stdin; repeatable")
      ->type_name("FILE|DIR|-");
  cmd->add_flag("--dry-run", opts->dry_run, "Validate the manifests locally; send nothing");
  cmd->footer("Example:\n  mlctl apply -f manifests/mnist-app.yaml");

  auto app_opts = std::make_shared<ApplyApplicationOptions>();
  auto* sub = cmd->add_subcommand(
      "application", "Create or update a singular application serving one model version");
  sub->add_option("name", app_opts->name, "Application name")->required()->type_name("APP");
  sub->add_option("--model", app_opts->model, "The version to serve: NAME:VERSION or NAME@ALIAS")
      ->required()
      ->type_name("REF");
  sub->add_option("--capture-sample", app_opts->capture_sample,
                  "Share of requests the request store keeps (0..1)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  sub->footer(
      "Example:\n  mlctl apply application mnist-app --model mnist:$(cat model_version.txt)");
  sub->callback([app_opts, &dispatch] {
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
