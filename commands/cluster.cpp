// `mlctl cluster`: the group.
#include "commands/cluster.hpp"

#include "commands/commands.hpp"

#include <CLI/CLI.hpp>

namespace mlctl::cli {

void register_cluster(CLI::App& parent, Dispatch& dispatch) {
  auto* cluster = parent.add_subcommand("cluster", "Manage the platform endpoints commands talk to (config file)");
  cluster->require_subcommand(1);
  cluster->footer("Example:\n  mlctl cluster add local --server http://127.0.0.1:9090 && mlctl cluster use local");
  register_cluster_add(*cluster, dispatch);
  register_cluster_use(*cluster, dispatch);
  register_cluster_list(*cluster, dispatch);
}

} // namespace mlctl::cli
