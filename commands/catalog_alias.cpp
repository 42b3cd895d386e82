// `mlctl catalog alias NAME:VERSION ALIAS`: point an alias (production, champion, ...) at a
// version; `--delete` removes it; with only NAME, lists the aliases.
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

struct CatalogAliasOptions {
  std::string ref;
  std::string alias;
  bool remove = false;
};

int run_catalog_alias(const CatalogAliasOptions& opts, Context& ctx) {
  const auto ref = api::parse_model_ref(opts.ref, api::RefVersion::optional);
  auto client = api_client(ctx);
  if (opts.alias.empty()) {
    if (opts.remove) {
      throw Error(ErrorKind::invalid_input, "--delete: name the alias to delete (mlctl catalog alias NAME ALIAS --delete)");
    }
    const auto list = client.list_aliases(ref.name);
    print_result(ctx, list, [&] {
      Table table({"ALIAS", "VERSION", "UPDATED"});
      for (const auto& a : list.aliases) {
        table.add({a.alias, a.name + ":" + std::to_string(a.version), a.updated_at});
      }
      table.print();
    });
    return 0;
  }
  if (opts.remove) {
    client.delete_alias(ref.name, opts.alias);
    const nlohmann::json result = {{"name", ref.name}, {"alias", opts.alias}, {"deleted", true}};
    print_result(ctx, result, [&] { std::cout << "deleted alias " << ref.name << "@" << opts.alias << '\n'; });
    return 0;
  }
  if (!ref.has_version_or_alias()) {
    throw Error(ErrorKind::invalid_input, "'" + opts.ref + "': expected NAME:VERSION (or NAME@OTHER_ALIAS)");
  }
  // NAME@other resolves to a number first, so the alias pins a version, not another alias.
  const auto version = ref.version ? *ref.version : client.get_version(ref).version;
  const auto result = client.set_alias(ref.name, opts.alias, version);
  print_result(ctx, result, [&] {
    std::cout << result.name << "@" << result.alias << " -> " << result.name << ":" << result.version << '\n';
  });
  return 0;
}

} // namespace

void register_catalog_alias(CLI::App& catalog, Dispatch& dispatch) {
  auto opts = std::make_shared<CatalogAliasOptions>();
  auto* cmd = catalog.add_subcommand("alias", "Point an alias (e.g. production) at a version, delete it, or list aliases");
  cmd->add_option("ref", opts->ref, "NAME:VERSION to point at (NAME alone lists or, with --delete, removes)")
      ->required()
      ->type_name("REF");
  cmd->add_option("alias", opts->alias, "The alias, e.g. production")->type_name("ALIAS");
  cmd->add_flag("--delete", opts->remove, "Remove the alias");
  cmd->footer("Example:\n  mlctl catalog alias mnist:3 production");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_catalog_alias(*opts, ctx); };
  });
}

} // namespace mlctl::cli
