// `mlctl catalog list [NAME]`: models, or the versions of one model.
#include "api/names.hpp"
#include "commands/catalog.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

namespace mlctl::cli {

namespace {

struct CatalogListOptions {
  std::string name;
  std::string prefix;
  std::vector<std::string> tags;
  std::int64_t limit = 0; // 0: every page
  bool newest_first = false;
};

int run_catalog_list(const CatalogListOptions& opts, Context& ctx) {
  auto client = api_client(ctx);
  const std::int64_t page = opts.limit > 0 ? opts.limit : 1000;
  if (opts.name.empty()) {
    client::ModelListFilter f{opts.prefix, opts.tags, page, {}};
    api::ModelList all;
    do {
      auto part = client.list_models(f);
      all.models.insert(all.models.end(), part.models.begin(), part.models.end());
      f.page_token = part.next_page_token;
      all.next_page_token = part.next_page_token;
    } while (opts.limit == 0 && !f.page_token.empty());
    print_result(ctx, all, [&] {
      Table table({"NAME", "LATEST", "VERSIONS", "ALIASES", "UPDATED"});
      for (const auto& m : all.models) {
        std::string aliases;
        for (const auto& [a, v] : m.aliases) {
          aliases += (aliases.empty() ? "" : ",") + a + "=" + std::to_string(v);
        }
        table.add({m.name, m.latest_version > 0 ? std::to_string(m.latest_version) : "-",
                   std::to_string(m.version_count), aliases.empty() ? "-" : aliases, m.updated_at});
      }
      table.print();
      if (table.empty()) {
        ctx.log()(opts.prefix.empty() && opts.tags.empty()
                      ? "no models in the registry yet: mlctl catalog upload MODEL_DIR"
                      : "no model matches the filters");
      }
    });
    return 0;
  }
  api::validate_name(opts.name);
  client::VersionListFilter f{opts.tags, page, {}, opts.newest_first};
  api::VersionList all;
  all.name = opts.name;
  do {
    auto part = client.list_versions(opts.name, f);
    all.versions.insert(all.versions.end(), part.versions.begin(), part.versions.end());
    f.page_token = part.next_page_token;
    all.next_page_token = part.next_page_token;
  } while (opts.limit == 0 && !f.page_token.empty());
  print_result(ctx, all, [&] { print_version_table(all.versions); });
  return 0;
}

} // namespace

void register_catalog_list(CLI::App& catalog, Dispatch& dispatch) {
  auto opts = std::make_shared<CatalogListOptions>();
  auto* cmd = catalog.add_subcommand("list", "List models, or the versions of one model");
  cmd->add_option("name", opts->name, "Model name: list its versions")->type_name("MODEL");
  cmd->add_option("--prefix", opts->prefix, "Only models whose name starts with this");
  cmd->add_option("--tag", opts->tags, "Only versions (or models with a version) tagged KEY=VALUE; repeatable")
      ->type_name("KEY=VALUE");
  cmd->add_option("--limit", opts->limit, "At most this many (one page; default: all)")
      ->check(in_range(1, 10000));
  cmd->add_flag("--newest-first", opts->newest_first, "Versions in descending order");
  cmd->footer("Example:\n  mlctl catalog list mnist --tag stage=prod -o json");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_catalog_list(*opts, ctx); };
  });
}

} // namespace mlctl::cli
