// `mlctl catalog tag NAME:VERSION KEY=VALUE... [--remove KEY]...`: free key/values on a version.
#include "api/names.hpp"
#include "commands/catalog.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

namespace mlctl::cli {

namespace {

struct CatalogTagOptions {
  std::string ref;
  std::vector<std::string> assignments;
  std::vector<std::string> remove;
};

int run_catalog_tag(const CatalogTagOptions& opts, Context& ctx) {
  const auto ref = api::parse_model_ref(opts.ref, api::RefVersion::required);
  api::TagUpdate update;
  for (const auto& a : opts.assignments) {
    const auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error(ErrorKind::invalid_input, "tag '" + a + "': expected KEY=VALUE");
    }
    const auto key = a.substr(0, eq);
    const auto value = a.substr(eq + 1);
    api::validate_tag_key(key);
    api::validate_tag_value(key, value);
    update.set[key] = value;
  }
  for (const auto& k : opts.remove) {
    api::validate_tag_key(k);
    update.remove.push_back(k);
  }
  if (update.set.empty() && update.remove.empty()) {
    throw Error(ErrorKind::invalid_input, "nothing to do: give KEY=VALUE tags or --remove KEY");
  }
  auto client = api_client(ctx);
  const auto v = client.update_tags(ref, update);
  print_result(ctx, v, [&] {
    std::cout << v.ref();
    for (const auto& [k, val] : v.tags) {
      std::cout << ' ' << k << '=' << val;
    }
    std::cout << '\n';
  });
  return 0;
}

} // namespace

void register_catalog_tag(CLI::App& catalog, Dispatch& dispatch) {
  auto opts = std::make_shared<CatalogTagOptions>();
  auto* cmd = catalog.add_subcommand("tag", "Set or remove free KEY=VALUE tags on a version");
  cmd->add_option("ref", opts->ref, "NAME:VERSION or NAME@ALIAS")->required()->type_name("REF");
  cmd->add_option("tags", opts->assignments, "Tags to set")->type_name("KEY=VALUE");
  cmd->add_option("--remove", opts->remove, "Tag key to remove; repeatable")->type_name("KEY");
  cmd->footer("Example:\n  mlctl catalog tag mnist:3 stage=staging reviewed=yes");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_catalog_tag(*opts, ctx); };
  });
}

} // namespace mlctl::cli
