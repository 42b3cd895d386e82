// `mlctl cluster use NAME`.
#include "client/cluster_config.hpp"
#include "commands/cluster.hpp"
#include "commands/output.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

namespace mlctl::cli {

namespace {

struct ClusterUseOptions {
  std::string name;
};

int run_cluster_use(const ClusterUseOptions& opts, Context& ctx) {
  const auto path = client::default_config_path();
  auto config = client::load_cluster_config(path);
  client::use_cluster(config, opts.name);
  client::save_cluster_config(path, config);
  const auto* c = config.find(opts.name);
  const nlohmann::json result = {{"current", c->name}, {"server", c->server}};
  print_result(ctx, result, [&] { std::cout << "current cluster: " << c->name << " (" << c->server << ")\n"; });
  return 0;
}

} // namespace

void register_cluster_use(CLI::App& cluster, Dispatch& dispatch) {
  auto opts = std::make_shared<ClusterUseOptions>();
  auto* cmd = cluster.add_subcommand("use", "Make a cluster the one commands talk to");
  cmd->add_option("name", opts->name, "Cluster name")->required()->type_name("NAME");
  cmd->footer("Example:\n  mlctl cluster use local");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_cluster_use(*opts, ctx); };
  });
}

} // namespace mlctl::cli
