// `mlctl catalog rm NAME:VERSION`: delete a version (refused while an application uses it).
#include "api/names.hpp"
#include "commands/catalog.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

namespace mlctl::cli {

namespace {

struct CatalogRmOptions {
  std::string ref;
};

int run_catalog_rm(const CatalogRmOptions& opts, Context& ctx) {
  // A bare NAME would mean "the latest", too easy to delete by accident: require a version.
  const auto ref = api::parse_model_ref(opts.ref, api::RefVersion::required);
  auto client = api_client(ctx);
  const auto result = client.delete_version(ref);
  print_result(ctx, result, [&] {
    std::cout << "deleted " << result.name << ":" << result.version;
    if (result.artifact_removed) {
      std::cout << " (freed " << format_bytes(static_cast<double>(result.bytes_freed)) << ")";
    } else {
      std::cout << " (artifact kept: another version has the same bytes)";
    }
    std::cout << '\n';
  });
  return 0;
}

} // namespace

void register_catalog_rm(CLI::App& catalog, Dispatch& dispatch) {
  auto opts = std::make_shared<CatalogRmOptions>();
  auto* cmd = catalog.add_subcommand("rm", "Delete a model version (its bytes go when no other version shares them)");
  cmd->add_option("ref", opts->ref, "NAME:VERSION or NAME@ALIAS")->required()->type_name("REF");
  cmd->footer("Example:\n  mlctl catalog rm mnist:1");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_catalog_rm(*opts, ctx); };
  });
}

} // namespace mlctl::cli
