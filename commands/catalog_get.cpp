// `mlctl catalog get NAME:VERSION|NAME@ALIAS|NAME`: one version's metadata.
#include "api/names.hpp"
#include "commands/catalog.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"

#include <CLI/CLI.hpp>
#include <memory>

namespace mlctl::cli {

namespace {

struct CatalogGetOptions {
  std::string ref;
};

int run_catalog_get(const CatalogGetOptions& opts, Context& ctx) {
  const auto ref = api::parse_model_ref(opts.ref, api::RefVersion::optional);
  auto client = api_client(ctx);
  const auto v = client.get_version(ref);
  print_result(ctx, v, [&] { print_version_details(v); });
  return 0;
}

} // namespace

void register_catalog_get(CLI::App& catalog, Dispatch& dispatch) {
  auto opts = std::make_shared<CatalogGetOptions>();
  auto* cmd = catalog.add_subcommand("get", "Show a version's metadata: sha256, contract, lineage, metrics");
  cmd->add_option("ref", opts->ref, "NAME:VERSION, NAME@ALIAS or NAME (the latest version)")
      ->required()
      ->type_name("REF");
  cmd->footer("Example:\n  mlctl catalog get mnist@production -o yaml");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_catalog_get(*opts, ctx); };
  });
}

} // namespace mlctl::cli
