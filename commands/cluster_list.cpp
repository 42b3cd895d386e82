// `mlctl cluster list`.
#include "client/cluster_config.hpp"
#include "commands/cluster.hpp"
#include "commands/output.hpp"

#include <CLI/CLI.hpp>
#include <memory>

namespace mlctl::cli {

namespace {

struct ClusterListOptions {};

int run_cluster_list(const ClusterListOptions&, Context& ctx) {
  const auto config = client::load_cluster_config(client::default_config_path());
  nlohmann::json result = {{"current", config.current}, {"clusters", nlohmann::json::array()}};
  for (const auto& c : config.clusters) {
    result["clusters"].push_back({{"name", c.name},
                                  {"server", c.server},
                                  {"token_file", c.token_file},
                                  {"ca_file", c.ca_file}});
  }
  print_result(ctx, result, [&] {
    Table table({"CURRENT", "NAME", "SERVER", "TOKEN FILE", "CA FILE"});
    for (const auto& c : config.clusters) {
      table.add({c.name == config.current ? "*" : "", c.name, c.server,
                 c.token_file.empty() ? "-" : c.token_file, c.ca_file.empty() ? "-" : c.ca_file});
    }
    table.print();
    if (table.empty()) {
      ctx.log()("no clusters: mlctl cluster add NAME --server URL (until then: --server, "
                "MLCTL_SERVER or http://127.0.0.1:9090)");
    }
  });
  return 0;
}

} // namespace

void register_cluster_list(CLI::App& cluster, Dispatch& dispatch) {
  auto opts = std::make_shared<ClusterListOptions>();
  auto* cmd = cluster.add_subcommand("list", "List the configured clusters (* = current)");
  cmd->footer("Example:\n  mlctl cluster list -o json");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_cluster_list(*opts, ctx); };
  });
}

} // namespace mlctl::cli
