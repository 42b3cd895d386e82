// `mlctl catalog history [NAME]`: the audit log (who changed which version or alias, when).
#include "api/names.hpp"
#include "commands/catalog.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"

#include <CLI/CLI.hpp>
#include <memory>

namespace mlctl::cli {

namespace {

struct CatalogHistoryOptions {
  std::string name;
  std::string since;
  std::string until;
  std::int64_t limit = 0; // 0: everything
};

int run_catalog_history(const CatalogHistoryOptions& opts, Context& ctx) {
  if (!opts.name.empty()) {
    api::validate_name(opts.name);
  }
  auto client = api_client(ctx);
  client::EventFilter f{opts.since, opts.until, opts.name, opts.limit > 0 ? opts.limit : 1000};
  api::EventList all;
  while (true) {
    auto part = client.events(f);
    const bool more = opts.limit == 0 && static_cast<std::int64_t>(part.events.size()) == f.limit;
    all.events.insert(all.events.end(), part.events.begin(), part.events.end());
    all.next_since = part.next_since;
    if (!more) {
      break;
    }
    f.since = std::to_string(part.next_since);
  }
  print_result(ctx, all, [&] { print_event_table(all.events); });
  return 0;
}

} // namespace

void register_catalog_history(CLI::App& catalog, Dispatch& dispatch) {
  auto opts = std::make_shared<CatalogHistoryOptions>();
  auto* cmd = catalog.add_subcommand("history", "Show the audit log of a model (or of the whole registry)");
  cmd->add_option("name", opts->name, "Model name (default: every model)")->type_name("MODEL");
  cmd->add_option("--since", opts->since, "After this event id, or from this RFC 3339 time");
  cmd->add_option("--until", opts->until, "Before this RFC 3339 time");
  cmd->add_option("--limit", opts->limit, "At most this many events")->check(in_range(1, 10000));
  cmd->footer("Example:\n  mlctl catalog history mnist --since 2026-11-01T00:00:00Z");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_catalog_history(*opts, ctx); };
  });
}

} // namespace mlctl::cli
