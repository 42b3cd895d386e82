// `mlctl cluster add NAME --server URL [--token-file F] [--ca-file F] [--use]`.
#include "client/cluster_config.hpp"
#include "commands/cluster.hpp"
#include "commands/output.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

namespace mlctl::cli {

namespace {

struct ClusterAddOptions {
  std::string name;
  std::string server;
  std::string token_file;
  std::string ca_file;
  bool use = false;
};

int run_cluster_add(const ClusterAddOptions& opts, Context& ctx) {
  const auto path = client::default_config_path();
  auto config = client::load_cluster_config(path);
  client::add_cluster(config, {opts.name, opts.server, opts.token_file, opts.ca_file});
  if (opts.use) {
    client::use_cluster(config, opts.name);
  }
  client::save_cluster_config(path, config);
  const auto* c = config.find(opts.name);
  const nlohmann::json result = {{"name", c->name},
                                 {"server", c->server},
                                 {"token_file", c->token_file},
                                 {"ca_file", c->ca_file},
                                 {"current", config.current == c->name},
                                 {"config", path.string()}};
  print_result(ctx, result, [&] {
    std::cout << "cluster " << c->name << " -> " << c->server << (config.current == c->name ? " (current)" : "")
              << '\n';
  });
  return 0;
}

} // namespace

void register_cluster_add(CLI::App& cluster, Dispatch& dispatch) {
  auto opts = std::make_shared<ClusterAddOptions>();
  auto* cmd = cluster.add_subcommand("add", "Add (or replace) a named platform endpoint; the first becomes current");
  cmd->add_option("name", opts->name, "Cluster name")->required()->type_name("NAME");
  cmd->add_option("--server", opts->server, "Platform URL, e.g. http://127.0.0.1:9090")->required();
  cmd->add_option("--token-file", opts->token_file, "File holding the bearer token")->type_name("FILE");
  cmd->add_option("--ca-file", opts->ca_file,
                  "PEM file of the CA certificates to trust for its https:// server (as --cacert)")
      ->type_name("FILE");
  cmd->add_flag("--use", opts->use, "Make it the current cluster");
  cmd->footer("Example:\n  mlctl cluster add local --server http://127.0.0.1:9090");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_cluster_add(*opts, ctx); };
  });
}

} // namespace mlctl::cli
