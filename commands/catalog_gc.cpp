// `mlctl catalog gc [--dry-run]`: remove artifact bytes no version references and leftovers.
#include "commands/catalog.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

namespace mlctl::cli {

namespace {

struct CatalogGcOptions {
  bool dry_run = false;
};

int run_catalog_gc(const CatalogGcOptions& opts, Context& ctx) {
  auto client = api_client(ctx);
  const auto report = client.gc(opts.dry_run);
  print_result(ctx, report, [&] {
    std::cout << (opts.dry_run ? "would free " : "freed ") << report.files_removed << " file(s), "
              << format_bytes(static_cast<double>(report.bytes_freed)) << '\n';
    for (const auto& f : report.removed) {
      std::cout << "  " << f << '\n';
    }
  });
  return 0;
}

} // namespace

void register_catalog_gc(CLI::App& catalog, Dispatch& dispatch) {
  auto opts = std::make_shared<CatalogGcOptions>();
  auto* cmd = catalog.add_subcommand("gc", "Free artifact bytes no version references (and abandoned uploads)");
  cmd->add_flag("--dry-run", opts->dry_run, "Only report what would be freed");
  cmd->footer("Example:\n  mlctl catalog gc --dry-run");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_catalog_gc(*opts, ctx); };
  });
}

} // namespace mlctl::cli
